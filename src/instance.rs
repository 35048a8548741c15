//! The one composition root: everything a server is, built from a [`Config`] — the scenario
//! rules, the supplier registry, the TLS side (generating the test PKI on a first start), the
//! journal, the WSDL catalog, the request pipeline ([`App`]), WSB's sending side (STAR's
//! certificate, its message catalog and store) — and then run: the SOAP listener, the admin
//! listener, the WSB delivery worker and its schedules, and the file watcher, until
//! [`Running::stop`] (or dropping the [`Running`] guard). `dfdg-mock serve` and the integration tests both assemble the server here,
//! so the tests run the assembly that ships.
//!
//! The caller binds, the library serves: [`Instance::start`] takes bound listeners.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::admin::Admin;
use crate::app::App;
use crate::config::Config;
use crate::journal::{postgres::Feed, Readers};
use crate::pki::{self, DemoPki, PkiPaths};
use crate::scenario::Scenarios;
use crate::supplier::LiveRegistry;
use crate::tls::{TlsMaterial, TlsServer};
use crate::watch::{Reload, Target, Watch, Watcher};
use crate::wsb::schedule::Schedule;
use crate::wsb::{self, SqliteWsbStore, System, WebhookTls, Wsb, WsbSettings, WsbStore};
use crate::wsdl::Catalog;

/// Parts handed in ready-made instead of read from the files the config names: the
/// integration tests pass an in-memory test PKI and a catalog loaded once for many servers.
#[derive(Default)]
pub struct Given {
    /// Server certificate, key and client CAs (default: `config.server_identity`, else the
    /// test PKI in `config.certs_dir`).
    pub tls: Option<TlsMaterial>,
    /// The catalog served (default: loaded from `config.catalog`).
    pub catalog: Option<Arc<Catalog>>,
    /// The registry (default: `config.onboarding.registry`, watched).
    pub suppliers: Option<Arc<LiveRegistry>>,
    /// STAR's sending certificate and the webhook trust (default: `[wsb]` star_cert/star_key
    /// and trust, else the test PKI's `star.crt` and CA).
    pub wsb_tls: Option<WebhookTls>,
}

/// WSB's parts, built and ready to start.
struct WsbParts {
    settings: WsbSettings,
    catalog: Arc<wsb::Catalog>,
    tls: WebhookTls,
    store: Arc<dyn WsbStore>,
    schedules: Vec<Schedule>,
}

impl std::fmt::Debug for WsbParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsbParts")
            .field("star", &self.tls.star().caller_id)
            .field("schedules", &self.schedules.len())
            .finish_non_exhaustive()
    }
}

/// A server built and ready to start.
#[derive(Debug)]
pub struct Instance {
    config: Config,
    app: Arc<App>,
    tls: TlsServer,
    /// The test PKI as found or made at this start (`None` with a certificate of the user's).
    pki: Option<DemoPki>,
    /// The admin side's reading connections to the journal (either store).
    readers: Readers,
    /// With a PostgreSQL journal: the other replicas' commits, for this one's live events.
    feed: Option<Feed>,
    /// Whether the scenario folder and the registry file are watched for changes.
    watch_files: bool,
    /// Keep-alive interval of the admin side's event streams (tests shorten it).
    event_keep_alive: Option<Duration>,
    /// WSB, when it has a STAR certificate and is not switched off.
    wsb: Option<WsbParts>,
}

impl Instance {
    /// Builds everything from `config`, reading every file it names.
    pub fn build(config: Config) -> anyhow::Result<Instance> {
        Instance::build_with(config, Given::default())
    }

