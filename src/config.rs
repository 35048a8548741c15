//! Configuration: embedded defaults, overlaid by an optional TOML file, overlaid by environment
//! variables (`DFDG_MOCK_*`) and command-line flags, resolved once into a validated [`Config`].
//!
//! Flags and environment variables are declared together on [`ServeArgs`] (clap reads both);
//! the file is read with `deny_unknown_fields`, so a typo is an error that names the file, line
//! and column instead of a silently ignored setting.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;

use crate::journal::{Database, Location, Retention};
use crate::position::Position;

mod wsb;
pub use wsb::{Scheduled, WsbArgs, WsbConfig};

/// The config file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "dfdg-mock.toml";

/// The scenario folder used when none is configured, if it exists.
pub const DEFAULT_SCENARIOS_DIR: &str = "scenarios";

/// How client certificates are treated during the TLS handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuthMode {
    /// A missing, untrusted or expired certificate fails the handshake.
    Require,
    /// Any or no certificate completes the handshake; the request is then answered with the
    /// DFDG fault that explains what is wrong (1101 missing, 1012 logon failed). Nothing passes.
    Diagnose,
}

impl ClientAuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMode::Require => "require",
            ClientAuthMode::Diagnose => "diagnose",
        }
    }
}

/// What happens to a request that does not match its operation's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ValidationMode {
    /// Requests are not checked against the schema.
    Off,
    /// Violations are journaled; the answer is the normal one.
    Report,
    /// Violations are answered with DFDG fault 1014 (message not valid), missing STAR headers
    /// with 8232/8233.
    Enforce,
}

impl ValidationMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationMode::Off => "off",
            ValidationMode::Report => "report",
            ValidationMode::Enforce => "enforce",
        }
    }
}

/// Settings of one service of the catalog, by its WSDL service name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSettings {
    /// Serve the service at this path instead of its soap:address path.
    pub path: Option<String>,
    /// Validation mode of this service, over the catalog's.
    pub validation: Option<ValidationMode>,
}

/// Where the WSDL catalog comes from and how requests are checked against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogConfig {
    /// Folders whose `*.wsdl` files are served. Missing or empty: every POST gets the generic
    /// receipt, as before there was a catalog.
    pub dirs: Vec<PathBuf>,
    pub validation: ValidationMode,
    /// Per-service overrides, by WSDL service name.
    pub services: HashMap<String, ServiceSettings>,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        CatalogConfig {
            dirs: vec![PathBuf::from("wsdl")],
            validation: ValidationMode::Report,
            services: HashMap::new(),
        }
    }
}

/// Bounds on every wait and every input, so that no client can hold the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body accepted; larger ones get 413 with a fault.
    pub max_body: u64,
    /// How much of each request and response body the journal keeps.
    pub journal_body_cap: u64,
    /// Time allowed for the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time allowed for a request's headers (and for an idle keep-alive connection).
    pub header_timeout: Duration,
    /// Time allowed for receiving a request's body.
    pub body_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// How long shutdown waits for open connections to finish.
    pub shutdown_drain: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 10 * 1024 * 1024,
            journal_body_cap: 256 * 1024,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            max_connections: 1024,
            shutdown_drain: Duration::from_secs(10),
        }
    }
}

/// The admin listener's default address: loopback only.
pub const DEFAULT_ADMIN_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 8080);

/// A bearer token for the admin listener. Never shown by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// A token from text (surrounding whitespace, e.g. a file's final newline, is dropped).
    pub fn new(text: &str) -> anyhow::Result<AdminToken> {
        let token = text.trim();
        if token.is_empty() {
            anyhow::bail!("the admin token is empty");
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            anyhow::bail!("the admin token must be printable ASCII without spaces");
        }
        Ok(AdminToken(token.to_owned()))
    }

    /// The token itself, to send it (e.g. `verify --admin`). Never log it.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Compares in constant time (for a given length), so timing does not reveal the token.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let expected = self.0.as_bytes();
        if presented.len() != expected.len() {
            return false;
        }
        expected
            .iter()
            .zip(presented)
            .fold(0u8, |difference, (a, b)| difference | (a ^ b))
            == 0
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl FromStr for AdminToken {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        AdminToken::new(text).map_err(|error| error.to_string())
    }
}

