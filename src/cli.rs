//! The command line: argument types, and dispatch to one function per subcommand. Raw flags
//! become validated types here (or in [`crate::config`]) before any work starts; the work
//! itself is the library's ([`crate::instance`] for `serve`, [`crate::check`], ...), the
//! tables are [`crate::tables`]' and the start-up banner [`crate::banner`]'s.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use time::OffsetDateTime;

use crate::config::JournalUrl;
use crate::config::{Config, ServeArgs};
use crate::instance::Instance;
use crate::journal::{CallQuery, JournalReader, Location, RejectionQuery};
use crate::pki::{self, CertificateShape, ClientSpec, Oces2Kind, PkiPaths};
use crate::tables;
use crate::wsdl::Catalog;

mod wsb;

pub use crate::banner::{demo_request, DEMO_NAMESPACE, DEMO_PATH};

/// An offline imitation of STAR's DFDG and Jobnet SOAP webservices over mutual TLS.
///
/// Point a real SOAP client at it with a test OCES certificate: every call is answered with a
/// STAR-shaped receipt or fault and journaled with the caller's certificate identity, so a
/// supplier can rehearse STAR's onboarding test offline.
///
/// Without a subcommand, `serve` runs with its defaults.
#[derive(Debug, Parser)]
#[command(name = "dfdg-mock", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// How log lines are written to standard error: text, or json (one object per event with
    /// the replica's name, for a log aggregator).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t,
        env = "DFDG_MOCK_LOG_FORMAT",
        value_name = "FORMAT"
    )]
    pub log_format: crate::logging::LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve SOAP over mutual TLS (creates a test PKI under certs/ on first start).
    ///
    /// Every setting can also come from dfdg-mock.toml or a DFDG_MOCK_* environment variable;
    /// flags win over the environment, which wins over the file.
    Serve(Box<ServeArgs>),
    /// Make test certificates: a CA, the server certificate, OCES-shaped client certificates.
    #[command(subcommand)]
    Pki(PkiCommand),
    /// List journaled calls (newest first), or refused TLS handshakes with --rejected;
    /// --follow prints new calls as they arrive.
    Calls(CallsArgs),
    /// Register suppliers: their certificates, category and allowed services.
    ///
    /// Without a registry file the mock is open: any trusted certificate may call everything.
    /// Once a supplier is registered, calls are authorized with DFDG's codes: a certificate of
    /// no supplier gets 1012, a service not allowed 1013, a write by a small supplier 4575.
    #[command(subcommand)]
    Supplier(SupplierCommand),
    /// Confirm that a supplier received one of its receipts (step 3 of STAR's onboarding test).
    ///
    /// Give either id of the answer: the MessageIdentifier of its ServiceReceipt, or its
    /// ServiceRequestLogReferenceIdentifier; the call's receipt is confirmed (the
    /// MessageIdentifier, or for an answer without a ServiceReceipt the log reference). With a
    /// supplier registry, --supplier is required and only that supplier's own receipts can be
    /// confirmed. Safe beside a running server.
    Confirm(ConfirmArgs),
    /// STAR's onboarding test: where each supplier stands.
    #[command(subcommand)]
    Onboarding(OnboardingCommand),
    /// Check that the SOAP listener answers over mutual TLS: exit 0 if `GET /` gives 200, else 1.
    ///
    /// Connects to the listen address (0.0.0.0 and :: are probed on loopback), trusts only the
    /// test CA and presents the demo client certificate from the certs folder, both read from the
    /// same settings as `serve` (DFDG_MOCK_LISTEN, DFDG_MOCK_CERTS_DIR, dfdg-mock.toml). Meant for
    /// container health checks.
    Health(HealthArgs),
    /// Check expectations ("at least/exactly/at most N calls matching …") against the journal,
    /// for CI: exit code 0 when all pass, 1 otherwise, near misses listed on failure.
    Verify(VerifyArgs),
    /// Check what `serve` would load — the WSDL catalog and the scenario files — print what
    /// loads and every problem with its file and line, and exit non-zero if there is any.
    ///
    /// Reads the settings `serve` reads for them (flags, DFDG_MOCK_* variables, dfdg-mock.toml),
    /// and also shows whether the running server's latest scenario reload (from the journal)
    /// was refused.
    Check(CheckArgs),
    /// Make a supplier's welcome pack: issue its OCES3 client certificate from the test CA,
    /// register it, and write a folder with everything it needs for the onboarding test.
    ///
    /// The folder holds the CA certificate, the client certificate, key and PKCS#12, the
    /// endpoint list, the WSDLs of the allowed services, one valid example request per allowed
    /// operation (STAR headers filled in for the certificate), ready-to-run commands and a README
    /// in Danish and English. The PKCS#12 password is printed once and written nowhere.
    WelcomePack(Box<WelcomePackArgs>),
    /// WSB: STAR's pushes to suppliers' webhooks, on the running server (through its admin
    /// listener): send a message, list deliveries and their attempts, replay, check a supplier.
    ///
    /// Suppliers keep their subscriptions on the SOAP listener's AbonnementService
    /// (/AbonnementService/v1/SyncWebhookAbonnementer) with their own certificate; their
    /// systems' base URLs are [[supplier.system]] entries in the supplier registry.
    #[command(subcommand)]
    Wsb(wsb::WsbCommand),
}

/// What `check` reads: the parts of `serve`'s settings that name what it loads.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CheckArgs {
    /// Config file (TOML), read as `serve` reads it. Default: ./dfdg-mock.toml when it exists.
    #[arg(long, env = "DFDG_MOCK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Folder of WSDL files; repeatable or comma-separated. [default: wsdl]
    #[arg(
        long = "wsdl",
        env = "DFDG_MOCK_WSDL",
        value_name = "DIR",
        value_delimiter = ','
    )]
    pub wsdl: Vec<PathBuf>,
    /// Request validation against the WSDL's schema, as `serve` would run it. [default: report]
    #[arg(long, env = "DFDG_MOCK_VALIDATION", value_enum)]
    pub validation: Option<crate::config::ValidationMode>,
    /// Folder of scenario rule files (*.toml). [default: scenarios, when it exists]
    #[arg(long, env = "DFDG_MOCK_SCENARIOS", value_name = "DIR")]
    pub scenarios: Option<PathBuf>,
    /// Supplier registry file. [default: suppliers.toml]
    #[arg(long, env = "DFDG_MOCK_SUPPLIERS", value_name = "FILE")]
    pub suppliers: Option<PathBuf>,
    /// The running server's journal, for its latest scenario reload. [default:
    /// dfdg-mock.sqlite]
    #[arg(long, env = "DFDG_MOCK_JOURNAL", value_name = "FILE")]
    pub journal: Option<PathBuf>,
}

