//! `dfdg-mock health`: is the SOAP listener up and does mutual TLS work? One `GET /` over a
//! fresh TLS connection that trusts only the test CA and presents a client certificate (by
//! default the demo client's from the certs folder), the whole probe under one time limit.
//!
//! It exists for container health checks: the slim runtime image has no curl, and a probe
//! through the binary checks what a caller needs — the listener accepts, the handshake with a
//! client certificate succeeds, HTTP answers `200` — not merely that a port is open.
//! The request is a `GET`, which the server does not journal.
//!
//! Then it asks the admin listener's `/health/ready` (plain HTTP, no token needed), which is not
//! ready while the journal cannot commit (a full disk, a read-only file): the mock then answers
//! every call with fault 1011, so it is not healthy for its users either. An admin listener
//! that is not reachable (e.g. bound elsewhere in a container) is left out of the verdict.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The most of the answer read while looking for the status line.
const STATUS_LINE_LIMIT: usize = 8 * 1024;

/// Why the listener is not healthy.
#[derive(Debug, thiserror::Error)]
pub enum Unhealthy {
    #[error("cannot connect to {address}: {error}")]
    Connect {
        address: SocketAddr,
        error: std::io::Error,
    },
    #[error("TLS handshake with {address} failed: {error}")]
    Handshake {
        address: SocketAddr,
        error: std::io::Error,
    },
    #[error("the connection to {address} broke during GET /: {error}")]
    Exchange {
        address: SocketAddr,
        error: std::io::Error,
    },
    #[error("GET / on {address} answered {status_line:?}, not 200")]
    Status {
        address: SocketAddr,
        status_line: String,
    },
    #[error("GET / on {address} answered something that is not HTTP: {start:?}")]
    NotHttp { address: SocketAddr, start: String },
    #[error("{address}/health/ready answered {status_line:?}: {body}")]
    NotReady {
        address: SocketAddr,
        status_line: String,
        body: String,
    },
    #[error("no answer from {address} within {limit:?}")]
    Timeout {
        address: SocketAddr,
        limit: Duration,
    },
}