/// The admin listener (plain HTTP: JSON API, dashboard, metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Required when `listen` is not a loopback address; when set, required everywhere.
    pub token: Option<AdminToken>,
    /// Names requests may address the listener by, besides its own address, `localhost` and
    /// the server names (any other `Host` is refused: DNS rebinding).
    pub hosts: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(DEFAULT_ADMIN_LISTEN),
            token: None,
            hosts: Vec::new(),
        }
    }
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address of the SOAP listener.
    pub listen: SocketAddr,
    /// Folder of the generated test PKI (CA, server and demo client certificates).
    pub certs_dir: PathBuf,
    /// A server certificate chain and key of the user's own; when set, no PKI is generated and
    /// only `client_cas` are trusted.
    pub server_identity: Option<(PathBuf, PathBuf)>,
    /// Extra CA certificates (PEM) trusted for client certificates, e.g. real OCES test CAs.
    pub client_cas: Vec<PathBuf>,
    /// Extra names and addresses the generated server certificate covers.
    pub server_names: Vec<String>,
    pub client_auth: ClientAuthMode,
    /// The SQLite journal file (when no `journal_url` is set).
    pub journal: PathBuf,
    /// A PostgreSQL journal shared by several replicas, instead of the file.
    pub journal_url: Option<Database>,
    /// How much the journal keeps (`[journal]` max_calls, max_age, max_size).
    pub retention: Retention,
    /// This replica's name: every JSON log line carries it (default: the host name), and
    /// every `/metrics` sample is labelled with it when set.
    pub replica: Option<String>,
    /// The folder of scenario rule files; `None`: no rules, every call gets the default answer.
    pub scenarios: Option<PathBuf>,
    pub limits: Limits,
    pub admin: AdminConfig,
    pub catalog: CatalogConfig,
    pub onboarding: OnboardingConfig,
    /// STAR's pushes to suppliers' webhooks (`[wsb]`).
    pub wsb: WsbConfig,
}

/// The onboarding rehearsal: the supplier registry and how strictly identities are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnboardingConfig {
    /// The supplier registry file; while it does not exist the mock runs in open mode.
    pub registry: PathBuf,
    /// Strict mode: a call's first identity finding becomes a fault with its DFDG code.
    pub strict: bool,
}

impl Default for OnboardingConfig {
    fn default() -> Self {
        OnboardingConfig {
            registry: PathBuf::from(crate::supplier::DEFAULT_REGISTRY),
            strict: false,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            certs_dir: PathBuf::from("certs"),
            server_identity: None,
            client_cas: Vec::new(),
            server_names: Vec::new(),
            client_auth: ClientAuthMode::Require,
            journal: PathBuf::from("dfdg-mock.sqlite"),
            journal_url: None,
            retention: Retention::default(),
            replica: None,
            scenarios: None,
            limits: Limits::default(),
            admin: AdminConfig::default(),
            catalog: CatalogConfig::default(),
            onboarding: OnboardingConfig::default(),
            wsb: WsbConfig::default(),
        }
    }
}

/// The replica name when none is configured: the host name (in a container, its id).
pub fn default_replica() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "dfdg-mock".to_owned())
}

impl Config {
    /// Where the journal lives: the database when a URL is set, else the file.
    pub fn journal_location(&self) -> Location {
        match &self.journal_url {
            Some(database) => Location::Database(std::sync::Arc::new(database.clone())),
            None => Location::File(self.journal.clone()),
        }
    }

    /// What [`crate::journal::open`] needs.
    pub fn journal_settings(&self) -> crate::journal::Settings {
        crate::journal::Settings {
            location: self.journal_location(),
            retention: self.retention,
        }
    }
}

/// A PostgreSQL URL as given on the command line, in the environment or in the config file;
/// parsed into a [`Database`] once the settings are merged. `Debug` masks its password.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct JournalUrl(String);

impl JournalUrl {
    /// The checked database, or an error that shows the URL with its password masked.
    pub fn database(&self) -> anyhow::Result<Database> {
        self.0
            .parse()
            .map_err(|error: String| anyhow::anyhow!("the journal URL is not valid: {error}"))
    }
}

impl FromStr for JournalUrl {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(JournalUrl(text.to_owned()))
    }
}

impl fmt::Debug for JournalUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JournalUrl")
            .field(&crate::journal::postgres::redact(&self.0))
            .finish()
    }
}