impl CheckArgs {
    fn serve_args(&self) -> ServeArgs {
        ServeArgs {
            config: self.config.clone(),
            wsdl: self.wsdl.clone(),
            validation: self.validation,
            scenarios: self.scenarios.clone(),
            suppliers: self.suppliers.clone(),
            journal: self.journal.clone(),
            ..ServeArgs::default()
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct WelcomePackArgs {
    /// The supplier's name, e.g. "Testleverandør ApS".
    #[arg(long)]
    pub supplier: String,
    /// CVR number, 8 digits (fictitious test organisations start with 9).
    #[arg(long)]
    pub cvr: String,
    /// small: read operations only; medium and large may also write.
    #[arg(long, value_enum)]
    pub category: crate::supplier::Category,
    /// Services it may call, comma-separated, as the catalog names them
    /// (e.g. PersonStatusService,CodeListService).
    #[arg(long, value_delimiter = ',', required = true)]
    pub services: Vec<String>,
    /// The pack's folder (created; must be empty or absent).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also write DIR.zip.
    #[arg(long)]
    pub zip: bool,
    /// The mock's address, written into WSDLs, commands and README.
    #[arg(long, default_value = crate::welcome::DEFAULT_URL, value_name = "URL")]
    pub url: String,
    /// The test PKI (created as `serve` creates it when absent).
    #[arg(
        long,
        default_value = "certs",
        env = "DFDG_MOCK_CERTS_DIR",
        value_name = "DIR"
    )]
    pub certs_dir: PathBuf,
    /// The supplier registry file.
    #[arg(long, alias = "registry", env = "DFDG_MOCK_SUPPLIERS", default_value = crate::supplier::DEFAULT_REGISTRY, value_name = "FILE")]
    pub suppliers: PathBuf,
    /// The WSDL catalog folders the services come from (as `serve --wsdl`).
    #[arg(
        long,
        default_value = "wsdl",
        env = "DFDG_MOCK_WSDL",
        value_name = "DIR",
        value_delimiter = ','
    )]
    pub wsdl: Vec<PathBuf>,
    /// Overwrite an existing pack, zip and certificate of this supplier.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum SupplierCommand {
    /// Register a supplier. One of the same name is replaced only with --force; without it the
    /// command says what would change.
    Add {
        #[command(flatten)]
        registry: RegistryArg,
        /// Replace a supplier of the same name (its revoked identities stay revoked).
        #[arg(long)]
        force: bool,
        /// The WSDL catalog folders the services are checked against (as `serve --wsdl`).
        #[arg(
            long,
            default_value = "wsdl",
            env = "DFDG_MOCK_WSDL",
            value_name = "DIR",
            value_delimiter = ','
        )]
        wsdl: Vec<PathBuf>,
        /// The supplier's name, e.g. "Testleverandør ApS".
        #[arg(long)]
        name: String,
        /// CVR number, 8 digits.
        #[arg(long)]
        cvr: String,
        /// small: read operations only; medium and large may also write.
        #[arg(long, value_enum)]
        category: crate::supplier::Category,
        /// Services it may call, comma-separated, as the catalog names them (e.g.
        /// PersonStatusService,CodeListService); an unknown name is refused with a "did you mean".
        #[arg(long, value_delimiter = ',')]
        services: Vec<String>,
        /// A certificate identity of the supplier: STAR caller id (CVR:…-UUID:…) or
        /// SHA256:<fingerprint>; repeatable.
        #[arg(long = "identity", value_name = "ID")]
        identities: Vec<String>,
    },
    /// List registered suppliers.
    List {
        #[command(flatten)]
        registry: RegistryArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove a supplier by name.
    Remove {
        #[command(flatten)]
        registry: RegistryArg,
        name: String,
    },
    /// Revoke one of a supplier's certificates: its calls are then refused (1012).
    Revoke {
        #[command(flatten)]
        registry: RegistryArg,
        name: String,
        /// The certificate identity to revoke (caller id or SHA256:<fingerprint>).
        #[arg(long = "identity", value_name = "ID")]
        identity: String,
    },
}

