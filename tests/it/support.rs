//! The test harness: a fresh rcgen PKI per test, the real server in-process on 127.0.0.1:0,
//! and a real rustls + hyper client that trusts only the test CA and presents a named client
//! certificate. The server is assembled by the library's composition root
//! ([`dfdg_mock::instance`]), as `serve` assembles it. Dropping a [`TestServer`] shuts it down;
//! [`TestServer::stop`] waits for it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use dfdg_mock::app::App;
use dfdg_mock::config::{AdminToken, ClientAuthMode, Config, Limits};
use dfdg_mock::instance::{Given, Instance, Running};
use dfdg_mock::journal::{
    CallQuery, Database, JournalReader, Readers, RejectionQuery, SqliteStore, StoredCall,
    StoredRejection,
};
use dfdg_mock::pki::{
    CertificateAuthority, CertificateShape, ClientSpec, IssuedCertificate, Oces2Kind,
};
use dfdg_mock::tls::TlsMaterial;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub const OCES3_UUID: &str = "3f2b6c1e-8d4a-4b7e-9c21-5a0e7d9f4b13";
pub const CVR: &str = "91234567";

/// A test PKI: a CA and a server certificate for localhost.
pub struct Pki {
    pub ca: CertificateAuthority,
    pub server: IssuedCertificate,
}

impl Pki {
    pub fn new() -> Pki {
        Pki::named("dfdg-mock Test CA")
    }

    /// A PKI whose CA has the common name `ca_name`.
    pub fn named(ca_name: &str) -> Pki {
        let ca = CertificateAuthority::generate(ca_name).unwrap();
        let server = ca
            .issue_server(&["localhost".into(), "127.0.0.1".into()], 30)
            .unwrap();
        Pki { ca, server }
    }

    /// An OCES3 organisation/system certificate: caller id `CVR:91234567-UUID:3f2b…`.
    pub fn oces3_client(&self) -> IssuedCertificate {
        self.client(
            CertificateShape::Oces3 {
                uuid: OCES3_UUID.parse().unwrap(),
            },
            365,
        )
    }

    /// An OCES2 FOCES certificate: caller id `CVR:91234567-FID:1234567890123`.
    pub fn oces2_client(&self) -> IssuedCertificate {
        self.client(
            CertificateShape::Oces2(Oces2Kind::Fid("1234567890123".into())),
            365,
        )
    }

    pub fn client(&self, shape: CertificateShape, valid_days: i64) -> IssuedCertificate {
        self.ca
            .issue_client(&ClientSpec {
                name: "Fagsystem Jobcenter Test".into(),
                organisation: "Testleverandør ApS".into(),
                cvr: CVR.into(),
                shape,
                valid_days,
            })
            .unwrap()
    }

    pub fn material(&self) -> TlsMaterial {
        TlsMaterial {
            server_chain: vec![CertificateDer::from(self.server.cert_der.clone())],
            server_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server.key_der())),
            client_cas: vec![CertificateDer::from(self.ca.cert_der().to_vec())],
        }
    }

    /// A client that trusts this PKI's CA and presents `certificate`.
    pub fn client_with(&self, certificate: Option<&IssuedCertificate>) -> Client {
        Client::new(self.ca.cert_der(), certificate, Versions::Any)
    }
}

/// The real server, in-process: assembled by [`dfdg_mock::instance`] as `serve` assembles it.
pub struct TestServer {
    pub addr: SocketAddr,
    /// The admin listener, when started with one.
    pub admin_addr: Option<SocketAddr>,
    pub journal_path: PathBuf,
    /// The server's own reading connections (either store).
    pub readers: Readers,
    /// The request pipeline, for reloading and resetting scenarios from a test.
    pub app: Arc<App>,
    running: Option<Running>,
    /// Holds the journal (unless given) and the registry path of an open-mode server.
    _dir: tempfile::TempDir,
}

pub struct Options {
    pub mode: ClientAuthMode,
    pub limits: Limits,
    /// Journal file; default: a fresh one in a temporary folder.
    pub journal: Option<PathBuf>,
    /// A PostgreSQL journal instead of the file (its feed of other replicas' calls runs).
    pub database: Option<Arc<Database>>,
    /// The replica's name (labels `/metrics`).
    pub replica: Option<String>,
    /// Retention of the journal; default: the built-in one.
    pub retention: dfdg_mock::journal::Retention,
    /// Start the admin listener too.
    pub admin: Option<AdminOptions>,
    /// Scenario folder; default: none (every call gets the default answer).
    pub scenarios: Option<PathBuf>,
    /// Run the file watcher (scenario folder, registry file), as `serve` does; off for tests
    /// that count the reloads they trigger themselves.
    pub watch: bool,
    /// The WSDL catalog served; default: none (every POST gets the generic receipt).
    pub catalog: Option<Arc<dfdg_mock::wsdl::Catalog>>,
    /// The supplier registry; default: open mode (a registry file that does not exist).
    pub suppliers: Option<Arc<dfdg_mock::supplier::LiveRegistry>>,
    /// TLS material read from files (e.g. a certs folder); default: the test PKI's.
    pub tls: Option<TlsMaterial>,
    /// STAR's sending certificate and the webhook trust; default: none, so WSB is off (the
    /// test PKI is in memory, there is no star.crt to make).
    pub wsb_tls: Option<dfdg_mock::wsb::WebhookTls>,
    /// `[wsb]`: retry policy, backoff, timeouts, queue.
    pub wsb: dfdg_mock::config::WsbConfig,
}