    /// Builds everything from `config`, except the parts `given`. Refuses, before any file is
    /// written or any port bound, an exposed admin listener without a token, broken scenario
    /// files and a broken supplier registry.
    pub fn build_with(config: Config, given: Given) -> anyhow::Result<Instance> {
        crate::admin::check_exposure(config.admin.listen, config.admin.token.as_ref())?;
        let catalog = match given.catalog {
            Some(catalog) => catalog,
            None => Arc::new(load_catalog(&config)),
        };
        let scenarios = match &config.scenarios {
            Some(dir) => Scenarios::load(dir)
                .map_err(|error| anyhow::anyhow!("{error}"))
                .with_context(|| format!("the scenarios in {} are not valid", dir.display()))?
                .with_known_names(crate::check::catalog_names(&catalog)),
            None => Scenarios::none(),
        };
        let suppliers = match given.suppliers {
            Some(suppliers) => suppliers,
            None => Arc::new(
                LiveRegistry::load(&config.onboarding.registry, config.onboarding.strict).context(
                    "the supplier registry is not valid (fix it, or move it away for open mode)",
                )?,
            ),
        };
        tracing::info!(
            file = %config.onboarding.registry.display(),
            suppliers = suppliers.current().suppliers().len(),
            open = suppliers.current().is_open(),
            strict = suppliers.strict(),
            "supplier registry loaded"
        );
        let (material, pki) = match given.tls {
            Some(material) => (material, None),
            None => tls_material(&config)?,
        };
        let tls = TlsServer::new(
            material,
            config.client_auth,
            config.limits.handshake_timeout,
        )?;
        let opened = crate::journal::open(&config.journal_settings())
            .with_context(|| format!("cannot open the journal {}", config.journal_location()))?;
        let journal = opened.journal;
        let wsb = wsb_parts(&config, given.wsb_tls, pki.as_ref())?;
        let app = App::with_scenarios(journal, config.limits.clone(), scenarios)
            .with_catalog(catalog)
            .with_suppliers(suppliers);
        Ok(Instance {
            config,
            app: Arc::new(app),
            tls,
            pki,
            readers: opened.readers,
            feed: opened.feed,
            watch_files: true,
            event_keep_alive: None,
            wsb,
        })
    }

    /// Whether to watch the scenario folder and the registry file (on by default).
    pub fn watch_files(mut self, watch: bool) -> Instance {
        self.watch_files = watch;
        self
    }