#[derive(Debug, clap::Args)]
pub struct ConfirmArgs {
    /// The answer's MessageIdentifier (in its ServiceReceipt) or its
    /// ServiceRequestLogReferenceIdentifier.
    pub guid: String,
    /// The supplier confirming (required with a registry).
    #[arg(long)]
    pub supplier: Option<String>,
    /// Free text kept with the confirmation.
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub journal: JournalArgs,
    /// The supplier registry file (missing: open mode).
    #[arg(
        long,
        alias = "registry",
        env = "DFDG_MOCK_SUPPLIERS",
        default_value = crate::supplier::DEFAULT_REGISTRY,
        value_name = "FILE"
    )]
    pub suppliers: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum OnboardingCommand {
    /// The three steps per supplier (per caller id without a registry): a table, --json, or an
    /// HTML report with --html. Exits 1 while any shown supplier is incomplete, so CI can wait
    /// for it.
    Status(StatusArgs),
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Only this supplier (name), or caller id in open mode.
    #[arg(long)]
    pub supplier: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report (Danish with English) to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub journal: JournalArgs,
    /// The supplier registry file (missing: open mode).
    #[arg(
        long,
        alias = "registry",
        env = "DFDG_MOCK_SUPPLIERS",
        default_value = crate::supplier::DEFAULT_REGISTRY,
        value_name = "FILE"
    )]
    pub suppliers: PathBuf,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RegistryArg {
    /// The supplier registry file, as `serve --suppliers`.
    #[arg(
        long = "suppliers",
        alias = "registry",
        env = "DFDG_MOCK_SUPPLIERS",
        default_value = crate::supplier::DEFAULT_REGISTRY,
        value_name = "FILE"
    )]
    pub path: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// The expectations file (TOML, see the README).
    #[arg(long, value_name = "FILE")]
    pub expect: PathBuf,
    /// Ask a running dfdg-mock's admin listener, e.g. http://127.0.0.1:8080 (token from
    /// DFDG_MOCK_ADMIN_TOKEN or --admin-token-file), instead of reading a journal.
    #[arg(long, value_name = "URL", conflicts_with_all = ["journal", "journal_url"])]
    pub admin: Option<String>,
    /// Read this journal file directly (as `calls` and `serve --journal`; not with --admin).
    /// [default: dfdg-mock.sqlite]
    #[arg(long, env = "DFDG_MOCK_JOURNAL", value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// Read the servers' PostgreSQL journal directly (postgres://user:password@host/db).
    #[arg(long, value_name = "URL", conflicts_with = "journal")]
    pub journal_url: Option<JournalUrl>,
    /// Also write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// File holding the admin bearer token (for --admin).
    #[arg(long, env = "DFDG_MOCK_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Create a test CA and a server certificate for localhost, 127.0.0.1 and ::1.
    Init {
        /// Folder of the test PKI, as `serve --certs-dir`.
        #[arg(
            long = "certs-dir",
            alias = "dir",
            default_value = "certs",
            env = "DFDG_MOCK_CERTS_DIR",
            value_name = "DIR"
        )]
        dir: PathBuf,
        /// Extra DNS name or IP address for the server certificate, as `serve --server-name`;
        /// repeatable or comma-separated.
        #[arg(
            long = "server-name",
            visible_alias = "san",
            env = "DFDG_MOCK_SERVER_NAMES",
            value_name = "NAME",
            value_delimiter = ','
        )]
        sans: Vec<String>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue a client certificate from the test CA: PEM certificate and key, and two PKCS#12 files (for Java, for .NET/Mono).
    ///
    /// The default shape is an OCES3 organisation/system certificate
    /// (serialNumber=UI:DK-O:G:<uuid>, organizationIdentifier=NTRDK-<cvr>), whose STAR caller id
    /// is CVR:<cvr>-UUID:<uuid>. --oces2 makes the older OCES2 shape (serialNumber=CVR:<cvr>-FID:<n>).
    Client(ClientArgs),
    /// Issue a webhook server certificate from the test CA, for a supplier rehearsing WSB fully
    /// offline: STAR's pushes verify it against the test CA by default.
    ///
    /// Writes <OUT>.crt (the certificate, then the CA) and <OUT>.key (mode 0600), and prints
    /// the thumbprints.
    Server(ServerArgs),
}

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Folder of the test CA; the certificate is written there too.
    #[arg(long, default_value = "certs", env = "DFDG_MOCK_CERTS_DIR")]
    pub dir: PathBuf,
    /// The webhook's DNS name or IP address (CN and first SAN), e.g. webhook.leverandor.test.
    #[arg(long)]
    pub name: String,
    /// A further DNS name or IP address; repeatable.
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
    /// File name stem: writes <OUT>.crt and <OUT>.key. [default: webhook]
    #[arg(long, default_value = "webhook")]
    pub out: String,
    /// Days of validity from now; 0 or negative makes an already expired certificate.
    #[arg(long, default_value_t = 365, allow_negative_numbers = true)]
    pub valid_days: i64,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Folder of the test PKI (its CA issues the certificate, which is written there too), as
    /// `serve --certs-dir`.
    #[arg(
        long = "certs-dir",
        alias = "dir",
        default_value = "certs",
        env = "DFDG_MOCK_CERTS_DIR",
        value_name = "DIR"
    )]
    pub dir: PathBuf,
    /// File name stem: writes <STEM>.crt, <STEM>.key and two PKCS#12 files, <STEM>-java.p12
    /// (AES: Java, OpenSSL 3) and <STEM>-dotnet.p12 (3DES: .NET Framework, Windows, Mono, older Java).
    #[arg(long, default_value = "client")]
    pub out: String,
    /// Common name of the system, e.g. "Fagsystem Jobcenter Test".
    #[arg(long, default_value = "Fagsystem Test")]
    pub name: String,
    /// Organisation, e.g. "Testleverandør ApS".
    #[arg(long, default_value = "Testleverandør ApS")]
    pub org: String,
    /// CVR number, 8 digits (fictitious test organisations start with 9).
    #[arg(long, default_value = "91234567")]
    pub cvr: String,
    /// UUID of an OCES3 certificate (default: random).
    #[arg(long, conflicts_with = "oces2")]
    pub uuid: Option<uuid::Uuid>,
    /// Make an OCES2 certificate: fid (function/FOCES), uid (company/VOCES) or rid (employee).
    #[arg(long, value_enum)]
    pub oces2: Option<Oces2Shape>,
    /// The FID/UID/RID number of an OCES2 certificate (default: random digits).
    #[arg(long, requires = "oces2")]
    pub number: Option<String>,
    /// Days of validity from now; 0 or negative makes an already expired certificate.
    #[arg(long, default_value_t = 365, allow_negative_numbers = true)]
    pub valid_days: i64,
    /// Password of the PKCS#12 bundle (default: generated and printed once).
    #[arg(long, env = "DFDG_MOCK_P12_PASSWORD")]
    pub password: Option<String>,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Oces2Shape {
    Fid,
    Uid,
    Rid,
}

#[derive(Debug, clap::Args)]
pub struct CallsArgs {
    #[command(flatten)]
    pub journal: JournalArgs,
    /// Print JSON (one object per line) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only calls from this STAR caller id (CVR:…-UUID:…) or CVR number.
    #[arg(long)]
    pub caller: Option<String>,
    /// Only calls of this operation (local name, e.g. SaveAvailabilityAssessment).
    #[arg(long)]
    pub operation: Option<String>,
    /// Only calls since this time: RFC 3339 (2026-11-27T10:00:00Z) or an age (90s, 10m, 2h, 1d).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<OffsetDateTime>,
    /// At most this many rows (any number: read page by page). With --follow: how many of the
    /// newest calls to show before the new ones. [default: 20; with --follow: 1]
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// List refused TLS handshakes instead of calls.
    #[arg(long)]
    pub rejected: bool,
    /// Keep running and print new calls as they are journaled, in the columns of `calls`,
    /// starting at the newest call (Ctrl-C ends).
    #[arg(long, conflicts_with_all = ["rejected", "json"])]
    pub follow: bool,
    /// With --follow: print every journaled call first, oldest first, then follow.
    #[arg(long, requires = "follow", conflicts_with = "limit")]
    pub from_start: bool,
}