pub struct AdminOptions {
    pub listen: SocketAddr,
    pub token: Option<AdminToken>,
}

impl AdminOptions {
    /// Loopback, port 0, no token.
    pub fn loopback() -> AdminOptions {
        AdminOptions {
            listen: "127.0.0.1:0".parse().unwrap(),
            token: None,
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mode: ClientAuthMode::Require,
            limits: Limits::default(),
            journal: None,
            database: None,
            replica: None,
            retention: dfdg_mock::journal::Retention::default(),
            admin: None,
            scenarios: None,
            watch: true,
            catalog: None,
            suppliers: None,
            tls: None,
            wsb_tls: None,
            wsb: dfdg_mock::config::WsbConfig::default(),
        }
    }
}

impl TestServer {
    pub async fn start(pki: &Pki) -> TestServer {
        TestServer::start_with(pki, Options::default()).await
    }

    /// The server with these limits and everything else by default.
    pub async fn with_limits(pki: &Pki, limits: Limits) -> TestServer {
        TestServer::start_with(
            pki,
            Options {
                limits,
                ..Options::default()
            },
        )
        .await
    }

    /// The server with an open admin listener on loopback.
    pub async fn with_admin(pki: &Pki) -> TestServer {
        TestServer::start_with(
            pki,
            Options {
                admin: Some(AdminOptions::loopback()),
                ..Options::default()
            },
        )
        .await
    }

    /// The admin listener's address, reachable over loopback whatever it was bound to.
    pub fn admin(&self) -> SocketAddr {
        let addr = self.admin_addr.expect("started without an admin listener");
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    }

    pub async fn start_with(pki: &Pki, options: Options) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let journal_path = options
            .journal
            .unwrap_or_else(|| dir.path().join("journal.sqlite"));
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            certs_dir: dir.path().join("certs"),
            client_auth: options.mode,
            journal: journal_path.clone(),
            journal_url: options.database.map(|database| (*database).clone()),
            replica: options.replica,
            retention: options.retention,
            scenarios: options.scenarios,
            limits: options.limits,
            wsb: options.wsb,
            ..Config::default()
        };
        // No catalog unless one is given: the generic receipt for every POST.
        config.catalog.dirs = Vec::new();
        config.onboarding.registry = dir.path().join("suppliers.toml");
        let admin_listener = match options.admin {
            Some(admin) => {
                config.admin.listen = admin.listen;
                config.admin.token = admin.token;
                Some(tokio::net::TcpListener::bind(admin.listen).await.unwrap())
            }
            None => None,
        };
        let given = Given {
            tls: Some(options.tls.unwrap_or_else(|| pki.material())),
            catalog: options.catalog,
            suppliers: options.suppliers,
            wsb_tls: options.wsb_tls,
        };
        let instance = Instance::build_with(config, given)
            .unwrap_or_else(|error| panic!("{error:#}"))
            .watch_files(options.watch)
            .event_keep_alive(std::time::Duration::from_millis(500));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let running = instance.start(listener, admin_listener).await.unwrap();
        TestServer {
            addr: running.soap_addr(),
            admin_addr: running.admin_addr(),
            journal_path,
            readers: running.readers().clone(),
            app: running.app().clone(),
            running: Some(running),
            _dir: dir,
        }
    }

    /// Follows the file watcher's reloads (scenario folder, registry file).
    pub fn reloads(&self) -> tokio::sync::watch::Receiver<dfdg_mock::watch::Reload> {
        self.running.as_ref().expect("running").reloads()
    }

    /// Stops the server and waits until every connection task (and its journal entry) is done.
    pub async fn stop(mut self) -> Journaled {
        if let Some(running) = self.running.take() {
            running.stop().await.unwrap();
        }
        Journaled::read(&self.journal_path)
    }

    /// What the journal holds right now (calls are committed before their response is sent).
    pub fn journal(&self) -> Journaled {
        Journaled::read(&self.journal_path)
    }
}