/// Flags of `serve`; each also reads an environment variable.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Config file (TOML). Default: ./dfdg-mock.toml when it exists.
    #[arg(long, env = "DFDG_MOCK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on for SOAP over mutual TLS. [default: 127.0.0.1:8443]
    #[arg(long, env = "DFDG_MOCK_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Folder of the test PKI, generated on first start. [default: certs]
    #[arg(long, env = "DFDG_MOCK_CERTS_DIR", value_name = "DIR")]
    pub certs_dir: Option<PathBuf>,
    /// Server certificate chain (PEM) of your own instead of the generated one (needs --key).
    #[arg(long, env = "DFDG_MOCK_CERT", value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, env = "DFDG_MOCK_KEY", value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Extra CA certificate (PEM) to trust for client certificates; repeatable or comma-separated.
    #[arg(
        long,
        env = "DFDG_MOCK_CLIENT_CA",
        value_name = "FILE",
        value_delimiter = ','
    )]
    pub client_ca: Vec<PathBuf>,
    /// Extra DNS name or IP address for the generated server certificate; repeatable or
    /// comma-separated.
    #[arg(
        long = "server-name",
        visible_alias = "san",
        env = "DFDG_MOCK_SERVER_NAMES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub server_names: Vec<String>,
    /// How client certificates are checked. [default: require]
    #[arg(long, env = "DFDG_MOCK_CLIENT_AUTH", value_enum)]
    pub client_auth: Option<ClientAuthMode>,
    /// SQLite journal of every call. [default: dfdg-mock.sqlite]
    #[arg(long, env = "DFDG_MOCK_JOURNAL", value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// A PostgreSQL journal instead of the file, shared by several replicas:
    /// postgres://user:password@host:5432/database (TLS: ?sslmode=require&sslrootcert=ca.pem).
    #[arg(
        long,
        env = "DFDG_MOCK_JOURNAL_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub journal_url: Option<JournalUrl>,
    /// This replica's name, in JSON logs (default: the host name) and as the `replica` label
    /// of every /metrics sample (default: none).
    #[arg(long, env = "DFDG_MOCK_REPLICA", value_name = "NAME")]
    pub replica: Option<String>,
    /// Calls the journal keeps; the oldest beyond it are removed (0: no limit). [default:
    /// 1000000]
    #[arg(long, env = "DFDG_MOCK_JOURNAL_MAX_CALLS", value_name = "N")]
    pub journal_max_calls: Option<u64>,
    /// Calls older than this are removed, e.g. 30d or 12h (0: no limit). [default: none]
    #[arg(long, env = "DFDG_MOCK_JOURNAL_MAX_AGE", value_name = "DURATION")]
    pub journal_max_age: Option<Seconds>,
    /// Space the journal may take on disk; the oldest calls beyond it are removed (0: no
    /// limit). [default: 2GiB]
    #[arg(long, env = "DFDG_MOCK_JOURNAL_MAX_SIZE", value_name = "SIZE")]
    pub journal_max_size: Option<ByteSize>,
    /// Folder of scenario rule files (*.toml), reloaded when they change. [default: scenarios,
    /// when it exists]
    #[arg(long, env = "DFDG_MOCK_SCENARIOS", value_name = "DIR")]
    pub scenarios: Option<PathBuf>,
    /// Largest request body, e.g. 10MiB. [default: 10MiB]
    #[arg(long, env = "DFDG_MOCK_MAX_BODY", value_name = "SIZE")]
    pub max_body: Option<ByteSize>,
    /// How much of each body the journal keeps. [default: 256KiB]
    #[arg(long, env = "DFDG_MOCK_JOURNAL_BODY_CAP", value_name = "SIZE")]
    pub journal_body_cap: Option<ByteSize>,
    /// TLS handshake time limit, e.g. 10s. [default: 10s]
    #[arg(long, env = "DFDG_MOCK_HANDSHAKE_TIMEOUT", value_name = "DURATION")]
    pub handshake_timeout: Option<Seconds>,
    /// Time limit for request headers and idle keep-alive. [default: 30s]
    #[arg(long, env = "DFDG_MOCK_HEADER_TIMEOUT", value_name = "DURATION")]
    pub header_timeout: Option<Seconds>,
    /// Time limit for receiving a request body. [default: 60s]
    #[arg(long, env = "DFDG_MOCK_BODY_TIMEOUT", value_name = "DURATION")]
    pub body_timeout: Option<Seconds>,
    /// Connections served at once. [default: 1024]
    #[arg(long, env = "DFDG_MOCK_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<usize>,
    /// How long shutdown waits for open connections. [default: 10s]
    #[arg(long, env = "DFDG_MOCK_SHUTDOWN_DRAIN", value_name = "DURATION")]
    pub shutdown_drain: Option<Seconds>,
    /// Address of the admin listener (plain HTTP: API, dashboard, metrics); off loopback it
    /// needs a token. [default: 127.0.0.1:8080]
    #[arg(long, env = "DFDG_MOCK_ADMIN_LISTEN", value_name = "ADDR")]
    pub admin_listen: Option<SocketAddr>,
    /// File holding the admin bearer token.
    #[arg(long, env = "DFDG_MOCK_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// The admin bearer token itself; prefer the environment variable or --admin-token-file,
    /// since a flag shows in `ps`.
    #[arg(
        long,
        env = "DFDG_MOCK_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<AdminToken>,
    /// A name the admin listener may be addressed by (e.g. a compose service name), besides its
    /// own address, localhost and the --server-name names; repeatable or comma-separated. Any
    /// other Host is refused (DNS rebinding).
    #[arg(
        long = "admin-host",
        env = "DFDG_MOCK_ADMIN_HOSTS",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub admin_hosts: Vec<String>,
    /// Folder of WSDL files to serve; repeatable or comma-separated. [default: wsdl]
    #[arg(
        long = "wsdl",
        env = "DFDG_MOCK_WSDL",
        value_name = "DIR",
        value_delimiter = ','
    )]
    pub wsdl: Vec<PathBuf>,
    /// Request validation against the WSDL's schema. [default: report]
    #[arg(long, env = "DFDG_MOCK_VALIDATION", value_enum)]
    pub validation: Option<ValidationMode>,
    /// Supplier registry file, re-read when it changes; while it does not exist any trusted
    /// certificate may call everything (open mode). [default: suppliers.toml]
    #[arg(long, env = "DFDG_MOCK_SUPPLIERS", value_name = "FILE")]
    pub suppliers: Option<PathBuf>,
    /// Strict identity checks: a call's first finding (e.g. a UserIdentifier that is not the
    /// certificate's caller id) is answered with a fault instead of only being journaled.
    #[arg(long, env = "DFDG_MOCK_STRICT")]
    pub strict: bool,
    #[command(flatten)]
    pub wsb: WsbArgs,
}

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    replica: Option<String>,
    journal: Option<FileJournal>,
    #[serde(default)]
    tls: FileTls,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    admin: FileAdmin,
    #[serde(default)]
    scenarios: FileScenarios,
    #[serde(default)]
    catalog: FileCatalog,
    #[serde(default)]
    onboarding: FileOnboarding,
    #[serde(default)]
    wsb: wsb::FileWsb,
}