impl CallsArgs {
    /// Rows `calls` shows.
    fn rows(&self) -> usize {
        self.limit.unwrap_or(20)
    }
}

/// Which journal a command reads: the server's SQLite file, or its PostgreSQL database.
#[derive(Debug, Clone, clap::Args)]
pub struct JournalArgs {
    /// The journal file of the server.
    #[arg(
        long,
        env = "DFDG_MOCK_JOURNAL",
        default_value = "dfdg-mock.sqlite",
        value_name = "FILE"
    )]
    pub journal: PathBuf,
    /// The servers' PostgreSQL journal instead of the file (postgres://user:password@host/db).
    #[arg(
        long,
        env = "DFDG_MOCK_JOURNAL_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub journal_url: Option<JournalUrl>,
}

impl JournalArgs {
    /// The database when a URL is given, else the file.
    pub fn location(&self) -> anyhow::Result<Location> {
        location(&self.journal, self.journal_url.as_ref())
    }
}

fn location(file: &Path, url: Option<&JournalUrl>) -> anyhow::Result<Location> {
    Ok(match url {
        Some(url) => Location::Database(std::sync::Arc::new(url.database()?)),
        None => Location::File(file.to_owned()),
    })
}

/// How often `calls --follow` looks for new calls.
pub const FOLLOW_INTERVAL: std::time::Duration = std::time::Duration::from_millis(300);

#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Config file (TOML), read as `serve` reads it. Default: ./dfdg-mock.toml when it exists.
    #[arg(long, env = "DFDG_MOCK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address the SOAP listener is bound to. [default: 127.0.0.1:8443]
    #[arg(long, env = "DFDG_MOCK_LISTEN", value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Folder of the test PKI (ca.crt, demo-client.crt, demo-client.key). [default: certs]
    #[arg(long, env = "DFDG_MOCK_CERTS_DIR", value_name = "DIR")]
    pub certs_dir: Option<PathBuf>,
    /// CA certificate (PEM) that issued the server certificate. [default: <certs-dir>/ca.crt]
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM) to present. [default: <certs-dir>/demo-client.crt]
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Private key (PEM) of --client-cert. [default: <certs-dir>/demo-client.key]
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Name the server certificate must carry.
    #[arg(long, default_value = "localhost", value_name = "NAME")]
    pub tls_name: String,
    /// Give up (unhealthy) after this long: connect, handshake and answer together.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub timeout: crate::config::Seconds,
}

/// Parses the process's command line, exiting with clap's message on a mistake. A bad value
/// that came from a `DFDG_MOCK_*` variable rather than from the flag is blamed on the variable
/// (clap names only the flag), and an admin token's value is never echoed.
pub fn parse() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) => match from_environment(&error, &args) {
            Some(message) => {
                eprint!("{message}");
                std::process::exit(2);
            }
            None => error.exit(),
        },
    }
}

/// clap's message for a bad value, reworded when the value came from an environment variable.
fn from_environment(error: &clap::Error, args: &[std::ffi::OsString]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::CommandFactory;
    if !matches!(
        error.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.strip_prefix("--")?.split([' ', '=']).next()?;
    let flag = format!("--{long}");
    let given = args
        .iter()
        .filter_map(|arg| arg.to_str())
        .any(|arg| arg == flag || arg.starts_with(&format!("{flag}=")));
    let mut message = error.render().to_string();
    if long == "admin-token" {
        if let Some(ContextValue::String(value)) = error.get(ContextKind::InvalidValue) {
            message = message.replace(&format!("'{value}'"), "'<redacted>'");
        }
    }
    if given {
        return (long == "admin-token").then_some(message);
    }
    let variable = variable_of(&Cli::command(), long)?;
    Some(message.replacen(
        &format!("for '{arg}'"),
        &format!("in the environment variable {variable} (read as '{arg}')"),
        1,
    ))
}

/// The environment variable, set now, behind the flag `--long` of any subcommand.
fn variable_of(command: &clap::Command, long: &str) -> Option<String> {
    let own = command
        .get_arguments()
        .filter(|arg| arg.get_long() == Some(long))
        .filter_map(|arg| arg.get_env())
        .find(|variable| std::env::var_os(variable).is_some())
        .map(|variable| variable.to_string_lossy().into_owned());
    own.or_else(|| {
        command
            .get_subcommands()
            .find_map(|sub| variable_of(sub, long))
    })
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve(Box::default())) {
        Command::Serve(args) => serve(&args),
        Command::Pki(PkiCommand::Init { dir, sans, force }) => pki_init(&dir, &sans, force),
        Command::Pki(PkiCommand::Client(args)) => pki_client(&args),
        Command::Pki(PkiCommand::Server(args)) => pki_server(&args),
        Command::Wsb(command) => wsb::run(command),
        Command::Calls(args) if args.follow => follow(&args),
        Command::Calls(args) => calls(&args),
        Command::Supplier(command) => supplier(command),
        Command::Confirm(args) => confirm(&args),
        Command::Onboarding(OnboardingCommand::Status(args)) => onboarding_status(&args),
        Command::Verify(args) => verify(&args),
        Command::Health(args) => health(&args),
        Command::Check(args) => check(&args),
        Command::WelcomePack(args) => welcome_pack(&args),
    }
}

fn check(args: &CheckArgs) -> anyhow::Result<()> {
    let config = Config::resolve(&args.serve_args())?;
    let report = crate::check::all(&config);
    let mut out = std::io::stdout().lock();
    for line in &report.loaded {
        writeln!(out, "{line}")?;
    }
    for note in &report.notes {
        writeln!(out, "note: {note}")?;
    }
    for problem in &report.problems {
        writeln!(out, "problem: {problem}")?;
    }
    out.flush()?;
    match report.problems.len() {
        0 => {
            writeln!(out, "ok")?;
            Ok(())
        }
        1 => anyhow::bail!("check found 1 problem"),
        n => anyhow::bail!("check found {n} problems"),
    }
}

