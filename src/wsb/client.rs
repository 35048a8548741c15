//! The HTTPS side of a push: one POST of a JSON document to a webhook over mutual TLS,
//! presenting STAR's certificate and verifying the webhook's server certificate against the
//! configured trust, every wait bounded. Owns the classification of every way it can end
//! ([`Outcome`]) with a reason a supplier can act on, and records which server certificate the
//! webhook presented, trusted or not.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use time::OffsetDateTime;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::store::{CertificateSummary, Outcome, TlsOutcome};
use crate::identity::CallerIdentity;

/// The most of an answer's body read; the rest is not waited for.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of it the journal keeps.
const EXCERPT_BYTES: usize = 1024;

/// STAR's client side of TLS: its certificate and key, and whom it trusts as webhook servers.
#[derive(Clone)]
pub struct WebhookTls {
    /// Client certificate, trust and versions; the verifier is set per attempt.
    config: Arc<rustls::ClientConfig>,
    /// webpki over the configured trust anchors.
    verifier: Arc<WebPkiServerVerifier>,
    /// Who STAR's certificate says it is, for the views.
    star: Arc<CallerIdentity>,
    /// Its thumbprints, as suppliers pin them.
    thumbprints: crate::pki::Thumbprints,
}

impl fmt::Debug for WebhookTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookTls")
            .field("star", &self.star.caller_id)
            .field("key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl WebhookTls {
    /// From STAR's chain (leaf first) and key, and the CA certificates trusted to issue
    /// webhook server certificates.
    pub fn new(
        star_chain: Vec<CertificateDer<'static>>,
        star_key: PrivateKeyDer<'static>,
        trust: Vec<CertificateDer<'static>>,
    ) -> anyhow::Result<WebhookTls> {
        let leaf = star_chain
            .first()
            .context("STAR's certificate chain is empty")?;
        let star =
            Arc::new(CallerIdentity::from_der(leaf).context("STAR's certificate cannot be read")?);
        let thumbprints = crate::pki::Thumbprints::of(leaf);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in trust {
            roots
                .add(ca)
                .context("a trusted webhook CA certificate cannot be used as a trust anchor")?;
        }
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .context("cannot build the webhook server verifier (no trusted CA?)")?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("TLS 1.2 and 1.3 are not available")?
            .with_webpki_verifier(verifier.clone())
            .with_client_auth_cert(star_chain, star_key)
            .context("STAR's certificate and key do not form a usable pair")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Every attempt does a full handshake, so each one verifies and records the webhook's
        // certificate as it is now.
        config.resumption = Resumption::disabled();
        Ok(WebhookTls {
            config: Arc::new(config),
            verifier,
            star,
            thumbprints,
        })
    }

    /// From PEM files: STAR's certificate (chain) and key, and the trusted CA certificates.
    pub fn from_files(
        star_cert: &Path,
        star_key: &Path,
        trust: &[&Path],
    ) -> anyhow::Result<WebhookTls> {
        let chain = crate::tls::read_certificates(star_cert)?;
        let key = PrivateKeyDer::from_pem_file(star_key)
            .with_context(|| format!("cannot read a private key from {}", star_key.display()))?;
        let mut cas = Vec::new();
        for path in trust {
            cas.extend(crate::tls::read_certificates(path)?);
        }
        WebhookTls::new(chain, key, cas)
    }

    /// The identity STAR presents.
    pub fn star(&self) -> &CallerIdentity {
        &self.star
    }

    /// The SHA-256 and SHA-1 thumbprints of STAR's certificate.
    pub fn thumbprints(&self) -> &crate::pki::Thumbprints {
        &self.thumbprints
    }
}

/// The bounds of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake.
    pub connect: Duration,
    /// From sending the request to the end of the answer.
    pub response: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            response: Duration::from_secs(30),
        }
    }
}

/// How one POST ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// When it started.
    pub started_at: OffsetDateTime,
    /// How long it took.
    pub latency: Duration,
    /// The TLS facts.
    pub tls: TlsOutcome,
    /// The HTTP status, if an answer came.
    pub status: Option<u16>,
    /// The classification.
    pub outcome: Outcome,
    /// The reason, for people.
    pub detail: String,
    /// The start of the answer's body.
    pub response_excerpt: Option<String>,
}

/// Posts JSON documents to webhooks.
#[derive(Debug, Clone)]
pub struct WebhookClient {
    tls: WebhookTls,
    timeouts: Timeouts,
}

