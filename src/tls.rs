//! TLS for the SOAP listener: the rustls server configuration (TLS 1.2 and 1.3, ALPN h2 and
//! http/1.1), client-certificate verification in `require` or `diagnose` mode, and the handshake
//! with a time limit that turns a connection into a verified [`CallerIdentity`] or a refusal
//! with its reason.
//!
//! Verification is webpki's, wrapped in [`RecordingVerifier`], which remembers per handshake what
//! was presented and what was wrong with it (through a task-local slot, since rustls calls the
//! verifier synchronously inside the handshake task). That is how a refused handshake is journaled
//! with the presented certificate's identity, and how `diagnose` mode can complete the handshake
//! and still say precisely why the certificate would not pass.

use std::cell::RefCell;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::ClientAuthMode;
use crate::identity::CallerIdentity;

/// Why a TLS handshake was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    NoCertificate,
    UnknownCa,
    Expired,
    NotYetValid,
    WrongKeyUsage,
    Revoked,
    BadSignature,
    BadCertificate,
    HandshakeTimeout,
    ProtocolError,
    Other,
}

impl RejectionReason {
    /// Every reason, in declaration order.
    pub const ALL: [RejectionReason; 11] = [
        RejectionReason::NoCertificate,
        RejectionReason::UnknownCa,
        RejectionReason::Expired,
        RejectionReason::NotYetValid,
        RejectionReason::WrongKeyUsage,
        RejectionReason::Revoked,
        RejectionReason::BadSignature,
        RejectionReason::BadCertificate,
        RejectionReason::HandshakeTimeout,
        RejectionReason::ProtocolError,
        RejectionReason::Other,
    ];

    /// The snake_case name, as in JSON and in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            RejectionReason::NoCertificate => "no_certificate",
            RejectionReason::UnknownCa => "unknown_ca",
            RejectionReason::Expired => "expired",
            RejectionReason::NotYetValid => "not_yet_valid",
            RejectionReason::WrongKeyUsage => "wrong_key_usage",
            RejectionReason::Revoked => "revoked",
            RejectionReason::BadSignature => "bad_signature",
            RejectionReason::BadCertificate => "bad_certificate",
            RejectionReason::HandshakeTimeout => "handshake_timeout",
            RejectionReason::ProtocolError => "protocol_error",
            RejectionReason::Other => "other",
        }
    }

    /// The reason named by [`RejectionReason::as_str`], if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|reason| reason.as_str() == text)
    }
}

impl fmt::Display for RejectionReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// What the handshake learned about the client's certificate.
#[derive(Debug, Clone)]
pub enum ClientCertificate {
    /// A trusted, valid client certificate: the caller is known.
    Verified(Arc<CallerIdentity>),
    /// `diagnose` mode only: the handshake completed although the certificate would have been
    /// refused; requests get a DFDG fault saying why.
    Refused(Refusal),
}

/// Why a client certificate was (or would have been) refused.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub reason: RejectionReason,
    /// What exactly was wrong, for people.
    pub detail: String,
    /// The presented certificate's identity, where one was presented and could be read.
    pub identity: Option<Arc<CallerIdentity>>,
}

/// A completed handshake.
pub struct Accepted {
    pub stream: TlsStream<TcpStream>,
    pub session: Session,
}

/// Facts of one TLS session, computed once per connection.
#[derive(Debug, Clone)]
pub struct Session {
    pub tls_version: &'static str,
    pub cipher_suite: String,
    pub alpn: Option<String>,
    pub client: ClientCertificate,
}

/// The server side of TLS, ready to accept connections.
#[derive(Clone)]
pub struct TlsServer {
    acceptor: TlsAcceptor,
    mode: ClientAuthMode,
    timeout: Duration,
}

impl fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsServer")
            .field("mode", &self.mode)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The certificates and keys the server is built from.
pub struct TlsMaterial {
    pub server_chain: Vec<CertificateDer<'static>>,
    pub server_key: PrivateKeyDer<'static>,
    /// CA certificates trusted to issue client certificates.
    pub client_cas: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsMaterial")
            .field("server_chain", &self.server_chain.len())
            .field("server_key", &"<redacted>")
            .field("client_cas", &self.client_cas.len())
            .finish()
    }
}