fn health(args: &HealthArgs) -> anyhow::Result<()> {
    let config = Config::resolve(&ServeArgs {
        config: args.config.clone(),
        listen: args.listen,
        certs_dir: args.certs_dir.clone(),
        ..ServeArgs::default()
    })?;
    let paths = PkiPaths::new(&config.certs_dir);
    let demo = paths.client(pki::DEMO_CLIENT_STEM);
    let ca = args.ca.clone().unwrap_or_else(|| paths.ca_cert());
    let client_cert = args.client_cert.clone().unwrap_or(demo.cert);
    let client_key = args.client_key.clone().unwrap_or(demo.key);
    let address = crate::health::probe_address(config.listen);
    let probe = crate::health::Probe::from_files(
        address,
        &args.tls_name,
        &ca,
        &client_cert,
        &client_key,
    )
    .context("cannot prepare the health check (the test PKI is made by the first `serve`; name other files with --ca, --client-cert and --client-key)")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let healthy = runtime
        .block_on(probe.check(args.timeout.0))
        .map_err(|unhealthy| anyhow::anyhow!("unhealthy: {unhealthy}"))?;
    let admin = crate::health::probe_address(config.admin.listen);
    runtime
        .block_on(crate::health::admin_ready(admin, args.timeout.0))
        .map_err(|unhealthy| anyhow::anyhow!("unhealthy: {unhealthy}"))?;
    println!(
        "healthy: https://{}/ answered 200 over mutual TLS ({}) in {} ms",
        healthy.address,
        healthy.tls_version,
        healthy.elapsed.as_millis()
    );
    Ok(())
}

fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = Config::resolve(args)?;
    if let Some(replica) = &config.replica {
        crate::logging::set_replica(replica);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve_until_signal(config))
}

/// `serve`: build the instance, bind, print the banner, serve until SIGINT or SIGTERM; SIGHUP
/// starts the scenarios over and re-reads the registry.
async fn serve_until_signal(config: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    // The handlers first, so that a signal during start-up is not lost.
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let instance = Instance::build(config)?;
    let config = instance.config();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let admin_listener = tokio::net::TcpListener::bind(config.admin.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for the admin side (choose another with --admin-listen)",
                config.admin.listen
            )
        })?;
    let banner = crate::banner::print(
        &mut std::io::stdout().lock(),
        config,
        instance.app().catalog(),
        listener.local_addr()?,
        admin_listener.local_addr()?,
        instance.pki(),
    );
    let banner = banner.and_then(|()| match instance.star() {
        Some(star) => {
            crate::banner::wsb(&mut std::io::stdout().lock(), star, listener.local_addr()?)
        }
        None => Ok(()),
    });
    if let Err(error) = banner {
        tracing::warn!("cannot print the start-up banner: {error:#}");
    }
    let running = instance.start(listener, Some(admin_listener)).await?;
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: resetting scenario state and reloading the scenario files and the registry");
                running.hang_up().await;
            }
        }
    }
    tracing::info!("shutdown requested");
    running.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

fn welcome_pack(args: &WelcomePackArgs) -> anyhow::Result<()> {
    use crate::welcome::{self, BaseUrl, PackSpec};
    let url = BaseUrl::parse(&args.url)?;
    let loaded = Catalog::load(&crate::config::CatalogConfig {
        dirs: args.wsdl.clone(),
        ..crate::config::CatalogConfig::default()
    });
    for problem in loaded.problems.iter().chain(&loaded.notes) {
        eprintln!("note: {problem}");
    }
    if loaded.catalog.is_empty() {
        anyhow::bail!(
            "no services in the WSDL catalog {}; point --wsdl at a folder of *.wsdl files",
            crate::banner::display_dirs(&args.wsdl)
        );
    }
    let spec = PackSpec {
        supplier: args.supplier.clone(),
        cvr: args.cvr.trim().to_owned(),
        category: args.category,
        services: args.services.clone(),
        out: args.out.clone(),
        zip: args.zip,
        url,
        certs: PkiPaths::new(&args.certs_dir),
        registry: args.suppliers.clone(),
        force: args.force,
    };
    let pack = welcome::build(&spec, &loaded.catalog, OffsetDateTime::now_utc())?;
    let mut out = std::io::stdout().lock();
    if pack.created_pki {
        writeln!(out, "created a test PKI in {}", args.certs_dir.display())?;
    }
    writeln!(
        out,
        "welcome pack for {} ({}) in {}",
        spec.supplier.trim(),
        spec.category.as_str(),
        pack.dir.display()
    )?;
    writeln!(out, "  caller id:   {}", pack.identity.caller_id)?;
    writeln!(out, "  subject:     {}", pack.identity.subject)?;
    writeln!(
        out,
        "  certificate: {} (key {}, mode 0600; PKCS#12 {} for Java, {} for .NET/Mono)",
        pack.certificate.cert.display(),
        pack.certificate.key.display(),
        pack.certificate.pkcs12(pki::Pkcs12Kind::Modern).display(),
        pack.certificate.pkcs12(pki::Pkcs12Kind::Legacy).display()
    )?;
    writeln!(
        out,
        "  registered in {}: services {}",
        args.suppliers.display(),
        pack.services.join(", ")
    )?;
    for change in &pack.registry_changes {
        writeln!(out, "    changed: {change}")?;
    }
    writeln!(out, "  files:")?;
    for file in &pack.files {
        writeln!(out, "    {file}")?;
    }
    if let Some(zip) = &pack.zip {
        writeln!(out, "  zip:         {}", zip.display())?;
    }
    writeln!(
        out,
        "  first step:  cd {} && ./{}",
        pack.dir.display(),
        welcome::SCRIPT
    )?;
    writeln!(
        out,
        "PKCS#12 password (shown once, in no file): {}",
        pack.p12_password()
    )?;
    out.flush()?;
    if pack.closed_open_mode {
        let demo = demo_caller_id(&PkiPaths::new(&args.certs_dir));
        eprintln!(
            "{}",
            crate::supplier::open_mode_closed(&args.suppliers, demo.as_deref())
        );
    }
    Ok(())
}

/// The caller id of the demo client certificate in `paths`, if there is one.
fn demo_caller_id(paths: &PkiPaths) -> Option<String> {
    use rustls_pki_types::pem::PemObject;
    let certificate =
        rustls_pki_types::CertificateDer::from_pem_file(paths.client(pki::DEMO_CLIENT_STEM).cert)
            .ok()?;
    crate::identity::CallerIdentity::from_der(&certificate)
        .ok()
        .map(|identity| identity.caller_id)
}

fn pki_init(dir: &Path, sans: &[String], force: bool) -> anyhow::Result<()> {
    let paths = PkiPaths::new(dir);
    pki::init(&paths, sans, force)?;
    println!(
        "wrote {} and {} (key {}, mode 0600)",
        paths.ca_cert().display(),
        paths.server_cert().display(),
        paths.server_key().display()
    );
    println!(
        "the CA key is {} (mode 0600); issue client certificates with `dfdg-mock pki client`",
        paths.ca_key().display()
    );
    Ok(())
}