impl WebhookClient {
    pub fn new(tls: WebhookTls, timeouts: Timeouts) -> Self {
        WebhookClient { tls, timeouts }
    }

    /// The identity STAR presents.
    pub fn star(&self) -> &CallerIdentity {
        self.tls.star()
    }

    /// POSTs `body` (JSON) to `url` (`https://host[:port]/path`). Never fails: every failure is
    /// an [`Outcome`] with its reason.
    pub async fn post(&self, url: &str, body: Bytes) -> Posted {
        let started_at = OffsetDateTime::now_utc();
        let clock = Instant::now();
        let recorder = Arc::new(Recorder {
            inner: self.tls.verifier.clone(),
            seen: Mutex::new(None),
        });
        let (tls_version, result) = self.exchange(url, body, recorder.clone()).await;
        let server_certificate = recorder
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let latency = clock.elapsed();
        let (status, outcome, detail, response_excerpt) = match result {
            Ok(answer) => {
                let (outcome, detail) = classify_status(answer.status, answer.location.as_deref());
                (Some(answer.status), outcome, detail, Some(answer.excerpt))
            }
            Err((outcome, detail)) => (None, outcome, detail, None),
        };
        Posted {
            started_at,
            latency,
            tls: TlsOutcome {
                version: tls_version,
                server_certificate,
            },
            status,
            outcome,
            detail,
            response_excerpt,
        }
    }

    async fn exchange(
        &self,
        url: &str,
        body: Bytes,
        recorder: Arc<Recorder>,
    ) -> (Option<String>, Result<Answer, (Outcome, String)>) {
        let target = match Target::parse(url) {
            Ok(target) => target,
            Err(detail) => return (None, Err((Outcome::ConnectFailed, detail))),
        };
        let mut config = (*self.tls.config).clone();
        config
            .dangerous()
            .set_certificate_verifier(recorder.clone());
        let connector = TlsConnector::from(Arc::new(config));
        let address = format!("{}:{}", target.host, target.port);

        let connect = async {
            let tcp = TcpStream::connect((target.host.as_str(), target.port))
                .await
                .map_err(|e| connect_failure(&address, &e))?;
            let _ = tcp.set_nodelay(true);
            connector
                .connect(target.server_name.clone(), tcp)
                .await
                .map_err(|e| handshake_failure(&e, &target.host, &recorder))
        };
        let stream = match tokio::time::timeout(self.timeouts.connect, connect).await {
            Err(_) => {
                return (
                    None,
                    Err((
                        Outcome::ConnectTimeout,
                        format!(
                            "the webhook at {address} did not complete the TCP connect and TLS handshake within {}",
                            seconds(self.timeouts.connect)
                        ),
                    )),
                )
            }
            Ok(Err(failure)) => return (None, Err(failure)),
            Ok(Ok(stream)) => stream,
        };
        let version = match stream.get_ref().1.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        };

        let request = http::Request::post(target.path_and_query.as_str())
            .header(http::header::HOST, target.authority.as_str())
            .header(
                http::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .header(
                http::header::USER_AGENT,
                concat!("dfdg-mock-wsb/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body));
        let request = match request {
            Ok(request) => request,
            Err(e) => {
                return (
                    Some(version.to_owned()),
                    Err((
                        Outcome::ConnectFailed,
                        format!("cannot build the request: {e}"),
                    )),
                )
            }
        };
        let exchange = async {
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| http_failure(&e))?;
            let driver = tokio::spawn(connection);
            let result = async {
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| http_failure(&e))?;
                let status = response.status().as_u16();
                let location = response
                    .headers()
                    .get(http::header::LOCATION)
                    .map(|l| String::from_utf8_lossy(l.as_bytes()).into_owned());
                let mut body = response.into_body();
                let mut read = Vec::new();
                while read.len() < MAX_RESPONSE_BYTES {
                    match body.frame().await {
                        None => break,
                        Some(Ok(frame)) => {
                            if let Some(data) = frame.data_ref() {
                                read.extend_from_slice(data);
                            }
                        }
                        // The status arrived: a broken body does not change the verdict.
                        Some(Err(_)) => break,
                    }
                }
                read.truncate(EXCERPT_BYTES);
                Ok(Answer {
                    status,
                    location,
                    excerpt: String::from_utf8_lossy(&read).into_owned(),
                })
            }
            .await;
            driver.abort();
            result
        };
        let result = match tokio::time::timeout(self.timeouts.response, exchange).await {
            Err(_) => Err((
                Outcome::ResponseTimeout,
                format!(
                    "the webhook accepted the connection and the TLS handshake but sent no complete answer within {}",
                    seconds(self.timeouts.response)
                ),
            )),
            Ok(result) => result,
        };
        (Some(version.to_owned()), result)
    }
}