    /// Sets the keep-alive interval of the admin side's event streams.
    pub fn event_keep_alive(mut self, interval: Duration) -> Instance {
        self.event_keep_alive = Some(interval);
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// The test PKI as found or made at this start, for the banner.
    pub fn pki(&self) -> Option<&DemoPki> {
        self.pki.as_ref()
    }

    /// Who STAR's pushes present themselves as, when WSB will run.
    pub fn star(&self) -> Option<&crate::identity::CallerIdentity> {
        self.wsb.as_ref().map(|parts| parts.tls.star())
    }

    /// Starts serving SOAP on `soap` and, with one, the admin side on `admin`; journals the
    /// scenario rules in force; watches the files. Fails when the admin listener is exposed
    /// without a token.
    pub async fn start(
        self,
        soap: TcpListener,
        admin: Option<TcpListener>,
    ) -> anyhow::Result<Running> {
        let Instance {
            config,
            app,
            tls,
            readers,
            feed,
            watch_files,
            event_keep_alive,
            wsb,
            ..
        } = self;
        if let Some(feed) = &feed {
            // The other replicas' calls, on this replica's dashboard and event streams, from
            // the moment this one is started (the journal just connected, so this is quick).
            let mut listening = feed.forward(app.events().clone());
            let listened = tokio::time::timeout(
                crate::journal::postgres::CONNECT_TIMEOUT,
                listening.wait_for(|listening| *listening),
            )
            .await;
            if !matches!(listened, Ok(Ok(_))) {
                tracing::warn!("not yet listening for the other replicas' calls; still trying");
            }
        }
        let soap_addr = soap
            .local_addr()
            .context("cannot read the SOAP listener's address")?;
        let admin_addr = match &admin {
            Some(admin) => Some(
                admin
                    .local_addr()
                    .context("cannot read the admin listener's address")?,
            ),
            None => None,
        };
        let loaded = app.scenarios().subscribe().borrow().clone();
        if let Some(dir) = &config.scenarios {
            tracing::info!(dir = %dir.display(), rules = loaded.rules, "scenarios loaded");
        }
        app.journal_reload(&loaded).await;
        let wsb = match wsb {
            Some(parts) => {
                let systems = System::all_of(&app.suppliers().current());
                let wsb = Wsb::start(
                    parts.settings,
                    parts.catalog,
                    parts.tls,
                    systems,
                    parts.store,
                )
                .await
                .context("cannot start WSB")?;
                wsb.schedule(parts.schedules);
                tracing::info!(star = %wsb.star().caller_id, "WSB ready to push as STAR");
                app.set_wsb(wsb.clone());
                Some(wsb)
            }
            None => None,
        };

        let watcher = watch_files.then(|| Watcher::spawn(watches(&app)));
        let reloads = match &watcher {
            Some(watcher) => watcher.subscribe(),
            None => watch::channel(Reload::default()).1,
        };
        // One signal stops both listeners.
        let (stop, stopped) = watch::channel(false);
        let until_stopped = |mut stopped: watch::Receiver<bool>| async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        let admin_task = match admin {
            Some(listener) => {
                let hosts = config
                    .admin
                    .hosts
                    .iter()
                    .chain(&config.server_names)
                    .cloned()
                    .collect();
                let mut admin = Admin::new(&app, readers.clone(), config.admin.token.clone())
                    .with_scenarios(app.clone())
                    .with_hosts(hosts);
                if let Some(replica) = &config.replica {
                    admin = admin.with_replica(replica.clone());
                }
                if let Some(interval) = event_keep_alive {
                    admin = admin.with_keep_alive(interval);
                }
                if let Some(wsb) = &wsb {
                    admin = admin.with_wsb(wsb.clone());
                }
                Some(tokio::spawn(crate::admin::run(
                    listener,
                    Arc::new(admin),
                    until_stopped(stopped.clone()),
                )))
            }
            None => None,
        };
        let served = app.clone();
        let limits = config.limits.clone();
        let task = tokio::spawn(async move {
            crate::server::run(soap, tls, served.clone(), &limits, until_stopped(stopped)).await;
            drop(watcher);
            if let Some(wsb) = wsb {
                wsb.shutdown().await;
            }
            let admin_result = match admin_task {
                Some(task) => task.await.context("the admin listener task failed")?,
                None => Ok(()),
            };
            // Every connection is done: what they journaled is flushed before this returns.
            served
                .journal()
                .clone()
                .close()
                .await
                .context("cannot flush the journal")?;
            admin_result.context("admin listener")
        });
        // What start-up used and freed (the catalog's and the scenarios' compile buffers, the
        // journal's migrations) would otherwise stay resident for the server's life.
        crate::memory::release_freed();
        crate::memory::release_startup_code();
        Ok(Running {
            soap_addr,
            admin_addr,
            app,
            readers,
            stop,
            task: Some(task),
            reloads,
        })
    }
}

/// A started server. Dropping it asks the server to stop; [`Running::stop`] also waits until
/// every connection finished and the journal is flushed.
#[derive(Debug)]
pub struct Running {
    soap_addr: std::net::SocketAddr,
    admin_addr: Option<std::net::SocketAddr>,
    app: Arc<App>,
    /// Reading connections to the journal, whichever store it is.
    readers: Readers,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    reloads: watch::Receiver<Reload>,
}

impl Running {
    /// Where SOAP is served.
    pub fn soap_addr(&self) -> std::net::SocketAddr {
        self.soap_addr
    }

    /// Where the admin side is served, when it was started.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin_addr
    }

    /// The request pipeline: scenarios, registry, journal, metrics.
    pub fn app(&self) -> &Arc<App> {
        &self.app
    }

    /// Reads the journal this server writes, whichever store it is.
    pub fn readers(&self) -> &Readers {
        &self.readers
    }

    /// Follows the reloads the file watcher runs (scenario folder, registry file).
    pub fn reloads(&self) -> watch::Receiver<Reload> {
        self.reloads.clone()
    }