impl TlsMaterial {
    /// Reads the server chain and key and the trusted client CAs from PEM files.
    pub fn from_files(
        cert: &Path,
        key: &Path,
        client_cas: &[&Path],
    ) -> anyhow::Result<TlsMaterial> {
        let server_chain = read_certificates(cert)?;
        let server_key = PrivateKeyDer::from_pem_file(key)
            .with_context(|| format!("cannot read a private key from {}", key.display()))?;
        let mut cas = Vec::new();
        for path in client_cas {
            cas.extend(read_certificates(path)?);
        }
        Ok(TlsMaterial {
            server_chain,
            server_key,
            client_cas: cas,
        })
    }
}

pub(crate) fn read_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} holds a malformed PEM certificate", path.display()))?;
    if certificates.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certificates)
}

impl TlsServer {
    pub fn new(
        material: TlsMaterial,
        mode: ClientAuthMode,
        handshake_timeout: Duration,
    ) -> anyhow::Result<TlsServer> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in material.client_cas {
            roots
                .add(ca)
                .context("a client CA certificate cannot be used as a trust anchor")?;
        }
        let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .context("cannot build the client certificate verifier (no client CA?)")?;
        let verifier = Arc::new(RecordingVerifier { inner, mode });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("TLS 1.2 and 1.3 are not available")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(material.server_chain, material.server_key)
            .context("the server certificate and key do not form a usable pair")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsServer {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            mode,
            timeout: handshake_timeout,
        })
    }

    pub fn mode(&self) -> ClientAuthMode {
        self.mode
    }

    /// Runs the handshake on `stream` within the time limit.
    pub async fn accept(&self, stream: TcpStream) -> Result<Accepted, Refusal> {
        let check = RefCell::new(None);
        let handshake = CHECK.scope(check, async {
            let result = tokio::time::timeout(self.timeout, self.acceptor.accept(stream)).await;
            (result, CHECK.with(|check| check.borrow_mut().take()))
        });
        let (result, check) = handshake.await;
        match result {
            Err(_elapsed) => Err(Refusal {
                reason: RejectionReason::HandshakeTimeout,
                detail: format!(
                    "the TLS handshake did not complete within {:?}",
                    self.timeout
                ),
                identity: check.and_then(|c| c.identity),
            }),
            Ok(Err(error)) => Err(refusal_from_io(&error, check)),
            Ok(Ok(stream)) => {
                let (_, connection) = stream.get_ref();
                let tls_version = match connection.protocol_version() {
                    Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                    Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                    _ => "unknown",
                };
                let cipher_suite = connection
                    .negotiated_cipher_suite()
                    .and_then(|suite| suite.suite().as_str())
                    .unwrap_or("unknown")
                    .to_owned();
                let alpn = connection
                    .alpn_protocol()
                    .map(|p| String::from_utf8_lossy(p).into_owned());
                let client = client_certificate(connection.peer_certificates(), check);
                Ok(Accepted {
                    stream,
                    session: Session {
                        tls_version,
                        cipher_suite,
                        alpn,
                        client,
                    },
                })
            }
        }
    }
}

/// What the verifier saw during one handshake.
#[derive(Debug)]
struct Check {
    identity: Option<Arc<CallerIdentity>>,
    /// The verification error, if the certificate did not pass.
    error: Option<rustls::Error>,
}

tokio::task_local! {
    static CHECK: RefCell<Option<Check>>;
}