/// One plain-HTTP request to an admin listener, on a new connection, as a script sends it:
/// `Host: localhost`, and a POST as JSON.
pub async fn admin_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Reply {
    let mut headers = vec![("host", "localhost")];
    if method == "POST" {
        headers.push(("content-type", "application/json"));
    }
    let authorization = token.map(|token| format!("Bearer {token}"));
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization));
    }
    admin_request_with(addr, method, path, &headers, body).await
}

/// One plain-HTTP request to an admin listener with exactly these headers.
pub async fn admin_request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// GET on an open admin listener, expecting 200 and JSON.
pub async fn admin_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let reply = admin_request(addr, "GET", path, None, None).await;
    assert_eq!(reply.status, 200, "GET {path}: {}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

/// A client of `/api/events`, reading raw lines.
pub struct Events {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>>,
    _write: tokio::net::tcp::OwnedWriteHalf,
    pub content_type: String,
}

impl Events {
    /// Opens the stream and waits until it is connected, so no later event is missed.
    pub async fn open(admin: std::net::SocketAddr) -> Events {
        let stream = tokio::net::TcpStream::connect(admin).await.unwrap();
        let (read, mut write) = stream.into_split();
        write
            .write_all(b"GET /api/events HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut events = Events {
            lines: tokio::io::BufReader::new(read).lines(),
            _write: write,
            content_type: String::new(),
        };
        let status = events.line().await;
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        loop {
            let line = events.line().await;
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-type: ") {
                events.content_type = value.to_owned();
            }
            if line.contains(": connected") {
                return events;
            }
        }
    }

    pub async fn line(&mut self) -> String {
        tokio::time::timeout(std::time::Duration::from_secs(10), self.lines.next_line())
            .await
            .expect("the event stream went quiet")
            .unwrap()
            .expect("the event stream ended")
    }

    /// The data line of the next event named `name`.
    pub async fn next(&mut self, name: &str) -> String {
        loop {
            if self.line().await == format!("event: {name}") {
                return self.line().await;
            }
        }
    }
}

/// A snapshot of a journal, newest first.
pub struct Journaled {
    pub calls: Vec<StoredCall>,
    pub rejections: Vec<StoredRejection>,
}

impl Journaled {
    pub fn read(path: &Path) -> Journaled {
        Journaled::of(&SqliteStore::open_read_only(path).unwrap())
    }

    pub fn of(store: &impl JournalReader) -> Journaled {
        Journaled {
            calls: store
                .calls(&CallQuery {
                    limit: 1000,
                    ..CallQuery::default()
                })
                .unwrap(),
            rejections: store
                .rejections(&RejectionQuery {
                    limit: 1000,
                    ..RejectionQuery::default()
                })
                .unwrap(),
        }
    }
}

#[derive(Clone, Copy)]
pub enum Versions {
    Any,
    Tls12Only,
}

