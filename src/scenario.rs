//! Scenarios: scripted answers chosen by what a request says and who sends it.
//!
//! Rule files (`scenarios/*.toml`, templates in `.xml` files beside them) are compiled once into
//! an immutable, indexed [`Spec`] ([`spec`]); a request is matched against it by pure,
//! synchronous code ([`matching`]), and the winning rule's response is rendered with minijinja
//! ([`template`]); [`names`] holds DFDG's fault codes and the "did you mean" for unknown names.
//! Matching changes no state: the call counts and `set_state` values a decision implies come back
//! as [`Effect`]s, which the app applies once the call is journaled.
//!
//! The spec lives behind an `Arc` that a reload swaps atomically ([`Scenarios::reload`]); the
//! runtime state the rules build up — per-caller call counters and per-caller state buckets —
//! lives apart from it in [`Runtime`], survives file reloads and is cleared by
//! [`Scenarios::reset_state`]. [`crate::watch`] polls the folder for changes.

pub mod matching;
pub mod names;
pub mod spec;
pub mod template;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use time::OffsetDateTime;

use crate::identity::CallerIdentity;
use crate::soap::{Fault, SoapVersion, StarHeaders};
use crate::wsdl::xml::Element;

pub use matching::RequestValues;
pub use spec::{LoadError, Problem, Spec};

/// Everything a rule may look at, gathered once per request by [`crate::app`].
#[derive(Debug)]
pub struct RequestFacts<'a> {
    /// The catalog's name of the service; `None` without a catalog route.
    pub service: Option<&'a str>,
    /// The registered supplier of the certificate; `None` in open mode or when unregistered.
    pub supplier: Option<&'a str>,
    /// That supplier's category: `small`, `medium` or `large`.
    pub category: Option<&'a str>,
    /// The operation element, parsed once ([`crate::soap::Envelope::operation`]): its name,
    /// and the values the rules and templates read.
    pub operation: &'a Arc<Element>,
    pub version: SoapVersion,
    /// The HTTP path, without the query.
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    /// The verified caller; `None` only when no certificate identity is known.
    pub identity: Option<&'a Arc<CallerIdentity>>,
    pub star: &'a StarHeaders,
    /// Arrival time: `now` in templates.
    pub now: OffsetDateTime,
}

/// Names the rule that answered: the scenario file (relative to the folder) and rule name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    pub file: Arc<str>,
    pub name: Arc<str>,
}

/// What a matched rule says to do.
#[derive(Debug)]
pub struct Decision {
    pub rule: RuleRef,
    pub answer: ScriptedAnswer,
    /// Overrides the HTTP status of the answer.
    pub status: Option<u16>,
    /// Added to the response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Waited before answering.
    pub delay: Option<Duration>,
    /// Instead of (or while) answering, break the connection.
    pub connection: Option<ConnectionFault>,
    /// WSB messages to send once the call is journaled (`push`), rendered for this call.
    pub pushes: Vec<crate::wsb::SendRequest>,
}

/// What matching a call against the rules came to.
#[derive(Debug)]
pub struct Choice {
    /// The rule that answers; `None`: the default answer.
    pub decision: Option<Decision>,
    /// What the call advances once it is journaled ([`Scenarios::apply`]): the counters of
    /// every rule whose conditions it met on the way, the winner's `set_state`.
    pub effects: Vec<Effect>,
}

/// A change to the scenarios' runtime state that a call makes once it is journaled: matching
/// only reads the state, so a call that is not journaled changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// One more call of `caller` met the conditions of rule `rule` (its key, `file#name`).
    Count { caller: String, rule: Arc<str> },
    /// `set_state`: `caller`'s `bucket` holds `value` under `key`.
    SetState {
        caller: String,
        bucket: String,
        key: String,
        value: String,
    },
}