/// The outcome of a completed handshake for the client certificate.
fn client_certificate(
    presented: Option<&[CertificateDer<'static>]>,
    check: Option<Check>,
) -> ClientCertificate {
    match check {
        Some(Check {
            identity: Some(identity),
            error: None,
        }) => ClientCertificate::Verified(identity),
        Some(Check {
            identity,
            error: Some(error),
        }) => ClientCertificate::Refused(describe(&error, identity)),
        Some(Check {
            identity: None,
            error: None,
        }) => ClientCertificate::Refused(Refusal {
            reason: RejectionReason::BadCertificate,
            detail: "the client certificate could not be read".into(),
            identity: None,
        }),
        // A resumed session: the verifier did not run, but the certificate was verified when
        // the session was first established.
        None => match presented.and_then(<[_]>::first) {
            Some(leaf) => match CallerIdentity::from_der(leaf) {
                Ok(identity) => ClientCertificate::Verified(Arc::new(identity)),
                Err(error) => ClientCertificate::Refused(Refusal {
                    reason: RejectionReason::BadCertificate,
                    detail: format!("the client certificate could not be read: {error}"),
                    identity: None,
                }),
            },
            None => ClientCertificate::Refused(no_certificate()),
        },
    }
}

fn no_certificate() -> Refusal {
    Refusal {
        reason: RejectionReason::NoCertificate,
        detail: "no client certificate was presented; STAR's services require an OCES \
                 function/system certificate"
            .into(),
        identity: None,
    }
}

fn refusal_from_io(error: &io::Error, check: Option<Check>) -> Refusal {
    if let Some(Check {
        identity,
        error: Some(verification),
    }) = check
    {
        return describe(&verification, identity);
    }
    let identity = check.and_then(|c| c.identity);
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::NoCertificatesPresented) => no_certificate(),
        Some(tls) => describe(tls, identity),
        None => Refusal {
            reason: RejectionReason::ProtocolError,
            detail: format!("the connection failed during the TLS handshake: {error}"),
            identity,
        },
    }
}

/// Turns a rustls error into a reason and an explanation a supplier can act on.
fn describe(error: &rustls::Error, identity: Option<Arc<CallerIdentity>>) -> Refusal {
    let issuer = identity
        .as_ref()
        .map_or(String::new(), |i| format!(" (issuer: {})", i.issuer));
    let (reason, detail) = match error {
        rustls::Error::NoCertificatesPresented => return no_certificate(),
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::UnknownIssuer => (
                RejectionReason::UnknownCa,
                format!("the client certificate is not issued by a trusted CA{issuer}"),
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
                RejectionReason::Expired,
                match &identity {
                    Some(i) => {
                        format!("the client certificate expired on {}", rfc3339(i.not_after))
                    }
                    None => "the client certificate has expired".into(),
                },
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
                RejectionReason::NotYetValid,
                match &identity {
                    Some(i) => format!(
                        "the client certificate is not valid before {}",
                        rfc3339(i.not_before)
                    ),
                    None => "the client certificate is not valid yet".into(),
                },
            ),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => (
                RejectionReason::WrongKeyUsage,
                "the certificate is not valid for client authentication (its extended key \
                 usage lacks clientAuth; a server certificate cannot be used as a client \
                 certificate)"
                    .into(),
            ),
            CertificateError::Revoked => (
                RejectionReason::Revoked,
                "the client certificate is revoked".into(),
            ),
            // webpki finds the issuer by name; a bad signature then means a different CA
            // that happens to carry a trusted CA's name.
            CertificateError::BadSignature => (
                RejectionReason::BadSignature,
                format!(
                    "the client certificate's signature does not verify against the trusted CA \
                     of the same name: it was issued by another CA{issuer}"
                ),
            ),
            other => (
                RejectionReason::BadCertificate,
                format!("the client certificate is not acceptable: {other:?}"),
            ),
        },
        other => (
            RejectionReason::ProtocolError,
            format!("the TLS handshake failed: {other}"),
        ),
    };
    Refusal {
        reason,
        detail,
        identity,
    }
}

fn rfc3339(time: time::OffsetDateTime) -> String {
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| time.to_string())
}

/// webpki's client verifier, remembering per handshake what it saw; in `diagnose` mode it lets
/// every certificate (and no certificate) through and leaves the verdict to the request.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    mode: ClientAuthMode,
}

impl ClientCertVerifier for RecordingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mode == ClientAuthMode::Require
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        let identity = CallerIdentity::from_der(end_entity).ok().map(Arc::new);
        let error = match (&verdict, &identity) {
            (Err(error), _) => Some(error.clone()),
            (Ok(_), None) => Some(rustls::Error::InvalidCertificate(
                CertificateError::BadEncoding,
            )),
            (Ok(_), Some(_)) => None,
        };
        let _ = CHECK.try_with(|check| {
            *check.borrow_mut() = Some(Check {
                identity,
                error: error.clone(),
            })
        });
        match (self.mode, error) {
            (ClientAuthMode::Require, Some(error)) => Err(error),
            _ => Ok(ClientCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