/// A ready-to-run probe: where to connect, and the TLS client that trusts only the given CA.
#[derive(Clone)]
pub struct Probe {
    /// The SOAP listener's address (never unspecified: see [`probe_address`]).
    pub address: SocketAddr,
    /// The name the server certificate must carry; the generated one always has `localhost`.
    server_name: ServerName<'static>,
    connector: TlsConnector,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connector holds the client's private key: never print it.
        f.debug_struct("Probe")
            .field("address", &self.address)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// What a successful probe saw.
#[derive(Debug, Clone)]
pub struct Healthy {
    pub address: SocketAddr,
    /// The negotiated TLS version, e.g. `TLSv1_3`.
    pub tls_version: String,
    pub elapsed: Duration,
}

impl Probe {
    /// A probe of `address` that trusts the CA certificate(s) in `ca` and presents the client
    /// certificate `client_cert` with key `client_key` (PEM files).
    pub fn from_files(
        address: SocketAddr,
        server_name: &str,
        ca: &Path,
        client_cert: &Path,
        client_key: &Path,
    ) -> anyhow::Result<Probe> {
        let mut roots = rustls::RootCertStore::empty();
        for certificate in crate::tls::read_certificates(ca)? {
            roots
                .add(certificate)
                .with_context(|| format!("{} is not a usable CA certificate", ca.display()))?;
        }
        let chain = crate::tls::read_certificates(client_cert)?;
        let key = PrivateKeyDer::from_pem_file(client_key)
            .with_context(|| format!("cannot read a private key from {}", client_key.display()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("cannot configure TLS")?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .with_context(|| {
                format!(
                    "{} and {} do not make a usable client certificate",
                    client_cert.display(),
                    client_key.display()
                )
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server_name = ServerName::try_from(server_name.to_owned())
            .with_context(|| format!("'{server_name}' is not a DNS name or IP address"))?;
        Ok(Probe {
            address,
            server_name,
            connector: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Connects, shakes hands, sends `GET /` and reads the status line, all within `limit`.
    pub async fn check(&self, limit: Duration) -> Result<Healthy, Unhealthy> {
        let started = Instant::now();
        match tokio::time::timeout(limit, self.exchange()).await {
            Ok(Ok(tls_version)) => Ok(Healthy {
                address: self.address,
                tls_version,
                elapsed: started.elapsed(),
            }),
            Ok(Err(unhealthy)) => Err(unhealthy),
            Err(_elapsed) => Err(Unhealthy::Timeout {
                address: self.address,
                limit,
            }),
        }
    }

    async fn exchange(&self) -> Result<String, Unhealthy> {
        let address = self.address;
        let tcp = TcpStream::connect(address)
            .await
            .map_err(|error| Unhealthy::Connect { address, error })?;
        let mut tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|error| Unhealthy::Handshake { address, error })?;
        let tls_version = tls
            .get_ref()
            .1
            .protocol_version()
            .map_or_else(|| "TLS".to_owned(), |v| format!("{v:?}"));
        let host = match &self.server_name {
            ServerName::DnsName(name) => name.as_ref().to_owned(),
            _ => address.to_string(),
        };
        let request =
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: dfdg-mock-health\r\nConnection: close\r\n\r\n");
        let exchange = |error| Unhealthy::Exchange { address, error };
        tls.write_all(request.as_bytes()).await.map_err(exchange)?;
        tls.flush().await.map_err(exchange)?;

        let mut answer = Vec::with_capacity(512);
        let mut buffer = [0u8; 1024];
        let line_end = loop {
            if let Some(end) = answer.windows(2).position(|w| w == b"\r\n") {
                break end;
            }
            if answer.len() >= STATUS_LINE_LIMIT {
                return Err(not_http(address, &answer));
            }
            let read = tls.read(&mut buffer).await.map_err(exchange)?;
            if read == 0 {
                return Err(not_http(address, &answer));
            }
            answer.extend_from_slice(&buffer[..read]);
        };
        let status_line = String::from_utf8_lossy(&answer[..line_end]).into_owned();
        let mut words = status_line.split(' ');
        match (words.next(), words.next()) {
            (Some(version), Some("200")) if version.starts_with("HTTP/1.") => Ok(tls_version),
            (Some(version), Some(_)) if version.starts_with("HTTP/1.") => Err(Unhealthy::Status {
                address,
                status_line,
            }),
            _ => Err(not_http(address, &answer)),
        }
    }
}

fn not_http(address: SocketAddr, answer: &[u8]) -> Unhealthy {
    let start = String::from_utf8_lossy(&answer[..answer.len().min(80)]).into_owned();
    Unhealthy::NotHttp { address, start }
}

/// Whether the admin listener at `address` says ready (`GET /health/ready` → 200). `Ok(false)`:
/// nothing answers there (the verdict is then the SOAP probe's alone).
pub async fn admin_ready(address: SocketAddr, limit: Duration) -> Result<bool, Unhealthy> {
    let exchange = async {
        let Ok(mut tcp) = TcpStream::connect(address).await else {
            return Ok(false);
        };
        let request = format!(
            "GET /health/ready HTTP/1.1\r\nHost: {address}\r\nUser-Agent: dfdg-mock-health\r\nConnection: close\r\n\r\n"
        );
        let broken = |error| Unhealthy::Exchange { address, error };
        tcp.write_all(request.as_bytes()).await.map_err(broken)?;
        let mut answer = Vec::with_capacity(512);
        let mut limited = (&mut tcp).take(STATUS_LINE_LIMIT as u64);
        limited.read_to_end(&mut answer).await.map_err(broken)?;
        let text = String::from_utf8_lossy(&answer);
        let status_line = text.lines().next().unwrap_or_default().to_owned();
        if status_line.split(' ').nth(1) == Some("200") {
            return Ok(true);
        }
        let body = text
            .split("\r\n\r\n")
            .nth(1)
            .unwrap_or_default()
            .trim()
            .to_owned();
        Err(Unhealthy::NotReady {
            address,
            status_line,
            body,
        })
    };
    tokio::time::timeout(limit, exchange)
        .await
        .unwrap_or(Err(Unhealthy::Timeout { address, limit }))
}

/// The address to probe for a listener bound to `listen`: a wildcard address (`0.0.0.0`,
/// `::`, as in a container) is probed on the loopback address of its family.
pub fn probe_address(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), listen.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), listen.port())
        }
        _ => listen,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_probed_on_loopback() {
        let probe = |text: &str| probe_address(text.parse().unwrap()).to_string();
        assert_eq!(probe("0.0.0.0:8443"), "127.0.0.1:8443");
        assert_eq!(probe("[::]:8443"), "[::1]:8443");
        assert_eq!(probe("10.1.2.3:9443"), "10.1.2.3:9443");
    }
}