struct Answer {
    status: u16,
    location: Option<String>,
    excerpt: String,
}

/// Where a URL points.
struct Target {
    host: String,
    port: u16,
    authority: String,
    path_and_query: String,
    server_name: ServerName<'static>,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
        if uri.scheme_str() != Some("https") {
            return Err(format!("{url:?} is not an https:// URL"));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{url:?} names no host"))?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| format!("{host:?} is neither a DNS name nor an IP address"))?;
        Ok(Target {
            port: authority.port_u16().unwrap_or(443),
            authority: authority.as_str().to_owned(),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            host,
            server_name,
        })
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

fn classify_status(status: u16, location: Option<&str>) -> (Outcome, String) {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map_or(String::new(), |r| format!(" {r}"));
    match status {
        200..=299 => (Outcome::Delivered, format!("delivered: {status}{reason}")),
        300..=399 => (
            Outcome::Redirect,
            format!(
                "the webhook answered {status}{reason}{}; STAR does not follow redirects: answer 2xx at the subscribed URL",
                location.map_or(String::new(), |l| format!(" (Location: {l})"))
            ),
        ),
        400..=499 => (
            Outcome::ClientError,
            format!("the webhook answered {status}{reason}"),
        ),
        500..=599 => (
            Outcome::ServerError,
            format!("the webhook answered {status}{reason}"),
        ),
        _ => (
            Outcome::UnexpectedStatus,
            format!("the webhook answered with status {status}, which is not a final HTTP status"),
        ),
    }
}

fn connect_failure(address: &str, error: &std::io::Error) -> (Outcome, String) {
    let detail = match error.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("connection refused: nothing listens on {address}")
        }
        _ => format!("cannot connect to {address}: {error}"),
    };
    (Outcome::ConnectFailed, detail)
}

/// The TLS alerts with which a server says it does not accept the client's certificate.
fn refuses_certificate(alert: AlertDescription) -> bool {
    matches!(
        alert,
        AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnknownCA
            | AlertDescription::AccessDenied
            | AlertDescription::CertificateRequired
            | AlertDescription::NoCertificate
    )
}