    /// SIGHUP's work: forget the scenarios' counters and state, read the scenario files and the
    /// supplier registry again (a broken file is logged and the previous one stays).
    pub async fn hang_up(&self) {
        self.app.reset_state();
        self.app.reload_scenarios().await;
        if self.app.suppliers().reload().is_ok() {
            refresh_systems(&self.app);
        }
    }

    /// Stops accepting, lets open connections finish (up to the drain limit), flushes the
    /// journal, and returns what went wrong on the way, if anything.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        match self.task.take() {
            Some(task) => task.await.context("the server task failed")?,
            None => Ok(()),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The server certificate and client CAs: the user's own, or the test PKI (made or renewed as
/// needed), which is also returned for the banner.
fn tls_material(config: &Config) -> anyhow::Result<(TlsMaterial, Option<DemoPki>)> {
    if let Some((cert, key)) = &config.server_identity {
        let cas: Vec<&Path> = config.client_cas.iter().map(PathBuf::as_path).collect();
        if cas.is_empty() {
            anyhow::bail!(
                "with a server certificate of your own (--cert/--key), name the CA that issues client certificates with --client-ca"
            );
        }
        return Ok((TlsMaterial::from_files(cert, key, &cas)?, None));
    }
    let paths = PkiPaths::new(&config.certs_dir);
    let demo = pki::ensure_demo(&paths, &config.server_names)
        .with_context(|| format!("cannot prepare the test PKI in {}", paths.dir.display()))?;
    let mut cas = vec![paths.ca_cert()];
    cas.extend(config.client_cas.iter().cloned());
    let cas: Vec<&Path> = cas.iter().map(PathBuf::as_path).collect();
    let material = TlsMaterial::from_files(&paths.server_cert(), &paths.server_key(), &cas)?;
    Ok((material, Some(demo)))
}

/// The catalog of `config`; WSDLs that do not load are logged and left out.
fn load_catalog(config: &Config) -> Catalog {
    let started = std::time::Instant::now();
    let loaded = Catalog::load(&config.catalog);
    for problem in &loaded.problems {
        tracing::warn!("not served: {problem}");
    }
    tracing::info!(
        endpoints = loaded.catalog.endpoints.len(),
        problems = loaded.problems.len(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "catalog loaded"
    );
    loaded.catalog
}

/// What the file watcher looks at: the scenario folder and the registry file, when there are.
fn watches(app: &Arc<App>) -> Vec<Watch> {
    let mut watches = Vec::new();
    if let Some(dir) = app.scenarios().dir() {
        let app = app.clone();
        watches.push(Watch {
            source: "scenarios",
            target: Target::Folder {
                dir: dir.to_owned(),
                extensions: &["toml", "xml"],
            },
            reload: Box::new(move || {
                let app = app.clone();
                Box::pin(async move {
                    let status = app.reload_scenarios().await;
                    status.error.map_or(Ok(()), Err)
                })
            }),
        });
    }
    if let Some(path) = app.suppliers().path() {
        let watched = app.clone();
        watches.push(Watch {
            source: "suppliers",
            target: Target::File(path.to_owned()),
            reload: Box::new(move || {
                let result = watched
                    .suppliers()
                    .reload()
                    .map_err(|error| format!("{error:#}"));
                if result.is_ok() {
                    refresh_systems(&watched);
                }
                Box::pin(async move { result })
            }),
        });
    }
    watches
}

/// Gives WSB the systems of the registry in force (after it was re-read).
fn refresh_systems(app: &App) {
    if let Some(wsb) = app.wsb() {
        let systems = System::all_of(&app.suppliers().current());
        tracing::info!(
            systems = systems.len(),
            "WSB systems from the supplier registry"
        );
        wsb.set_systems(systems);
    }
}

/// WSB's parts from `config`: STAR's certificate (`given`, `[wsb]` star_cert/star_key, or the
/// test PKI's, made now if missing), the webhook trust (`[wsb]` trust, else the test CA), the
/// message catalog, the store (the journal's file unless `[wsb]` store names another) and the
/// schedules, every message type checked. `None` when switched off, or without a STAR
/// certificate (a server certificate of the user's own and no `[wsb]` star_cert).
fn wsb_parts(
    config: &Config,
    given: Option<WebhookTls>,
    demo: Option<&DemoPki>,
) -> anyhow::Result<Option<WsbParts>> {
    let wsb_config = &config.wsb;
    if !wsb_config.enabled {
        tracing::info!("WSB is switched off: no pushes; the subscription endpoint answers 503");
        return Ok(None);
    }
    let trust = |default: Option<PathBuf>| -> anyhow::Result<Vec<PathBuf>> {
        match (wsb_config.trust.is_empty(), default) {
            (false, _) => Ok(wsb_config.trust.clone()),
            (true, Some(ca)) => Ok(vec![ca]),
            (true, None) => anyhow::bail!(
                "name the CA certificates that issue your webhooks' server certificates with [wsb] trust (or --wsb-trust)"
            ),
        }
    };
    let read = |cert: &Path, key: &Path, trust: &[PathBuf]| -> anyhow::Result<WebhookTls> {
        let trust: Vec<&Path> = trust.iter().map(PathBuf::as_path).collect();
        WebhookTls::from_files(cert, key, &trust).with_context(|| {
            format!(
                "cannot use STAR's certificate {} (key {}) for WSB",
                cert.display(),
                key.display()
            )
        })
    };
    let tls = match (given, &wsb_config.star, demo) {
        (Some(tls), _, _) => tls,
        (None, Some((cert, key)), demo) => {
            let trust = trust(demo.map(|d| d.paths.ca_cert()))?;
            read(cert, key, &trust)?
        }
        (None, None, Some(demo)) => {
            let star = pki::ensure_star(&demo.paths).with_context(|| {
                format!(
                    "cannot make STAR's certificate in {}",
                    demo.paths.dir.display()
                )
            })?;
            if star.issued {
                tracing::info!(cert = %star.cert.display(), caller_id = %star.identity.caller_id, "issued STAR's WSB certificate");
            }
            read(&star.cert, &star.key, &trust(Some(demo.paths.ca_cert()))?)?
        }
        (None, None, None) => {
            tracing::warn!("WSB is off: with a server certificate of your own, name STAR's sending certificate with [wsb] star_cert and star_key");
            return Ok(None);
        }
    };
    let catalog = match &wsb_config.catalog {
        Some(path) => wsb::Catalog::load(path)?,
        None => wsb::Catalog::shipped()?,
    };
    let mut schedules = Vec::new();
    for entry in &wsb_config.schedule {
        let what = || format!("[[wsb.schedule]] {:?}", entry.name);
        let kind = catalog
            .resolve(&entry.message_type)
            .map_err(|e| anyhow::anyhow!("{}: {e}", what()))?;
        let subject = match (&entry.cpr, &entry.identifier) {
            (Some(cpr), _) => wsb::Subject::Cpr(
                wsb::Cpr::try_from(cpr.clone()).map_err(|e| anyhow::anyhow!("{}: {e}", what()))?,
            ),
            (None, Some(identifier)) => wsb::Subject::Identifier(identifier.clone()),
            (None, None) => anyhow::bail!("{}: give cpr or identifier", what()),
        };
        let message = wsb::Message::new(kind.id, entry.recipient, subject, entry.change);
        message
            .check(&catalog)
            .map_err(|e| anyhow::anyhow!("{}: {e}", what()))?;
        schedules.push(Schedule {
            name: entry.name.clone(),
            every: entry.every,
            message,
        });
    }
    let path = wsb_config.store.as_ref().unwrap_or(&config.journal);
    let store = SqliteWsbStore::open(path)
        .with_context(|| format!("cannot open WSB's tables in {}", path.display()))?;
    Ok(Some(WsbParts {
        settings: wsb_config.settings.clone(),
        catalog: Arc::new(catalog),
        tls,
        store: Arc::new(store),
        schedules,
    }))
}