/// `journal = "file.sqlite"`, or a `[journal]` table with the file and its retention.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FileJournal {
    Path(PathBuf),
    Table(FileJournalTable),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileJournalTable {
    path: Option<PathBuf>,
    url: Option<JournalUrl>,
    max_calls: Option<u64>,
    max_age: Option<Seconds>,
    max_size: Option<ByteSize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOnboarding {
    registry: Option<PathBuf>,
    strict: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAdmin {
    listen: Option<SocketAddr>,
    token_file: Option<PathBuf>,
    hosts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScenarios {
    dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileCatalog {
    dirs: Option<Vec<PathBuf>>,
    validation: Option<ValidationMode>,
    #[serde(default)]
    services: HashMap<String, ServiceSettings>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTls {
    certs_dir: Option<PathBuf>,
    server_cert: Option<PathBuf>,
    server_key: Option<PathBuf>,
    #[serde(default)]
    client_ca: Vec<PathBuf>,
    #[serde(default)]
    server_names: Vec<String>,
    client_auth: Option<ClientAuthMode>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_body: Option<ByteSize>,
    journal_body_cap: Option<ByteSize>,
    handshake_timeout: Option<Seconds>,
    header_timeout: Option<Seconds>,
    body_timeout: Option<Seconds>,
    max_connections: Option<usize>,
    shutdown_drain: Option<Seconds>,
}

impl Config {
    /// Resolves flags and environment (in `args`) over the config file over the defaults.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                read_file(Path::new(DEFAULT_CONFIG_FILE))?
            }
            None => FileConfig::default(),
        };
        let mut config = Config::merge(args, file)?;
        if config.scenarios.is_none() && Path::new(DEFAULT_SCENARIOS_DIR).is_dir() {
            config.scenarios = Some(PathBuf::from(DEFAULT_SCENARIOS_DIR));
        }
        Ok(config)
    }

    /// Parses a config file's text; errors say `path:line:column: what`.
    pub fn from_toml(path: &Path, text: &str) -> anyhow::Result<Config> {
        Config::merge(&ServeArgs::default(), parse_file(path, text)?)
    }

    fn merge(args: &ServeArgs, file: FileConfig) -> anyhow::Result<Config> {
        let defaults = Config::default();
        let limits = Limits {
            max_body: pick(
                args.max_body,
                file.limits.max_body,
                ByteSize(defaults.limits.max_body),
            )
            .0,
            journal_body_cap: pick(
                args.journal_body_cap,
                file.limits.journal_body_cap,
                ByteSize(defaults.limits.journal_body_cap),
            )
            .0,
            handshake_timeout: pick(
                args.handshake_timeout,
                file.limits.handshake_timeout,
                Seconds(defaults.limits.handshake_timeout),
            )
            .0,
            header_timeout: pick(
                args.header_timeout,
                file.limits.header_timeout,
                Seconds(defaults.limits.header_timeout),
            )
            .0,
            body_timeout: pick(
                args.body_timeout,
                file.limits.body_timeout,
                Seconds(defaults.limits.body_timeout),
            )
            .0,
            max_connections: pick(
                args.max_connections,
                file.limits.max_connections,
                defaults.limits.max_connections,
            ),
            shutdown_drain: pick(
                args.shutdown_drain,
                file.limits.shutdown_drain,
                Seconds(defaults.limits.shutdown_drain),
            )
            .0,
        };
        if limits.max_connections == 0 {
            anyhow::bail!("max_connections must be at least 1");
        }
        let file_journal = match file.journal {
            None => FileJournalTable::default(),
            Some(FileJournal::Path(path)) => FileJournalTable {
                path: Some(path),
                ..FileJournalTable::default()
            },
            Some(FileJournal::Table(table)) => table,
        };
        // 0 turns a limit off.
        let retention = Retention {
            max_calls: args
                .journal_max_calls
                .or(file_journal.max_calls)
                .map_or(defaults.retention.max_calls, |n| (n > 0).then_some(n)),
            max_age: args
                .journal_max_age
                .or(file_journal.max_age)
                .map_or(defaults.retention.max_age, |age| {
                    (!age.0.is_zero()).then_some(age.0)
                }),
            max_size: args
                .journal_max_size
                .or(file_journal.max_size)
                .map_or(defaults.retention.max_size, |size| {
                    (size.0 > 0).then_some(size.0)
                }),
        };
        let server_identity = match (
            args.cert.clone().or(file.tls.server_cert),
            args.key.clone().or(file.tls.server_key),
        ) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => anyhow::bail!("a server certificate is set but no key: set both"),
            (None, Some(_)) => anyhow::bail!("a server key is set but no certificate: set both"),
        };
        let token = match (&args.admin_token, &args.admin_token_file) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(file)) => Some(read_token(file)?),
            (None, None) => file
                .admin
                .token_file
                .as_deref()
                .map(read_token)
                .transpose()?,
        };
        let admin = AdminConfig {
            listen: args
                .admin_listen
                .or(file.admin.listen)
                .unwrap_or(defaults.admin.listen),
            token,
            hosts: if args.admin_hosts.is_empty() {
                file.admin.hosts.unwrap_or_default()
            } else {
                args.admin_hosts.clone()
            },
        };
        Ok(Config {
            listen: args.listen.or(file.listen).unwrap_or(defaults.listen),
            certs_dir: args
                .certs_dir
                .clone()
                .or(file.tls.certs_dir)
                .unwrap_or(defaults.certs_dir),
            server_identity,
            client_cas: if args.client_ca.is_empty() {
                file.tls.client_ca
            } else {
                args.client_ca.clone()
            },
            server_names: if args.server_names.is_empty() {
                file.tls.server_names
            } else {
                args.server_names.clone()
            },
            client_auth: args
                .client_auth
                .or(file.tls.client_auth)
                .unwrap_or(defaults.client_auth),
            journal: args
                .journal
                .clone()
                .or(file_journal.path)
                .unwrap_or(defaults.journal),
            journal_url: args
                .journal_url
                .clone()
                .or(file_journal.url)
                .filter(|url| !url.0.trim().is_empty())
                .map(|url| url.database())
                .transpose()?,
            retention,
            replica: args.replica.clone().or(file.replica).or(defaults.replica),
            scenarios: args.scenarios.clone().or(file.scenarios.dir),
            limits,
            admin,
            catalog: CatalogConfig {
                dirs: if args.wsdl.is_empty() {
                    file.catalog.dirs.unwrap_or(defaults.catalog.dirs)
                } else {
                    args.wsdl.clone()
                },
                validation: args
                    .validation
                    .or(file.catalog.validation)
                    .unwrap_or(defaults.catalog.validation),
                services: file.catalog.services,
            },
            onboarding: OnboardingConfig {
                registry: args
                    .suppliers
                    .clone()
                    .or(file.onboarding.registry)
                    .unwrap_or_else(|| defaults.onboarding.registry.clone()),
                strict: args.strict || file.onboarding.strict.unwrap_or(defaults.onboarding.strict),
            },
            wsb: WsbConfig::merge(&args.wsb, file.wsb)?,
        })
    }
}