/// The body a rule answers with.
#[derive(Debug)]
pub enum ScriptedAnswer {
    /// The built-in answer: a receipt (later the catalog's default response).
    Default,
    /// A rendered XML template and the receipt GUIDs it issued via `receipt()`.
    Xml { text: String, receipts: Vec<String> },
    /// A DFDG fault.
    Fault(Fault),
    /// The template failed at render time; answered with fault 1011 naming the rule.
    Broken(String),
}

/// Ways to break a connection instead of answering properly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionFault {
    /// TCP reset (RST) without a response.
    Reset,
    /// Status line and headers, then the connection is closed before the body.
    CloseAfterHeaders,
    /// Bytes that are not HTTP, inside TLS, then close.
    Garbage,
    /// The connection is closed without any response.
    Empty,
}

impl ConnectionFault {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionFault::Reset => "reset",
            ConnectionFault::CloseAfterHeaders => "close_after_headers",
            ConnectionFault::Garbage => "garbage",
            ConnectionFault::Empty => "empty",
        }
    }

    pub const ALL: [ConnectionFault; 4] = [
        ConnectionFault::Reset,
        ConnectionFault::CloseAfterHeaders,
        ConnectionFault::Garbage,
        ConnectionFault::Empty,
    ];
}

/// State the rules build up while serving, kept apart from the immutable spec.
#[derive(Debug, Default)]
pub struct Runtime {
    /// Per caller id, per rule key (`file#rule`): calls that met the rule's other conditions.
    counters: Mutex<HashMap<String, HashMap<Arc<str>, u64>>>,
    /// Per caller id, per bucket, per key: values set by `set_state`.
    state: Mutex<HashMap<String, Buckets>>,
}

/// One caller's state: bucket → key → value.
type Buckets = HashMap<String, HashMap<String, String>>;

impl Runtime {
    /// How many calls of `caller` met `rule`'s conditions so far (0 before the first).
    pub fn count(&self, caller: &str, rule: &str) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters
            .get(caller)
            .and_then(|per_caller| per_caller.get(rule))
            .copied()
            .unwrap_or(0)
    }

    /// Advances the counters and state as a journaled call says.
    pub fn apply(&self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::Count { caller, rule } => {
                    let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
                    let per_caller = match counters.get_mut(caller.as_str()) {
                        Some(per_caller) => per_caller,
                        None => counters.entry(caller.clone()).or_default(),
                    };
                    *per_caller.entry(rule.clone()).or_insert(0) += 1;
                }
                Effect::SetState {
                    caller,
                    bucket,
                    key,
                    value,
                } => self.set_state(caller, bucket, key.clone(), value.clone()),
            }
        }
    }

    /// The value stored for `caller` in `bucket` under `key`.
    pub fn state(&self, caller: &str, bucket: &str, key: &str) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.get(caller)?.get(bucket)?.get(key).cloned()
    }

    pub fn set_state(&self, caller: &str, bucket: &str, key: String, value: String) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // The caller and the bucket are owned only the first time they are seen.
        let buckets = match state.get_mut(caller) {
            Some(buckets) => buckets,
            None => state.entry(caller.to_owned()).or_default(),
        };
        let values = match buckets.get_mut(bucket) {
            Some(values) => values,
            None => buckets.entry(bucket.to_owned()).or_default(),
        };
        values.insert(key, value);
    }

    /// Forgets every counter and every state value.
    pub fn clear(&self) {
        self.counters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// The outcome of one reload attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Counts attempts, 0 for the load at start.
    pub generation: u64,
    pub ok: bool,
    /// The files read (relative to the folder).
    pub files: Vec<String>,
    /// Rules in force afterwards.
    pub rules: usize,
    /// Why the attempt was refused (the previous rules stay in force).
    pub error: Option<String>,
    /// Rules in force that name a service or operation the catalog does not serve (as `check`
    /// reports them, with a "did you mean"): they can never match.
    pub warnings: Vec<String>,
}

