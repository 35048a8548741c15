//! The server store: one PostgreSQL database that several dfdg-mock replicas journal into and
//! read from, so that each replica's dashboard, API and CLI see every call, whichever replica
//! took it.
//!
//! - [`Database`]: the connection URL, parsed once (`postgres://user:password@host:5432/db`,
//!   optional TLS with `sslmode=require` and `sslrootcert=FILE`); it never shows its password;
//! - [`Driver`]: the small runtime the async client (tokio-postgres, connections pooled by
//!   deadpool-postgres) runs on. The storage traits are synchronous (the writer is one thread,
//!   reads run on blocking threads), so the stores block on such a runtime, never on the
//!   server's (the writer on one of its own, on its thread);
//! - `schema`: the tables (the same layout as SQLite's version 6, in the `dfdg_mock` schema)
//!   and their migrations, run once under an advisory lock;
//! - `store`: the writer ([`PostgresStore`]): group commit, a batch of calls in one statement
//!   (its own transaction), announced to the other replicas with `NOTIFY`;
//! - `reader`: the queries ([`PostgresReader`]), translated from the SQLite store's;
//! - `feed`: `LISTEN` for what the other replicas committed, as live events.

mod feed;
mod reader;
mod schema;
mod store;

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tokio_postgres_rustls::MakeRustlsConnect;

pub use feed::Feed;
pub use reader::{PostgresReader, ReaderPool};
pub use schema::POSTGRES_SCHEMA_VERSION;
pub use store::PostgresStore;

use super::{JournalError, StorageError, StorageFault};

/// How long connecting to the database may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one batch (or pruning step) may take before its callers are told it failed.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one read (a whole query set, e.g. onboarding status) may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The PostgreSQL schema the journal's tables live in.
pub const SCHEMA: &str = "dfdg_mock";

/// A PostgreSQL journal's address, parsed and checked. `Display` and `Debug` show the URL with
/// its password replaced by `***`.
#[derive(Clone)]
pub struct Database {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    /// The URL as given, password masked.
    redacted: String,
}

impl Database {
    /// The URL with its password masked, for messages.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The client's configuration (search path set to the journal's schema).
    fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// A pool of at most `size` connections, opened when first needed and replaced when broken.
    fn pool(&self, size: usize) -> Pool {
        let manager = Manager::from_config(
            self.config.clone(),
            self.tls.clone(),
            ManagerConfig {
                // A connection whose socket closed (e.g. the database restarted) is replaced;
                // a live one is reused without a round trip.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Pool::builder(manager)
            .max_size(size)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(READ_TIMEOUT))
            .build()
            .expect("a pool with a runtime builds")
    }

    /// The journal error for a failure to reach or use the database.
    fn unreachable(&self, error: impl Into<StorageError>) -> JournalError {
        JournalError::Database {
            database: self.redacted.clone(),
            source: error.into(),
        }
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Database").field(&self.redacted).finish()
    }
}

impl PartialEq for Database {
    fn eq(&self, other: &Database) -> bool {
        self.redacted == other.redacted && self.config.get_password() == other.config.get_password()
    }
}

impl Eq for Database {}

impl FromStr for Database {
    type Err = String;