fn read_token(path: &Path) -> anyhow::Result<AdminToken> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the admin token file {}", path.display()))?;
    AdminToken::new(&text).with_context(|| format!("in the admin token file {}", path.display()))
}

fn pick<T>(flag: Option<T>, file: Option<T>, default: T) -> T {
    flag.or(file).unwrap_or(default)
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    parse_file(path, &text)
}

fn parse_file(path: &Path, text: &str) -> anyhow::Result<FileConfig> {
    parse_toml(path, text)
}

/// Parses a TOML file of the project's format family (config, supplier registry,
/// expectations); an error says `path:line:column: what`.
pub fn parse_toml<T: serde::de::DeserializeOwned>(path: &Path, text: &str) -> anyhow::Result<T> {
    toml::from_str(text).map_err(|error| {
        let at = error
            .span()
            .map(|span| Position::of_offset(text, span.start))
            .map_or(String::new(), |p| format!(":{}:{}", p.line, p.column));
        anyhow::anyhow!("{}{at}: {}", path.display(), error.message().trim())
    })
}

/// Splits `10MiB` into the number and what follows it.
fn number_and_unit(text: &str) -> (&str, &str) {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(split)
}

/// A size in bytes, written as `1048576`, `512KiB`, `10MiB`, `1GiB` (or kB/MB/GB, powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (number, unit) = number_and_unit(text);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("'{text}' is not a size: write e.g. 10MiB, 512KiB or 1048576"))?;
        let factor = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" => 1 << 10,
            "m" | "mib" => 1 << 20,
            "g" | "gib" => 1 << 30,
            "kb" => 1_000,
            "mb" => 1_000_000,
            "gb" => 1_000_000_000,
            other => {
                return Err(format!(
                    "unknown size unit '{other}' in '{text}': use B, KiB, MiB or GiB"
                ))
            }
        };
        number
            .checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("'{text}' is too large"))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(deserializer)? {
            NumberOrText::Number(n) => Ok(ByteSize(n)),
            NumberOrText::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A duration, written as `250ms`, `10s`, `2m` (a bare number is seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (number, unit) = number_and_unit(text);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("'{text}' is not a duration: write e.g. 10s, 250ms or 2m"))?;
        let duration = match unit.trim() {
            "ms" => Duration::from_millis(number),
            "" | "s" => Duration::from_secs(number),
            "m" | "min" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "d" => Duration::from_secs(number.saturating_mul(86_400)),
            other => {
                return Err(format!(
                    "unknown duration unit '{other}' in '{text}': use ms, s, m, h or d"
                ))
            }
        };
        Ok(Seconds(duration))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(deserializer)? {
            NumberOrText::Number(n) => Ok(Seconds(Duration::from_secs(n))),
            NumberOrText::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(u64),
    Text(String),
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            n if n >= 1 << 20 && n % (1 << 20) == 0 => write!(f, "{}MiB", n >> 20),
            n if n >= 1 << 10 && n % (1 << 10) == 0 => write!(f, "{}KiB", n >> 10),
            n => write!(f, "{n}B"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_without_file_or_flags() {
        let config = Config::merge(&ServeArgs::default(), FileConfig::default()).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(config.limits.max_body, 10 * 1024 * 1024);
    }

    #[test]
    fn onboarding_registry_and_strict_come_from_file_or_flags() {
        let file = parse_file(
            Path::new("x.toml"),
            "[onboarding]\nregistry = \"rehearsal/suppliers.toml\"\nstrict = true\n",
        )
        .unwrap();
        let config = Config::merge(&ServeArgs::default(), file).unwrap();
        assert_eq!(
            config.onboarding.registry,
            PathBuf::from("rehearsal/suppliers.toml")
        );
        assert!(config.onboarding.strict);
        let args = ServeArgs {
            suppliers: Some(PathBuf::from("other.toml")),
            strict: true,
            ..ServeArgs::default()
        };
        let config = Config::merge(&args, FileConfig::default()).unwrap();
        assert_eq!(config.onboarding.registry, PathBuf::from("other.toml"));
        assert!(config.onboarding.strict);
        let error = parse_file(Path::new("x.toml"), "[onboarding]\nstrikt = true\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(error.starts_with("x.toml:2:1"), "{error}");
    }

    #[test]
    fn the_journal_section_sets_the_file_and_its_retention() {
        let config = Config::from_toml(Path::new("x.toml"), "").unwrap();
        assert_eq!(config.retention, Retention::default());
        assert_eq!(config.retention.max_calls, Some(1_000_000));
        assert_eq!(config.retention.max_size, Some(2 << 30));
        let text = "[journal]\npath = \"/data/j.sqlite\"\nmax_calls = 5000\nmax_age = \"30d\"\nmax_size = \"0\"\n";
        let config = Config::from_toml(Path::new("x.toml"), text).unwrap();
        assert_eq!(config.journal, PathBuf::from("/data/j.sqlite"));
        assert_eq!(
            config.retention,
            Retention {
                max_calls: Some(5000),
                max_age: Some(Duration::from_secs(30 * 86_400)),
                max_size: None,
            }
        );
        let args = ServeArgs {
            journal_max_calls: Some(0),
            journal_max_size: Some(ByteSize(1 << 20)),
            ..ServeArgs::default()
        };
        let config = Config::merge(&args, parse_file(Path::new("x.toml"), text).unwrap()).unwrap();
        assert_eq!(config.retention.max_calls, None);
        assert_eq!(config.retention.max_size, Some(1 << 20));
        let error = Config::from_toml(Path::new("x.toml"), "[journal]\nmax_cals = 1\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("x.toml:"), "{error}");
    }

    #[test]
    fn a_journal_url_chooses_postgresql_and_never_shows_its_password() {
        let config = Config::from_toml(Path::new("x.toml"), "").unwrap();
        assert_eq!(
            config.journal_location(),
            Location::File("dfdg-mock.sqlite".into())
        );
        let text = "replica = \"a\"\n[journal]\nurl = \"postgres://dfdg:s3cret@db:5432/journal\"\n";
        let config = Config::from_toml(Path::new("x.toml"), text).unwrap();
        assert_eq!(config.replica.as_deref(), Some("a"));
        assert_eq!(
            config.journal_location().to_string(),
            "postgres://dfdg:***@db:5432/journal"
        );
        assert!(!format!("{config:?}").contains("s3cret"));
        let args = ServeArgs {
            journal_url: Some("postgres://x:y@other/j".parse().unwrap()),
            ..ServeArgs::default()
        };
        assert!(!format!("{args:?}").contains(":y@"));
        let config = Config::merge(&args, parse_file(Path::new("x.toml"), text).unwrap()).unwrap();
        assert_eq!(
            config.journal_location().to_string(),
            "postgres://x:***@other/j"
        );
        let error = Config::from_toml(
            Path::new("x.toml"),
            "[journal]\nurl = \"postgres://u:s3cret@db/j?sslmode=always\"\n",
        )
        .unwrap_err();
        let error = format!("{error:#}");
        assert!(
            !error.contains("s3cret") && error.contains("sslmode"),
            "{error}"
        );
    }

    #[test]
    fn file_values_apply_and_flags_win() {
        let text = r#"
listen = "127.0.0.1:9443"
journal = "/tmp/j.sqlite"

[tls]
client_auth = "diagnose"
server_names = ["dfdg-mock"]

[limits]
max_body = "1MiB"
handshake_timeout = "250ms"
max_connections = 8

[scenarios]
dir = "rehearsal"
"#;
        let file = parse_file(Path::new("x.toml"), text).unwrap();
        let args = ServeArgs {
            listen: Some("127.0.0.1:7443".parse().unwrap()),
            ..ServeArgs::default()
        };
        let config = Config::merge(&args, file).unwrap();
        assert_eq!(config.listen, "127.0.0.1:7443".parse().unwrap());
        assert_eq!(config.journal, PathBuf::from("/tmp/j.sqlite"));
        assert_eq!(config.client_auth, ClientAuthMode::Diagnose);
        assert_eq!(config.server_names, vec!["dfdg-mock".to_string()]);
        assert_eq!(config.limits.max_body, 1 << 20);
        assert_eq!(config.limits.handshake_timeout, Duration::from_millis(250));
        assert_eq!(config.limits.max_connections, 8);
        assert_eq!(config.scenarios, Some(PathBuf::from("rehearsal")));
    }

    #[test]
    fn file_errors_name_file_line_and_column() {
        let error = Config::from_toml(Path::new("dfdg-mock.toml"), "listen = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("dfdg-mock.toml:1:10: "), "{error}");
        let error = Config::from_toml(Path::new("dfdg-mock.toml"), "[limits]\nmax_bdy = 3\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("dfdg-mock.toml:2:1: "), "{error}");
        assert!(error.contains("max_bdy"), "{error}");
        let error = Config::from_toml(Path::new("c.toml"), "[limits]\nmax_body = \"ten\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("c.toml:2:12: "), "{error}");
        assert!(error.contains("not a size"), "{error}");
    }

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!("10MiB".parse::<ByteSize>().unwrap(), ByteSize(10 << 20));
        assert_eq!("512 KiB".parse::<ByteSize>().unwrap(), ByteSize(512 << 10));
        assert_eq!("1000".parse::<ByteSize>().unwrap(), ByteSize(1000));
        assert!("1TB".parse::<ByteSize>().is_err());
        assert_eq!(
            "250ms".parse::<Seconds>().unwrap(),
            Seconds(Duration::from_millis(250))
        );
        assert_eq!(
            "2m".parse::<Seconds>().unwrap(),
            Seconds(Duration::from_secs(120))
        );
        assert!("soon".parse::<Seconds>().is_err());
        assert_eq!(ByteSize(10 << 20).to_string(), "10MiB");
    }

    #[test]
    fn admin_token_comes_from_a_file_and_never_shows_in_debug() {
        let folder = tempfile::tempdir().unwrap();
        let token_file = folder.path().join("token");
        std::fs::write(&token_file, "s3cret-token\n").unwrap();
        let text = format!(
            "[admin]\nlisten = \"0.0.0.0:9090\"\ntoken_file = {:?}\n",
            token_file.display().to_string()
        );
        let config = Config::from_toml(Path::new("x.toml"), &text).unwrap();
        assert_eq!(config.admin.listen, "0.0.0.0:9090".parse().unwrap());
        let token = config.admin.token.clone().unwrap();
        assert!(token.matches(b"s3cret-token"));
        assert!(!token.matches(b"s3cret-tokeN"));
        assert!(!token.matches(b"s3cret"));
        assert!(!format!("{config:?}").contains("s3cret"));
        assert!(AdminToken::new("  \n").is_err());
    }

    #[test]
    fn half_a_server_identity_is_refused() {
        let file = parse_file(Path::new("x.toml"), "[tls]\nserver_cert = \"a.pem\"\n").unwrap();
        let error = Config::merge(&ServeArgs::default(), file).unwrap_err();
        assert!(error.to_string().contains("no key"));
    }

    #[test]
    fn catalog_settings_from_file_and_flags() {
        let text = r#"
[catalog]
dirs = ["contracts", "more"]
validation = "enforce"

[catalog.services.PersonStatusService]
validation = "off"
path = "/person"
"#;
        let file = parse_file(Path::new("c.toml"), text).unwrap();
        let config = Config::merge(&ServeArgs::default(), file).unwrap();
        assert_eq!(
            config.catalog.dirs,
            [PathBuf::from("contracts"), PathBuf::from("more")]
        );
        assert_eq!(config.catalog.validation, ValidationMode::Enforce);
        let person = &config.catalog.services["PersonStatusService"];
        assert_eq!(person.validation, Some(ValidationMode::Off));
        assert_eq!(person.path.as_deref(), Some("/person"));

        let args = ServeArgs {
            wsdl: vec![PathBuf::from("flag")],
            validation: Some(ValidationMode::Off),
            ..ServeArgs::default()
        };
        let file = parse_file(Path::new("c.toml"), text).unwrap();
        let config = Config::merge(&args, file).unwrap();
        assert_eq!(config.catalog.dirs, [PathBuf::from("flag")]);
        assert_eq!(config.catalog.validation, ValidationMode::Off);

        let typo = parse_file(
            Path::new("c.toml"),
            "[catalog]
validaton = \"off\"
",
        );
        assert!(typo.unwrap_err().to_string().contains("c.toml:2:1"));
        assert_eq!(Config::default().catalog.dirs, [PathBuf::from("wsdl")]);
        assert_eq!(Config::default().catalog.validation, ValidationMode::Report);
    }
}