fn pki_client(args: &ClientArgs) -> anyhow::Result<()> {
    let shape = match args.oces2 {
        None => CertificateShape::Oces3 {
            uuid: args.uuid.unwrap_or_else(uuid::Uuid::new_v4),
        },
        Some(kind) => {
            let number = match &args.number {
                Some(number) => number.clone(),
                None => random_digits(13),
            };
            CertificateShape::Oces2(match kind {
                Oces2Shape::Fid => Oces2Kind::Fid(number),
                Oces2Shape::Uid => Oces2Kind::Uid(number),
                Oces2Shape::Rid => Oces2Kind::Rid(number),
            })
        }
    };
    let spec = ClientSpec {
        name: args.name.clone(),
        organisation: args.org.clone(),
        cvr: args.cvr.clone(),
        shape,
        valid_days: args.valid_days,
    };
    let (password, generated) = match &args.password {
        Some(password) => (password.clone(), false),
        None => (pki::random_password(), true),
    };
    let paths = PkiPaths::new(&args.dir);
    let files = pki::issue_client_files(&paths, &args.out, &spec, &password, args.force)?;
    let identity = files.identity;
    let client = files.paths;
    println!(
        "issued {} for caller id {}",
        identity.kind.label(),
        identity.caller_id
    );
    println!("  subject:     {}", identity.subject);
    println!(
        "  valid until: {}",
        crate::app::identity_fields(&identity).not_after
    );
    println!("  certificate: {}", client.cert.display());
    println!("  key:         {} (mode 0600)", client.key.display());
    for (kind, path) in &client.pkcs12_files {
        println!("  PKCS#12:     {} ({})", path.display(), kind.audience());
    }
    if generated {
        println!("  PKCS#12 password (shown once): {password}");
    }
    Ok(())
}

fn pki_server(args: &ServerArgs) -> anyhow::Result<()> {
    let paths = PkiPaths::new(&args.dir);
    let files = pki::issue_webhook_server_files(
        &paths,
        &args.out,
        &args.name,
        &args.sans,
        args.valid_days,
        args.force,
    )?;
    println!(
        "issued a webhook server certificate for {}",
        files.sans.join(", ")
    );
    println!("  certificate: {} (then the CA)", files.cert.display());
    println!("  key:         {} (mode 0600)", files.key.display());
    println!("  SHA-256:     {}", files.thumbprints.sha256.with_colons());
    println!("  SHA-1:       {}", files.thumbprints.sha1.hex());
    println!(
        "STAR's pushes trust it: they verify webhooks against {} unless [wsb] trust names other CAs",
        paths.ca_cert().display()
    );
    Ok(())
}

fn random_digits(count: usize) -> String {
    let mut digits = String::with_capacity(count);
    while digits.len() < count {
        for byte in uuid::Uuid::new_v4().as_bytes() {
            if digits.len() < count && *byte < 250 {
                digits.push(char::from(b'0' + byte % 10));
            }
        }
    }
    if digits.starts_with('0') {
        digits.replace_range(..1, "1");
    }
    digits
}

/// An RFC 3339 time, or an age before now such as `90s`, `10m`, `2h`, `1d`.
pub fn parse_since(text: &str) -> Result<OffsetDateTime, String> {
    if let Ok(time) = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339) {
        return Ok(time);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| format!("'{text}' is neither an RFC 3339 time nor an age like 10m"))?;
    let age = match unit {
        "s" => time::Duration::seconds(number),
        "m" => time::Duration::minutes(number),
        "h" => time::Duration::hours(number),
        "d" => time::Duration::days(number),
        _ => return Err(format!("unknown unit in '{text}': use s, m, h or d")),
    };
    Ok(OffsetDateTime::now_utc() - age)
}

fn calls(args: &CallsArgs) -> anyhow::Result<()> {
    let store = crate::journal::open_reader(&args.journal.location()?)?;
    let mut out = std::io::stdout().lock();
    if args.rejected {
        if args.rows() > crate::journal::MAX_LIMIT {
            eprintln!(
                "note: showing at most the newest {} refused handshakes: --limit is capped at {} for --rejected",
                crate::journal::MAX_LIMIT,
                crate::journal::MAX_LIMIT
            );
        }
        let rejections = store.rejections(&RejectionQuery {
            since: args.since,
            limit: args.rows(),
            ..RejectionQuery::default()
        })?;
        if args.json {
            for rejection in &rejections {
                writeln!(out, "{}", serde_json::to_string(rejection)?)?;
            }
            return Ok(());
        }
        tables::rejections(&mut out, &rejections)?;
        return Ok(());
    }
    let query = CallQuery {
        caller: args.caller.clone(),
        operation: args.operation.clone(),
        since: args.since,
        ..CallQuery::default()
    };
    // Any --limit: read page by page, newest first (JSON printed as it goes; a table once its
    // columns are known).
    if args.json {
        crate::journal::each_call(&store, &query, args.rows(), |call| {
            writeln!(out, "{}", serde_json::to_string(call)?)?;
            anyhow::Ok(())
        })?;
        return Ok(());
    }
    let mut rows = Vec::new();
    crate::journal::each_call(&store, &query, args.rows(), |call| {
        rows.push(tables::call_cells(call));
        anyhow::Ok(())
    })?;
    tables::rows_of_calls(&mut out, &rows)?;
    Ok(())
}

/// `confirm`: writes the confirmation straight into the journal (SQLite's locking, or
/// PostgreSQL's transactions, make that safe beside the running servers' writers).
fn confirm(args: &ConfirmArgs) -> anyhow::Result<()> {
    use crate::journal::Entry;
    let registry = crate::supplier::Registry::load(&args.suppliers)?;
    let location = args.journal.location()?;
    if let Location::File(path) = &location {
        if !path.exists() {
            anyhow::bail!(
                "no journal at {}: start `dfdg-mock serve` first, or name it with --journal",
                path.display()
            );
        }
    }
    let reader = crate::journal::open_reader(&location)?;
    let mut store = crate::journal::open_store(&location)?;
    let confirmation = crate::onboarding::confirmation(
        &reader,
        &registry,
        &args.guid,
        args.supplier.as_deref(),
        args.note.clone(),
        OffsetDateTime::now_utc(),
    )?;
    let record = &confirmation.record;
    let ids = store
        .append(&[Entry::Confirmation(record.clone())])
        .with_context(|| format!("receipt {} not confirmed", record.guid))?;
    println!(
        "receipt {} of call {} confirmed{}",
        record.guid,
        ids.first().copied().unwrap_or(confirmation.call_id),
        record
            .supplier
            .as_deref()
            .map_or(String::new(), |name| format!(" by {name}"))
    );
    if let Some(given) = &confirmation.given {
        println!(
            "  ({given} is the ServiceRequestLogReferenceIdentifier of the same answer; its receipt is the MessageIdentifier {})",
            record.guid
        );
    }
    Ok(())
}