/// An HTTPS client presenting an optional client certificate.
pub struct Client {
    connector: TlsConnector,
    h2: bool,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn content_type(&self) -> &str {
        self.headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Client {
    pub fn new(
        ca_der: &[u8],
        certificate: Option<&IssuedCertificate>,
        versions: Versions,
    ) -> Client {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca_der.to_vec())).unwrap();
        let versions: &[&rustls::SupportedProtocolVersion] = match versions {
            Versions::Any => &[&rustls::version::TLS13, &rustls::version::TLS12],
            Versions::Tls12Only => &[&rustls::version::TLS12],
        };
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let config = match certificate {
            Some(certificate) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from(certificate.cert_der.clone())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certificate.key_der())),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        Client {
            connector: TlsConnector::from(Arc::new(config)),
            h2: false,
        }
    }

    /// Offer only h2 by ALPN and speak HTTP/2.
    pub fn http2(mut self) -> Client {
        let mut config = (*self.connector.config().clone()).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        self.connector = TlsConnector::from(Arc::new(config));
        self.h2 = true;
        self
    }

    /// Sends one request on a new connection.
    /// A mutual-TLS connection to `addr` (server name `localhost`), for raw HTTP bytes.
    pub async fn connect(
        &self,
        addr: SocketAddr,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        self.connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))
    }

    pub async fn send(
        &self,
        addr: SocketAddr,
        request: http::Request<Full<Bytes>>,
    ) -> Result<Reply, String> {
        let io = TokioIo::new(self.connect(addr).await?);
        let response = if self.h2 {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(connection);
            sender.send_request(request).await
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("http1 handshake: {e}"))?;
            tokio::spawn(connection);
            sender.send_request(request).await
        }
        .map_err(|e| format!("request: {}", error_chain(&e)))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {}", error_chain(&e)))?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    /// GETs `path_and_query`.
    pub async fn get(&self, addr: SocketAddr, path_and_query: &str) -> Result<Reply, String> {
        let request = http::Request::get(path_and_query)
            .header("host", format!("localhost:{}", addr.port()))
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(addr, request).await
    }

    /// POSTs a SOAP envelope of `version` to `path`: SOAP 1.1 with a quoted SOAPAction header,
    /// SOAP 1.2 with the action in the content type.
    pub async fn soap_to(
        &self,
        addr: SocketAddr,
        path: &str,
        version: dfdg_mock::soap::SoapVersion,
        action: Option<&str>,
        body: &str,
    ) -> Result<Reply, String> {
        let mut request =
            http::Request::post(path).header("host", format!("localhost:{}", addr.port()));
        request = match version {
            dfdg_mock::soap::SoapVersion::V11 => request
                .header("content-type", "text/xml; charset=utf-8")
                .header("soapaction", format!("\"{}\"", action.unwrap_or(""))),
            dfdg_mock::soap::SoapVersion::V12 => request.header(
                "content-type",
                match action {
                    Some(action) => {
                        format!("application/soap+xml; charset=utf-8; action=\"{action}\"")
                    }
                    None => "application/soap+xml; charset=utf-8".to_owned(),
                },
            ),
        };
        let request = request
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        self.send(addr, request).await
    }

    /// POSTs a SOAP 1.1 envelope.
    pub async fn soap11(
        &self,
        addr: SocketAddr,
        action: &str,
        body: &str,
    ) -> Result<Reply, String> {
        let request = http::Request::post("/JobcenterMessageService/2/JobcenterMessageService.svc")
            .header("host", "localhost")
            .header("content-type", "text/xml; charset=utf-8")
            .header("soapaction", format!("\"{action}\""))
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        self.send(addr, request).await
    }

    /// POSTs a SOAP 1.2 envelope, the action in the content type.
    pub async fn soap12(
        &self,
        addr: SocketAddr,
        action: &str,
        body: &str,
    ) -> Result<Reply, String> {
        let request =
            http::Request::post("/JobnetCitizenStatusService/10/JobnetCitizenStatusService.svc")
                .header("host", "localhost")
                .header(
                    "content-type",
                    format!("application/soap+xml; charset=utf-8; action=\"{action}\""),
                )
                .body(Full::new(Bytes::from(body.to_owned())))
                .unwrap();
        self.send(addr, request).await
    }
}

pub const NS: &str = "urn:dfdg-mock:JobcenterMessageService:2";

/// A SOAP 1.1 registration with STAR's headers, made on behalf of `user_identifier`.
pub fn registration(user_identifier: &str) -> String {
    dfdg_mock::cli::demo_request(user_identifier)
}

/// Path of the shipped CodeListService.
pub const CODE_LIST_PATH: &str = "/CodeListService/1/CodeListService.svc";

/// A valid GetCodeListNames request, as `catalog` generates it.
pub fn code_list_names_request(catalog: &dfdg_mock::wsdl::Catalog) -> String {
    catalog
        .route(
            CODE_LIST_PATH,
            dfdg_mock::soap::SoapVersion::V11,
            None,
            &dfdg_mock::soap::QualifiedName {
                namespace: "urn:dfdg-mock:CodeListService:1".into(),
                local: "GetCodeListNames".into(),
            },
        )
        .expect("the shipped catalog serves GetCodeListNames")
        .example_request(time::OffsetDateTime::now_utc())
}

pub fn soap12_lookup() -> String {
    r#"<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope">
  <env:Body><GetBorgerstatus xmlns="urn:dfdg-mock:JobnetCitizenStatusService:10"><CivilRegistrationIdentifier>0101701234</CivilRegistrationIdentifier></GetBorgerstatus></env:Body>
</env:Envelope>"#
        .to_owned()
}

/// The text of the first element named `local` in `xml`.
pub fn element_text<'a>(xml: &'a str, local: &str) -> Option<&'a str> {
    let open = format!("<{local}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find('<')? + start;
    Some(&xml[start..end])
}

/// An error and its sources, "outer: inner: innermost".
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether every column of a table's `row` starts where its `header`'s does: where the header
/// has a name after two spaces, the row has a cell after a space.
pub fn aligned(header: &str, row: &str) -> bool {
    let header: Vec<char> = header.chars().collect();
    let row: Vec<char> = row.chars().collect();
    (2..header.len())
        .filter(|&i| header[i] != ' ' && header[i - 1] == ' ' && header[i - 2] == ' ')
        .all(|i| row.get(i - 1) == Some(&' ') && row.get(i).is_some_and(|c| *c != ' '))
}