/// The live scenarios of a server: the current spec, the runtime state, the reload history.
#[derive(Debug)]
pub struct Scenarios {
    /// The folder read, if any.
    dir: Option<PathBuf>,
    /// The compiled rules in force; replaced whole by a successful reload.
    spec: RwLock<Arc<Spec>>,
    runtime: Arc<Runtime>,
    /// The latest reload attempt, for watchers (tests, the admin API).
    status: tokio::sync::watch::Sender<ReloadStatus>,
    /// The catalog's `(service, operation)` names, to warn about rules naming others; `None`:
    /// no catalog, names are not checked.
    known: Option<Arc<[(String, String)]>>,
}

impl Scenarios {
    /// No rules: every call gets the default answer.
    pub fn none() -> Scenarios {
        Scenarios::with_spec(None, Spec::empty())
    }

    /// Loads and compiles the rule files in `dir`; any problem refuses the whole folder.
    pub fn load(dir: &Path) -> Result<Scenarios, LoadError> {
        let spec = Spec::load_dir(dir)?;
        Ok(Scenarios::with_spec(Some(dir.to_owned()), spec))
    }

    fn with_spec(dir: Option<PathBuf>, spec: Spec) -> Scenarios {
        let status = ReloadStatus {
            generation: 0,
            ok: true,
            files: spec.files().to_vec(),
            rules: spec.rules().len(),
            error: None,
            warnings: Vec::new(),
        };
        Scenarios {
            dir,
            spec: RwLock::new(Arc::new(spec)),
            runtime: Arc::new(Runtime::default()),
            status: tokio::sync::watch::channel(status).0,
            known: None,
        }
    }

    /// Checks the rules, now and at every reload, against the catalog's `(service, operation)`
    /// names; a rule naming another is logged as a warning and listed in the reload status.
    pub fn with_known_names(mut self, known: Vec<(String, String)>) -> Scenarios {
        self.known = (!known.is_empty()).then(|| known.into());
        let warnings = self.warnings(&self.spec());
        self.status.send_modify(|status| status.warnings = warnings);
        self
    }

    /// The rules of `spec` naming what the catalog does not serve, each logged.
    fn warnings(&self, spec: &Spec) -> Vec<String> {
        let Some(known) = &self.known else {
            return Vec::new();
        };
        let warnings = spec.check_against(known);
        for warning in &warnings {
            tracing::warn!("scenario rule can never match: {warning}");
        }
        warnings
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The rules in force now.
    pub fn spec(&self) -> Arc<Spec> {
        self.spec
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the folder again: on success the new rules replace the old ones at once; on
    /// failure the old ones stay in force and the status carries the error.
    pub fn reload(&self) -> ReloadStatus {
        let generation = self.status.borrow().generation + 1;
        let status = match &self.dir {
            None => ReloadStatus {
                generation,
                ok: true,
                files: Vec::new(),
                rules: 0,
                error: None,
                warnings: Vec::new(),
            },
            Some(dir) => match Spec::load_dir(dir) {
                Ok(spec) => {
                    let status = ReloadStatus {
                        generation,
                        ok: true,
                        files: spec.files().to_vec(),
                        rules: spec.rules().len(),
                        error: None,
                        warnings: self.warnings(&spec),
                    };
                    *self.spec.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(spec);
                    status
                }
                Err(error) => ReloadStatus {
                    generation,
                    ok: false,
                    files: error.files.clone(),
                    rules: self.spec().rules().len(),
                    error: Some(error.to_string()),
                    warnings: Vec::new(),
                },
            },
        };
        self.status.send_replace(status.clone());
        status
    }

    /// Follows reload attempts: `changed().await` wakes on each.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<ReloadStatus> {
        self.status.subscribe()
    }

    /// Forgets all call counters and state (sequences start again from the first call).
    pub fn reset_state(&self) {
        self.runtime.clear();
    }

    /// The counters and state the rules build up.
    pub fn runtime(&self) -> &Arc<Runtime> {
        &self.runtime
    }

    /// Advances the counters and state as a journaled call's decision says.
    pub fn apply(&self, effects: &[Effect]) {
        self.runtime.apply(effects);
    }
}