    /// `postgres://[user[:password]@]host[:port]/dbname[?param=value&…]`, with libpq's
    /// parameters as tokio-postgres knows them, plus `sslrootcert=FILE` (PEM) and `sslmode`
    /// `disable`, `prefer`, `require`, `verify-ca` or `verify-full`. The server certificate is
    /// always verified (chain and name) when TLS is used: against `sslrootcert`, else the
    /// system's roots.
    fn from_str(url: &str) -> Result<Database, String> {
        let url = url.trim();
        let redacted = redact(url);
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(format!(
                "{redacted:?} is not a PostgreSQL URL: write postgres://user:password@host:5432/database"
            ));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut root_file = None;
        let mut tls_wanted = false;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = crate::encoding::decode_query_value(value)
                .map_err(|problem| format!("{redacted}: {name}: {problem}"))?;
            match name {
                "sslrootcert" => root_file = Some(decoded.into_owned()),
                "sslmode" => {
                    let mode = match decoded.as_ref() {
                        "disable" | "prefer" | "require" => decoded.into_owned(),
                        "verify-ca" | "verify-full" => "require".to_owned(),
                        other => {
                            return Err(format!(
                                "{redacted}: sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                            ))
                        }
                    };
                    tls_wanted = mode != "disable";
                    kept.push(format!("sslmode={mode}"));
                }
                _ => kept.push(pair.to_owned()),
            }
        }
        if !kept.iter().any(|pair| pair.starts_with("sslmode=")) {
            // Like libpq's `prefer`, without its silent trust: TLS when the server offers it,
            // with the certificate verified.
            kept.push(
                if root_file.is_some() {
                    "sslmode=require"
                } else {
                    "sslmode=prefer"
                }
                .to_owned(),
            );
            tls_wanted = root_file.is_some();
        }
        let rebuilt = format!("{base}?{}", kept.join("&"));
        let mut config: tokio_postgres::Config = rebuilt
            .parse()
            .map_err(|error| format!("{redacted}: {error}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        // A peer that vanishes without closing (a cut cable, a paused VM) is noticed.
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        config.tcp_user_timeout(Duration::from_secs(15));
        if config.get_application_name().is_none() {
            config.application_name("dfdg-mock");
        }
        let options = match config.get_options() {
            Some(options) => format!("{options} -c search_path={SCHEMA}"),
            None => format!("-c search_path={SCHEMA}"),
        };
        config.options(&options);
        let roots = match &root_file {
            Some(file) => {
                let mut roots = rustls::RootCertStore::empty();
                let certificates: Vec<CertificateDer<'static>> =
                    CertificateDer::pem_file_iter(file)
                        .and_then(|found| found.collect())
                        .map_err(|error| format!("{redacted}: sslrootcert {file}: {error}"))?;
                let (added, _) = roots.add_parsable_certificates(certificates);
                if added == 0 {
                    return Err(format!(
                        "{redacted}: sslrootcert {file} holds no PEM certificate"
                    ));
                }
                roots
            }
            None => {
                let mut roots = rustls::RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() && tls_wanted {
                    return Err(format!(
                        "{redacted}: TLS asked for, but the system has no root certificates: name the database's CA with sslrootcert=FILE"
                    ));
                }
                roots
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("{redacted}: {error}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Database {
            config,
            tls: MakeRustlsConnect::new(tls),
            redacted,
        })
    }
}

/// The URL with the password of its user part and any `password=` parameter replaced by `***`.
pub fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(end);
            let authority = match authority.rsplit_once('@') {
                Some((user, host)) => match user.split_once(':') {
                    Some((name, _password)) => format!("{name}:***@{host}"),
                    None => format!("{user}@{host}"),
                },
                None => authority.to_owned(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// The runtime the PostgreSQL client runs on: one worker thread, owned by the journal, so that
/// the synchronous stores can block on it from any thread that is not itself async (the
/// writer thread, a blocking reader thread, the CLI's main thread). Shut down in the
/// background when the last user lets go, wherever that happens.
pub struct Driver {
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Driver")
    }
}

impl Driver {
    pub fn new() -> Result<Arc<Driver>, JournalError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("journal-postgres")
            .enable_all()
            .build()
            .map_err(JournalError::SpawnWriter)?;
        Ok(Arc::new(Driver {
            runtime: Some(runtime),
        }))
    }

    /// A runtime that runs only while its one user blocks on it, on that user's thread: the
    /// writer's, whose connection then lives on the writer thread (a batch's messages and
    /// their answers need no wake-up of another thread).
    pub fn current_thread() -> Result<Driver, JournalError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(JournalError::SpawnWriter)?;
        Ok(Driver {
            runtime: Some(runtime),
        })
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime
            .as_ref()
            .expect("the runtime lives until the driver is dropped")
    }

    /// Runs `work` to completion on this runtime, blocking the calling thread (which must not
    /// be an async one).
    pub fn block_on<T>(&self, work: impl Future<Output = T>) -> T {
        self.runtime().block_on(work)
    }

    /// [`Driver::block_on`] from any thread, an async one too: on a thread of its own, which
    /// the caller waits for (for rare, slow work such as connecting and migrating at start-up).
    pub fn wait<T: Send>(&self, work: impl Future<Output = T> + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| self.block_on(work))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Spawns `work` on this runtime; it ends at the latest when the driver is dropped.
    pub fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.runtime().spawn(work);
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl From<tokio_postgres::Error> for StorageError {
    fn from(error: tokio_postgres::Error) -> StorageError {
        let fault = fault_of(&error);
        StorageError::new(fault, error)
    }
}

impl From<deadpool_postgres::PoolError> for StorageError {
    fn from(error: deadpool_postgres::PoolError) -> StorageError {
        use deadpool_postgres::PoolError;
        match error {
            PoolError::Backend(error) => error.into(),
            other => StorageError::new(StorageFault::Io, other),
        }
    }
}

impl From<tokio_postgres::Error> for JournalError {
    fn from(error: tokio_postgres::Error) -> JournalError {
        JournalError::Storage(error.into())
    }
}

/// A timeout waiting for the database, as a storage failure.
fn timed_out(what: &str, limit: Duration) -> StorageError {
    StorageError::from_parts(
        StorageFault::Io,
        format!("the database did not answer {what} within {limit:?}"),
    )
}

/// What kind of failure a client error is: the server's SQLSTATE when it sent one, else a
/// failure to reach it.
fn fault_of(error: &tokio_postgres::Error) -> StorageFault {
    let Some(code) = error.code() else {
        let text = error.to_string();
        // Encoding or type errors are ours, not the database's.
        return if text.starts_with("error serializing")
            || text.starts_with("error deserializing")
            || text.starts_with("invalid configuration")
        {
            StorageFault::Other
        } else {
            StorageFault::Io
        };
    };
    match code.code() {
        "53100" => StorageFault::Full,
        "25006" => StorageFault::ReadOnly,
        "40001" | "40P01" | "55P03" | "57014" => StorageFault::Busy,
        class if class.starts_with("53") => StorageFault::Busy,
        class if class.starts_with("08") || class.starts_with("57P") || class.starts_with("58") => {
            StorageFault::Io
        }
        _ => StorageFault::Other,
    }
}

/// Runs `work` under `limit`, a timeout counting as the database not answering.
async fn bounded<T>(
    what: &str,
    limit: Duration,
    work: impl Future<Output = Result<T, JournalError>>,
) -> Result<T, JournalError> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(JournalError::Storage(timed_out(what, limit))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            (
                "postgres://dfdg:s3cret@db:5432/journal",
                "postgres://dfdg:***@db:5432/journal",
            ),
            (
                "postgresql://dfdg@db/journal?password=s3cret&sslmode=require",
                "postgresql://dfdg@db/journal?password=***&sslmode=require",
            ),
            ("postgres://db/journal", "postgres://db/journal"),
            (
                "postgres://u:p%40ss@db/j?application_name=x",
                "postgres://u:***@db/j?application_name=x",
            ),
        ] {
            assert_eq!(redact(url), shown);
        }
        let database: Database = "postgres://dfdg:s3cret@127.0.0.1:1/journal"
            .parse()
            .unwrap();
        assert!(!format!("{database} {database:?}").contains("s3cret"));
        let error = "postgres://dfdg:s3cret@db/j?sslmode=sometimes"
            .parse::<Database>()
            .unwrap_err();
        assert!(!error.contains("s3cret"), "{error}");
        assert!(error.contains("sslmode=sometimes"), "{error}");
        let error = "mysql://dfdg:s3cret@db/j".parse::<Database>().unwrap_err();
        assert!(!error.contains("s3cret") && error.contains("not a PostgreSQL URL"));
    }

    #[test]
    fn the_search_path_is_the_journal_schema_and_tls_parameters_are_understood() {
        let database: Database = "postgres://u@db/j?options=-c%20work_mem%3D4MB"
            .parse()
            .unwrap();
        assert_eq!(
            database.config().get_options(),
            Some("-c work_mem=4MB -c search_path=dfdg_mock")
        );
        let database: Database = "postgres://u@db/j?sslmode=verify-full".parse().unwrap();
        assert_eq!(
            database.config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        let error = "postgres://u@db/j?sslrootcert=/nonexistent/ca.pem"
            .parse::<Database>()
            .unwrap_err();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