fn alert_name(alert: AlertDescription) -> String {
    // `BadCertificate` → `bad_certificate`, as RFC 8446 names alerts.
    let mut name = String::new();
    for (i, c) in format!("{alert:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name.replace("unknown_c_a", "unknown_ca")
}

fn refused_detail(alert: AlertDescription) -> (Outcome, String) {
    (
        Outcome::CertificateRefused,
        format!(
            "the webhook refused STAR's client certificate (TLS alert {}): it must trust STAR's certificate \
             (star.crt) and the CA that issued it",
            alert_name(alert)
        ),
    )
}

/// Explains a rustls error seen while talking to a webhook.
fn tls_failure(
    error: &rustls::Error,
    host: &str,
    seen: Option<&CertificateSummary>,
) -> (Outcome, String) {
    let presented = seen.map_or(String::new(), |c| {
        format!(" (subject {}, issuer {})", c.subject, c.issuer)
    });
    match error {
        rustls::Error::AlertReceived(alert) if refuses_certificate(*alert) => refused_detail(*alert),
        rustls::Error::AlertReceived(alert) => (
            Outcome::TlsFailed,
            format!("the webhook ended the TLS handshake with alert {}", alert_name(*alert)),
        ),
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => (
                Outcome::UntrustedServerCertificate,
                format!(
                    "the webhook's server certificate is not issued by a CA STAR trusts{presented}"
                ),
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
                Outcome::ExpiredServerCertificate,
                match seen {
                    Some(c) => format!(
                        "the webhook's server certificate expired on {}{presented}",
                        c.not_after
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap_or_default()
                    ),
                    None => "the webhook's server certificate has expired".to_owned(),
                },
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => (
                Outcome::InvalidServerCertificate,
                format!("the webhook's server certificate is not valid for {host}{presented}"),
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
                Outcome::InvalidServerCertificate,
                format!("the webhook's server certificate is not valid yet{presented}"),
            ),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => (
                Outcome::InvalidServerCertificate,
                format!(
                    "the webhook's certificate is not a server certificate (its extended key usage lacks serverAuth){presented}"
                ),
            ),
            other => (
                Outcome::InvalidServerCertificate,
                format!("the webhook's server certificate is not acceptable: {other:?}{presented}"),
            ),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => (
            Outcome::NotTls,
            format!("the webhook does not speak TLS on this port: {error}"),
        ),
        other => (Outcome::TlsFailed, format!("the TLS handshake failed: {other}")),
    }
}

fn handshake_failure(error: &std::io::Error, host: &str, recorder: &Recorder) -> (Outcome, String) {
    let seen = recorder
        .seen
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return tls_failure(tls, host, seen.as_ref());
    }
    match error.kind() {
        std::io::ErrorKind::ConnectionReset
        | std::io::ErrorKind::ConnectionAborted
        | std::io::ErrorKind::BrokenPipe => (
            Outcome::Reset,
            "the webhook reset the connection during the TLS handshake".to_owned(),
        ),
        std::io::ErrorKind::UnexpectedEof => (
            Outcome::Reset,
            "the webhook closed the connection during the TLS handshake".to_owned(),
        ),
        _ => (
            Outcome::TlsFailed,
            format!("the TLS handshake failed: {error}"),
        ),
    }
}

/// Explains a hyper error after the handshake: a late TLS alert (TLS 1.3 servers refuse a
/// client certificate after the handshake), a reset, or an answer that is not HTTP.
fn http_failure(error: &hyper::Error) -> (Outcome, String) {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return tls_failure(tls, "", None);
            }
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
            ) {
                return (
                    Outcome::Reset,
                    "the webhook reset the connection before answering".to_owned(),
                );
            }
        }
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return tls_failure(tls, "", None);
        }
        source = cause.source();
    }
    if error.is_parse() || error.is_parse_status() || error.is_parse_too_large() {
        return (
            Outcome::NotHttp,
            format!("the webhook's answer is not HTTP/1.1: {error}"),
        );
    }
    if error.is_incomplete_message() || error.is_closed() || error.is_canceled() {
        return (
            Outcome::Reset,
            "the webhook closed the connection before answering".to_owned(),
        );
    }
    (Outcome::Reset, format!("the connection failed: {error}"))
}

/// webpki's verifier, remembering the certificate the webhook presented (trusted or not).
#[derive(Debug)]
struct Recorder {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<CertificateSummary>>,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(identity) = CallerIdentity::from_der(end_entity) {
            *self
                .seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(CertificateSummary {
                subject: identity.subject,
                issuer: identity.issuer,
                fingerprint: identity.fingerprint,
                not_after: identity.not_after,
            });
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
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

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_with_reasons() {
        assert_eq!(classify_status(204, None).0, Outcome::Delivered);
        let (outcome, detail) = classify_status(302, Some("/elsewhere"));
        assert_eq!(outcome, Outcome::Redirect);
        assert!(
            detail.contains("302 Found (Location: /elsewhere)"),
            "{detail}"
        );
        assert_eq!(classify_status(404, None).0, Outcome::ClientError);
        assert_eq!(
            classify_status(503, None).1,
            "the webhook answered 503 Service Unavailable"
        );
        assert_eq!(classify_status(600, None).0, Outcome::UnexpectedStatus);
    }

    #[test]
    fn alerts_are_named_as_the_rfc_does() {
        assert_eq!(
            alert_name(AlertDescription::BadCertificate),
            "bad_certificate"
        );
        assert_eq!(alert_name(AlertDescription::UnknownCA), "unknown_ca");
        assert_eq!(
            tls_failure(
                &rustls::Error::AlertReceived(AlertDescription::CertificateRequired),
                "h",
                None
            )
            .0,
            Outcome::CertificateRefused
        );
        assert_eq!(
            tls_failure(
                &rustls::Error::AlertReceived(AlertDescription::ProtocolVersion),
                "h",
                None
            )
            .0,
            Outcome::TlsFailed
        );
    }

    #[test]
    fn targets_name_host_port_and_path() {
        let t = Target::parse("https://[::1]:8443/a/b?c=1").expect("target");
        assert_eq!((t.host.as_str(), t.port), ("::1", 8443));
        assert_eq!(t.path_and_query, "/a/b?c=1");
        assert_eq!(t.authority, "[::1]:8443");
        assert!(Target::parse("http://x/").is_err());
    }
}