/// `onboarding status`: the table (or JSON), the HTML report, and exit 1 while incomplete.
fn onboarding_status(args: &StatusArgs) -> anyhow::Result<()> {
    let registry = crate::supplier::Registry::load(&args.suppliers)?;
    let store = crate::journal::open_reader(&args.journal.location()?)?;
    let statuses = crate::onboarding::suppliers(&store, &registry, args.supplier.as_deref())?;
    if let Some(name) = &args.supplier {
        if statuses.is_empty() {
            anyhow::bail!(
                "no {} named {name:?}{}",
                if registry.is_open() {
                    "caller id in the journal"
                } else {
                    "supplier in the registry"
                },
                if registry.is_open() {
                    format!(
                        " (no registry at {}: open mode lists caller ids)",
                        args.suppliers.display()
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "open": registry.is_open(),
                "suppliers": statuses,
            }))?
        );
    } else {
        print!("{}", crate::onboarding::report::table(&statuses));
    }
    if let Some(path) = &args.html {
        let page = crate::onboarding::report::html(&statuses, OffsetDateTime::now_utc());
        std::fs::write(path, page)
            .with_context(|| format!("cannot write the report {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    let incomplete: Vec<&str> = statuses
        .iter()
        .filter(|s| !s.complete)
        .map(|s| s.title())
        .collect();
    if statuses.is_empty() {
        anyhow::bail!("onboarding incomplete: no supplier has called yet");
    }
    if !incomplete.is_empty() {
        anyhow::bail!("onboarding incomplete for {}", incomplete.join(", "));
    }
    Ok(())
}

fn supplier(command: SupplierCommand) -> anyhow::Result<()> {
    use crate::supplier::{Registry, Supplier};
    match command {
        SupplierCommand::Add {
            registry,
            force,
            wsdl,
            name,
            cvr,
            category,
            services,
            identities,
        } => {
            let mut suppliers = Registry::load(&registry.path)?;
            let was_open = suppliers.is_open();
            let loaded = Catalog::load(&crate::config::CatalogConfig {
                dirs: wsdl.clone(),
                ..crate::config::CatalogConfig::default()
            });
            let services = if loaded.catalog.is_empty() {
                eprintln!(
                    "note: no WSDL catalog in {}, so the service names are not checked (point --wsdl at the catalog `serve` uses)",
                    crate::banner::display_dirs(&wsdl)
                );
                services
            } else {
                crate::supplier::resolve_services(&services, &loaded.catalog)?
            };
            let mut new = Supplier {
                name: name.trim().to_owned(),
                cvr: cvr.trim().to_owned(),
                category,
                identities,
                services,
                revoked: Vec::new(),
                systems: Vec::new(),
            };
            let name = new.name.clone();
            if let Some(old) = suppliers.get(&name) {
                let changes = old.changes(&new);
                if changes.is_empty() {
                    println!(
                        "{} is registered as given in {}; nothing changed",
                        old.name,
                        registry.path.display()
                    );
                    return Ok(());
                }
                if !force {
                    anyhow::bail!(
                        "{} is already registered in {}; adding it again would change:\n  {}\nrun the command again with --force to replace it, or edit {} by hand",
                        old.name,
                        registry.path.display(),
                        changes.join("\n  "),
                        registry.path.display()
                    );
                }
                // Revoked certificates stay revoked unless given again as identities.
                new.revoked = old
                    .revoked
                    .iter()
                    .filter(|r| !new.identities.iter().any(|i| i.eq_ignore_ascii_case(r)))
                    .cloned()
                    .collect();
                suppliers.upsert(new)?;
                suppliers.save(&registry.path)?;
                println!("replaced {name} in {}:", registry.path.display());
                for change in changes {
                    println!("  {change}");
                }
            } else {
                if new.services.is_empty() {
                    eprintln!(
                        "note: {name} may call no service (give --services) until you add some"
                    );
                }
                suppliers.upsert(new)?;
                suppliers.save(&registry.path)?;
                println!("registered {name} in {}", registry.path.display());
            }
            if was_open {
                eprintln!(
                    "{}",
                    crate::supplier::open_mode_closed(&registry.path, None)
                );
            }
        }
        SupplierCommand::List { registry, json } => {
            let suppliers = Registry::load(&registry.path)?;
            if json {
                println!("{}", serde_json::to_string_pretty(suppliers.suppliers())?);
            } else if suppliers.is_open() {
                println!(
                    "no registry at {}: open mode, any trusted certificate may call everything",
                    registry.path.display()
                );
            } else {
                tables::suppliers(&mut std::io::stdout().lock(), suppliers.suppliers())?;
            }
        }
        SupplierCommand::Remove { registry, name } => {
            let mut suppliers = Registry::load(&registry.path)?;
            if !suppliers.remove(&name) {
                anyhow::bail!("no supplier named '{name}' in {}", registry.path.display());
            }
            suppliers.save(&registry.path)?;
            println!("removed {name}");
            if suppliers.suppliers().is_empty() {
                eprintln!(
                    "note: {} now lists no supplier, so every call is refused with 1012; delete it to go back to open mode",
                    registry.path.display()
                );
            }
        }
        SupplierCommand::Revoke {
            registry,
            name,
            identity,
        } => {
            let mut suppliers = Registry::load(&registry.path)?;
            match suppliers.revoke(&name, &identity)? {
                crate::supplier::Revoked::Already => {
                    println!("{identity} of {name} was revoked already; nothing changed");
                }
                crate::supplier::Revoked::Now => {
                    suppliers.save(&registry.path)?;
                    println!("revoked {identity} of {name}: its calls are now refused with 1012");
                }
            }
        }
    }
    Ok(())
}

/// `calls --follow`: the newest call (or `--limit` of them, or with `--from-start` every one),
/// then polls the read-only journal for newer ones, in the columns of `calls`.
fn follow(args: &CallsArgs) -> anyhow::Result<()> {
    let location = args.journal.location()?;
    let store = crate::journal::open_reader(&location)?;
    let filter = CallQuery {
        caller: args.caller.clone(),
        operation: args.operation.clone(),
        since: args.since,
        ..CallQuery::default()
    };
    let mut out = std::io::stdout().lock();
    let (mut table, mut last_id) = if args.from_start {
        (tables::Follow::new(&[]), 0)
    } else {
        let mut newest = store.calls(&CallQuery {
            limit: args.limit.unwrap_or(1).max(1),
            ..filter.clone()
        })?;
        newest.reverse();
        let rows: Vec<Vec<String>> = newest.iter().map(tables::call_cells).collect();
        let table = tables::Follow::new(&rows);
        table.header(&mut out)?;
        for row in &rows {
            table.columns().line(&mut out, row)?;
        }
        (table, newest.last().map_or(0, |call| call.id))
    };
    if args.from_start {
        table.header(&mut out)?;
    }
    out.flush()?;
    eprintln!(
        "following {location} (Ctrl-C ends){}",
        if args.from_start {
            ""
        } else {
            "; --from-start prints every call first"
        }
    );
    loop {
        // A reset removes every row; ids are never reused, so the cursor stays valid.
        let page = store.calls(&CallQuery {
            after_id: Some(last_id),
            limit: crate::journal::MAX_LIMIT,
            ..filter.clone()
        })?;
        for call in &page {
            table.row(&mut out, &tables::call_cells(call))?;
            last_id = call.id;
        }
        if !page.is_empty() {
            out.flush()?;
        }
        // A full page: more are waiting (catching up from the start).
        if page.len() < crate::journal::MAX_LIMIT {
            std::thread::sleep(FOLLOW_INTERVAL);
        }
    }
}

fn verify(args: &VerifyArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.expect)
        .with_context(|| format!("cannot read {}", args.expect.display()))?;
    let expectations = crate::verify::Expectations::from_toml(&args.expect, &text)?;
    let report = match &args.admin {
        Some(url) => {
            let token = admin_token(args.admin_token_file.as_deref())?;
            let body = serde_json::to_vec(&expectations)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            let (status, answer) =
                runtime.block_on(admin_post(url, "/api/verify", body, token.as_ref()))?;
            if status != 200 {
                anyhow::bail!(
                    "{url} answered {status}: {}",
                    String::from_utf8_lossy(&answer).trim()
                );
            }
            serde_json::from_slice::<crate::verify::Report>(&answer)
                .with_context(|| format!("{url} did not answer with a verification report"))?
        }
        None => {
            let file = args
                .journal
                .clone()
                .unwrap_or_else(|| PathBuf::from("dfdg-mock.sqlite"));
            let store = crate::journal::open_reader(&location(&file, args.journal_url.as_ref())?)?;
            crate::verify::verify(&store, &expectations)?
        }
    };
    if let Some(junit) = &args.junit {
        std::fs::write(junit, report.junit())
            .with_context(|| format!("cannot write the JUnit report {}", junit.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", report.text())?;
    }
    out.flush()?;
    if !report.passed {
        let failed = report.verdicts.iter().filter(|v| !v.passed).count();
        anyhow::bail!(
            "verification failed: {failed} of {} expectations not met",
            report.verdicts.len()
        );
    }
    Ok(())
}

/// POSTs `body` as JSON to `path` under the admin `url` (plain HTTP); the status and body.
async fn admin_post(
    url: &str,
    path: &str,
    body: Vec<u8>,
    token: Option<&crate::config::AdminToken>,
) -> anyhow::Result<(u16, bytes::Bytes)> {
    admin_request(http::Method::POST, url, path, Some(body), token).await
}

/// The admin token for a command that asks a running server: from `file`, else
/// DFDG_MOCK_ADMIN_TOKEN, else none.
fn admin_token(file: Option<&Path>) -> anyhow::Result<Option<crate::config::AdminToken>> {
    match (file, std::env::var("DFDG_MOCK_ADMIN_TOKEN")) {
        (Some(file), _) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            Ok(Some(crate::config::AdminToken::new(&text)?))
        }
        (None, Ok(token)) => Ok(Some(crate::config::AdminToken::new(&token)?)),
        (None, Err(_)) => Ok(None),
    }
}

/// One request to `path` under the admin `url` (plain HTTP), with `body` as JSON if any; the
/// status and body.
async fn admin_request(
    method: http::Method,
    url: &str,
    path: &str,
    body: Option<Vec<u8>>,
    token: Option<&crate::config::AdminToken>,
) -> anyhow::Result<(u16, bytes::Bytes)> {
    use http_body_util::BodyExt;
    let uri: http::Uri = url
        .parse()
        .with_context(|| format!("{url:?} is not a URL such as http://127.0.0.1:8080"))?;
    if uri.scheme_str() != Some("http") {
        anyhow::bail!("{url}: the admin listener speaks plain http://");
    }
    let authority = uri
        .authority()
        .with_context(|| format!("{url}: no host"))?
        .clone();
    let address = if authority.port().is_some() {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let target = format!("{}{path}", uri.path().trim_end_matches('/'));
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(&address)
            .await
            .with_context(|| format!("cannot connect to the admin listener at {address}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut request = http::Request::builder()
            .method(method)
            .uri(target)
            .header(http::header::HOST, authority.as_str());
        if body.is_some() {
            request = request.header(http::header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = token {
            request = request.header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", token.secret()),
            );
        }
        let response = sender
            .send_request(request.body(http_body_util::Full::new(bytes::Bytes::from(
                body.unwrap_or_default(),
            )))?)
            .await?;
        let status = response.status().as_u16();
        let answer = http_body_util::Limited::new(response.into_body(), 64 << 20)
            .collect()
            .await
            .map_err(|error| anyhow::anyhow!("reading the answer: {error}"))?
            .to_bytes();
        anyhow::Ok((status, answer))
    };
    tokio::time::timeout(std::time::Duration::from_secs(120), exchange)
        .await
        .with_context(|| format!("{url} did not answer within 2 minutes"))?
}
