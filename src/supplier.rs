//! The supplier registry: which certificate identities belong to which supplier, its category
//! (small / medium / large) and the services it may call; the authorization of one call with
//! DFDG's codes; and the identity checks a systemforvalter makes on each call.
//!
//! Without a registry file the mock runs in *open* mode: any trusted certificate may call
//! everything, so the quickstart works before any supplier is registered. The running server
//! holds a [`LiveRegistry`], re-read when the file changes ([`watch`]) or on SIGHUP.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::identity::CallerIdentity;
use crate::soap::StarHeaders;
use crate::wsdl::Access;

/// The registry file used when none is configured.
pub const DEFAULT_REGISTRY: &str = "suppliers.toml";

/// DFDG: logon failed (the certificate belongs to no supplier, or is revoked).
pub const CODE_LOGON_FAILED: i64 = 1012;
/// DFDG: insufficient permissions for this webservice.
pub const CODE_SERVICE_NOT_ALLOWED: i64 = 1013;
/// DFDG: not authorised for the operation.
pub const CODE_OPERATION_NOT_ALLOWED: i64 = 4575;
/// DFDG: missing ActiveOrganisationHeader.
pub const CODE_MISSING_ACTIVE_ORGANISATION: i64 = 8232;
/// DFDG: missing RequestUserMetadataHeader.
pub const CODE_MISSING_REQUEST_USER: i64 = 8233;

/// STAR's supplier categories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Reads only (lookups), or Jobnet services.
    Small,
    /// More integration; may write.
    Medium,
    /// Case-system suppliers; write updates to DFDG.
    Large,
}

impl Category {
    pub fn may_write(self) -> bool {
        !matches!(self, Category::Small)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Small => "small",
            Category::Medium => "medium",
            Category::Large => "large",
        }
    }
}

/// One supplier, as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Supplier {
    pub name: String,
    pub cvr: String,
    pub category: Category,
    /// STAR caller ids (`CVR:…-UUID:…`, `CVR:…-FID:…`) or `SHA256:<fingerprint>`.
    #[serde(default)]
    pub identities: Vec<String>,
    /// Service names it may call (e.g. `PersonStatusService`); empty means none.
    #[serde(default)]
    pub services: Vec<String>,
    /// Identities whose certificates are revoked: their calls are refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked: Vec<String>,
    /// Its client systems as STAR's system administration registers them for WSB pushes
    /// (`[[supplier.system]]`): where their webhooks are, which authorities they receive for.
    #[serde(default, rename = "system", skip_serializing_if = "Vec::is_empty")]
    pub systems: Vec<SupplierSystem>,
}

/// One client system of a supplier (`[[supplier.system]]` in the registry): STAR pushes its
/// messages to `base_url` + the webhook path of a subscription the system holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplierSystem {
    /// `systemIdentifier`: the GUID a subscription sync names.
    pub id: uuid::Uuid,
    /// What the supplier calls it, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `https://host[:port][/prefix]`: where its webhooks are.
    pub base_url: crate::wsb::BaseUrl,
    /// The authorities (`orgType/orgCode`, e.g. `"8/101"`) it may hold subscriptions for;
    /// empty: any.
    #[serde(
        default,
        with = "authority_texts",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub authorities: Vec<crate::wsb::Authority>,
}

/// Authorities written as `"8/101"` in the registry file.
mod authority_texts {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::wsb::Authority;

    pub fn serialize<S: Serializer>(list: &[Authority], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(list.iter().map(ToString::to_string))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Authority>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| text.parse().map_err(serde::de::Error::custom))
            .collect()
    }
}

impl Supplier {
    /// [`Supplier::owns`] for a journaled identity: its caller id and certificate fingerprint.
    pub fn owns_identity(&self, caller_id: &str, fingerprint: &str) -> bool {
        self.identities
            .iter()
            .chain(&self.revoked)
            .any(|known| keys_match(known, caller_id, fingerprint))
    }

    /// Is this certificate of the supplier revoked?
    pub fn is_revoked(&self, identity: &CallerIdentity) -> bool {
        self.revoked
            .iter()
            .any(|known| identity_matches(known, identity))
    }

    fn may_call(&self, service: &str) -> bool {
        self.services
            .iter()
            .any(|s| s.eq_ignore_ascii_case(service))
    }
}

fn identity_matches(known: &str, identity: &CallerIdentity) -> bool {
    keys_match(known, &identity.caller_id, &identity.fingerprint)
}

/// Whether the registered identity `known` (a caller id or a fingerprint) names this certificate.
pub fn keys_match(known: &str, caller_id: &str, fingerprint: &str) -> bool {
    let (known_caller, known_fingerprint) = identity_keys(known);
    known_caller.eq_ignore_ascii_case(caller_id)
        || known_fingerprint.eq_ignore_ascii_case(fingerprint)
}

/// What a registered identity matches, lower-cased: a caller id (`CVR:…-UUID:…`), or a
/// certificate fingerprint (`SHA256:` and colons aside).
pub fn identity_keys(known: &str) -> (String, String) {
    let known = known.trim();
    let fingerprint = known
        .strip_prefix("SHA256:")
        .unwrap_or(known)
        .replace(':', "");
    (known.to_ascii_lowercase(), fingerprint.to_ascii_lowercase())
}

/// Whether two registered identities name the same certificate (caller id or fingerprint,
/// case aside).
fn same_identity(a: &str, b: &str) -> bool {
    let (a, b) = (identity_keys(a), identity_keys(b));
    a.0 == b.0 || a.1 == b.1
}

/// The entries of `new` not in `old`, and of `old` not in `new`.
fn difference<'a>(
    old: &'a [String],
    new: &'a [String],
    same: fn(&str, &str) -> bool,
) -> (Vec<&'a str>, Vec<&'a str>) {
    let added = new
        .iter()
        .filter(|n| !old.iter().any(|o| same(o, n)))
        .map(String::as_str)
        .collect();
    let dropped = old
        .iter()
        .filter(|o| !new.iter().any(|n| same(o, n)))
        .map(String::as_str)
        .collect();
    (added, dropped)
}

/// What [`Registry::revoke`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Moved from the supplier's identities to its revoked ones.
    Now,
    /// It was revoked already; nothing changed.
    Already,
}

impl Supplier {
    /// What replacing `self` with `new` would change, one line each; empty when nothing would.
    pub fn changes(&self, new: &Supplier) -> Vec<String> {
        let mut changes = Vec::new();
        if self.cvr != new.cvr {
            changes.push(format!("CVR {} → {}", self.cvr, new.cvr));
        }
        if self.category != new.category {
            changes.push(format!(
                "category {} → {}",
                self.category.as_str(),
                new.category.as_str()
            ));
        }
        let (added, dropped) = difference(&self.services, &new.services, |a, b| {
            a.eq_ignore_ascii_case(b)
        });
        if !added.is_empty() {
            changes.push(format!("services added: {}", added.join(", ")));
        }
        if !dropped.is_empty() {
            changes.push(format!(
                "services dropped: {} (calls to them would get 1013)",
                dropped.join(", ")
            ));
        }
        let (added, dropped) = difference(&self.identities, &new.identities, same_identity);
        if !added.is_empty() {
            changes.push(format!("identities added: {}", added.join(", ")));
        }
        if !dropped.is_empty() {
            changes.push(format!(
                "identities dropped: {} (their calls would get 1012)",
                dropped.join(", ")
            ));
        }
        changes
    }
}

/// The registry file's shape.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    #[serde(default, rename = "supplier")]
    suppliers: Vec<Supplier>,
}

/// The suppliers known to the mock, or open mode.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registry {
    /// `None` in open mode (no registry file).
    suppliers: Option<Vec<Supplier>>,
    /// Made with the list, see [`KeyIndex`].
    index: KeyIndex,
}

/// Every registered identity's keys ([`identity_keys`], revoked ones included) to the first
/// supplier in the list that names it: a call's supplier is two lookups, not a comparison
/// with every registered identity (with a thousand suppliers that comparison had been most of
/// a call's CPU).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct KeyIndex {
    by_caller: HashMap<String, usize>,
    by_fingerprint: HashMap<String, usize>,
}

impl KeyIndex {
    fn of(suppliers: &[Supplier]) -> KeyIndex {
        let mut index = KeyIndex::default();
        for (at, supplier) in suppliers.iter().enumerate() {
            for known in supplier.identities.iter().chain(&supplier.revoked) {
                let (caller, fingerprint) = identity_keys(known);
                index.by_caller.entry(caller).or_insert(at);
                index.by_fingerprint.entry(fingerprint).or_insert(at);
            }
        }
        index
    }

    /// The first supplier naming the certificate by its caller id or by its fingerprint.
    fn find(&self, caller_id: &str, fingerprint: &str) -> Option<usize> {
        let by_caller = self.by_caller.get(&caller_id.to_ascii_lowercase());
        let by_fingerprint = self.by_fingerprint.get(&fingerprint.to_ascii_lowercase());
        by_caller.into_iter().chain(by_fingerprint).min().copied()
    }
}

/// The outcome of authorizing one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Open mode: no registry, everything allowed.
    Open,
    /// A registered supplier may make this call.
    Allowed { supplier: String },
    /// Refused with a DFDG code and the reason.
    Refused {
        supplier: Option<String>,
        code: i64,
        reason: String,
    },
}

impl Decision {
    pub fn supplier(&self) -> Option<&str> {
        match self {
            Decision::Open => None,
            Decision::Allowed { supplier } => Some(supplier),
            Decision::Refused { supplier, .. } => supplier.as_deref(),
        }
    }

    /// A short label for the journal: `open`, `allowed`, `refused 1013`.
    pub fn label(&self) -> String {
        match self {
            Decision::Open => "open".into(),
            Decision::Allowed { .. } => "allowed".into(),
            Decision::Refused { code, .. } => format!("refused {code}"),
        }
    }
}

impl Registry {
    /// Open mode: any trusted certificate may call everything.
    pub fn open() -> Registry {
        Registry::default()
    }

    /// A registry of these suppliers.
    pub fn of(suppliers: Vec<Supplier>) -> Registry {
        Registry {
            index: KeyIndex::of(&suppliers),
            suppliers: Some(suppliers),
        }
    }

    pub fn is_open(&self) -> bool {
        self.suppliers.is_none()
    }

    pub fn suppliers(&self) -> &[Supplier] {
        self.suppliers.as_deref().unwrap_or_default()
    }

    /// Reads the registry at `path`; a missing file means open mode.
    pub fn load(path: &Path) -> anyhow::Result<Registry> {
        match std::fs::read_to_string(path) {
            Ok(text) => Registry::parse(path, &text),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Registry::open()),
            Err(error) => Err(error)
                .with_context(|| format!("cannot read the supplier registry {}", path.display())),
        }
    }

    /// Parses a registry file's text; errors say `path:line:column: what`.
    pub fn parse(path: &Path, text: &str) -> anyhow::Result<Registry> {
        let file: RegistryFile = crate::config::parse_toml(path, text)?;
        for supplier in &file.suppliers {
            validate(supplier)
                .with_context(|| format!("{}: supplier '{}'", path.display(), supplier.name))?;
        }
        let registry = Registry::of(file.suppliers);
        if let Some((supplier, system, message)) = registry.system_problem() {
            let at = system_position(text, supplier, system)
                .map_or(String::new(), |p| format!(":{}:{}", p.line, p.column));
            anyhow::bail!("{}{at}: {message}", path.display());
        }
        Ok(registry)
    }

    /// The first problem among the registered systems: (supplier index, system index, what).
    fn system_problem(&self) -> Option<(usize, usize, String)> {
        let mut seen: Vec<(uuid::Uuid, &str)> = Vec::new();
        for (s, supplier) in self.suppliers().iter().enumerate() {
            for (y, system) in supplier.systems.iter().enumerate() {
                if system.id.is_nil() {
                    return Some((s, y, format!(
                        "supplier '{}': a system needs a GUID of its own, not the nil GUID (make one with `uuidgen`)",
                        supplier.name
                    )));
                }
                if let Some((_, owner)) = seen.iter().find(|(id, _)| *id == system.id) {
                    return Some((s, y, format!(
                        "supplier '{}': system {} is already registered{}; a system belongs to one supplier and is listed once",
                        supplier.name,
                        system.id,
                        if *owner == supplier.name {
                            " for it".to_owned()
                        } else {
                            format!(" for supplier '{owner}'")
                        }
                    )));
                }
                seen.push((system.id, &supplier.name));
            }
        }
        None
    }

    /// Every registered system with its supplier.
    pub fn systems(&self) -> impl Iterator<Item = (&Supplier, &SupplierSystem)> {
        self.suppliers().iter().flat_map(|supplier| {
            supplier
                .systems
                .iter()
                .map(move |system| (supplier, system))
        })
    }

    /// Writes the registry to `path` atomically (a temporary file renamed over it).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let file = RegistryFile {
            suppliers: self.suppliers().to_vec(),
        };
        let text = format!(
            "# dfdg-mock supplier registry: edit by hand or with `dfdg-mock supplier add|remove|revoke`.\n\n{}",
            toml::to_string_pretty(&file).context("cannot write the registry as TOML")?
        );
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let temporary = temporary_path(path);
        std::fs::write(&temporary, text)
            .with_context(|| format!("cannot write {}", temporary.display()))?;
        std::fs::rename(&temporary, path)
            .with_context(|| format!("cannot replace {}", path.display()))
    }

    /// Adds or replaces (by name) a supplier. A replaced supplier keeps its registered WSB
    /// systems unless the new entry lists systems of its own.
    pub fn upsert(&mut self, mut supplier: Supplier) -> anyhow::Result<()> {
        validate(&supplier)?;
        let suppliers = self.suppliers.get_or_insert_with(Vec::new);
        match suppliers
            .iter_mut()
            .find(|s| s.name.eq_ignore_ascii_case(&supplier.name))
        {
            Some(existing) => {
                if supplier.systems.is_empty() {
                    supplier.systems = std::mem::take(&mut existing.systems);
                }
                *existing = supplier;
            }
            None => suppliers.push(supplier),
        }
        self.index = KeyIndex::of(suppliers);
        if let Some((_, _, problem)) = self.system_problem() {
            anyhow::bail!("{problem}");
        }
        Ok(())
    }

    /// Removes a supplier by name; says whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let Some(suppliers) = &mut self.suppliers else {
            return false;
        };
        let before = suppliers.len();
        suppliers.retain(|s| !s.name.eq_ignore_ascii_case(name));
        self.index = KeyIndex::of(suppliers);
        suppliers.len() != before
    }

    /// The supplier registered under `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&Supplier> {
        self.suppliers()
            .iter()
            .find(|s| s.name.eq_ignore_ascii_case(name))
    }

    /// Marks one of a supplier's identities as revoked. An identity the supplier does not have
    /// is refused (naming the ones it has, and the supplier it belongs to, if another).
    pub fn revoke(&mut self, name: &str, identity: &str) -> anyhow::Result<Revoked> {
        let owner = self
            .suppliers()
            .iter()
            .find(|s| s.identities.iter().any(|i| same_identity(i, identity)))
            .map(|s| s.name.clone());
        let supplier = self
            .suppliers
            .iter_mut()
            .flatten()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .with_context(|| format!("no supplier named '{name}'"))?;
        if supplier.revoked.iter().any(|i| same_identity(i, identity)) {
            return Ok(Revoked::Already);
        }
        let Some(index) = supplier
            .identities
            .iter()
            .position(|i| same_identity(i, identity))
        else {
            let other = owner.map_or(String::new(), |owner| {
                format!(" (it is registered for {owner})")
            });
            anyhow::bail!(
                "{} has no identity {identity}{other}; its identities: {}",
                supplier.name,
                if supplier.identities.is_empty() {
                    "none".to_owned()
                } else {
                    supplier.identities.join(", ")
                }
            );
        };
        let revoked = supplier.identities.remove(index);
        supplier.revoked.push(revoked);
        Ok(Revoked::Now)
    }

    /// The supplier a certificate belongs to.
    pub fn find(&self, identity: &CallerIdentity) -> Option<&Supplier> {
        let at = self
            .index
            .find(&identity.caller_id, &identity.fingerprint)?;
        self.suppliers().get(at)
    }

    /// May `identity` call `service` (an operation with `access`)?
    pub fn authorize(
        &self,
        identity: &CallerIdentity,
        service: Option<&str>,
        access: Access,
    ) -> Decision {
        if self.is_open() {
            return Decision::Open;
        }
        let Some(supplier) = self.find(identity) else {
            return Decision::Refused {
                supplier: None,
                code: CODE_LOGON_FAILED,
                reason: format!(
                    "Logon failed: the certificate {} is trusted but belongs to no registered supplier",
                    identity.caller_id
                ),
            };
        };
        let name = Some(supplier.name.clone());
        if supplier.is_revoked(identity) {
            return Decision::Refused {
                supplier: name,
                code: CODE_LOGON_FAILED,
                reason: format!(
                    "Logon failed: the certificate {} of {} is revoked",
                    identity.caller_id, supplier.name
                ),
            };
        }
        let Some(service) = service else {
            return Decision::Refused {
                supplier: name,
                code: CODE_SERVICE_NOT_ALLOWED,
                reason: "Insufficient permissions for this webservice: the request path names no webservice (expected /<App>/<version>/<Service>.svc)".to_owned(),
            };
        };
        if !supplier.may_call(service) {
            return Decision::Refused {
                supplier: name,
                code: CODE_SERVICE_NOT_ALLOWED,
                reason: format!(
                    "Insufficient permissions for this webservice: {} may call {}, not {service}",
                    supplier.name,
                    if supplier.services.is_empty() {
                        "no services".to_owned()
                    } else {
                        supplier.services.join(", ")
                    }
                ),
            };
        }
        if access == Access::Write && !supplier.category.may_write() {
            return Decision::Refused {
                supplier: name,
                code: CODE_OPERATION_NOT_ALLOWED,
                reason: format!(
                    "Not authorised for the operation: {} is a {} supplier, which may only read",
                    supplier.name,
                    supplier.category.as_str()
                ),
            };
        }
        Decision::Allowed {
            supplier: supplier.name.clone(),
        }
    }
}

/// The catalog's spelling of each requested service; an unknown one is refused with the
/// closest known name, and the names the catalog serves.
pub fn resolve_services(
    requested: &[String],
    catalog: &crate::wsdl::Catalog,
) -> anyhow::Result<Vec<String>> {
    let mut known: Vec<&str> = Vec::new();
    for endpoint in &catalog.endpoints {
        if !known.contains(&endpoint.service.as_str()) {
            known.push(&endpoint.service);
        }
    }
    let mut services: Vec<String> = Vec::new();
    for name in requested.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        match known.iter().find(|k| k.eq_ignore_ascii_case(name)) {
            Some(found) => {
                if !services.iter().any(|s| s == found) {
                    services.push((*found).to_owned());
                }
            }
            None => anyhow::bail!(
                "{} (the catalog serves: {})",
                crate::scenario::names::unknown_name("service", name, &known),
                known.join(", ")
            ),
        }
    }
    Ok(services)
}

/// What a command that made the registry file appear says: the mock was open, and now only
/// registered certificates may call; `demo` is the demo client's caller id, when known.
pub fn open_mode_closed(path: &Path, demo: Option<&str>) -> String {
    let demo = demo.map_or_else(
        || "e.g. the demo client certificate of `serve`'s first start".to_owned(),
        |caller_id| format!("the demo client certificate's ({caller_id}) included"),
    );
    format!(
        "note: {path} did not exist, so the mock was in open mode (any trusted certificate could call \
         everything). From now on only registered suppliers' certificates may call: a running server \
         reads {path} within a second and answers every other certificate with fault 1012 (Logon \
         failed), {demo}. Register those with `dfdg-mock supplier add`, or delete {path} to go back to \
         open mode.",
        path = path.display()
    )
}

/// The registry the running server consults: read again when its file changes (see
/// [`crate::watch`]) or on SIGHUP, swapped atomically; a broken file keeps the previous registry in
/// force.
#[derive(Debug)]
pub struct LiveRegistry {
    /// The registry file; `None`: open mode for good (no file configured).
    path: Option<PathBuf>,
    /// Strict mode: a call's first identity finding becomes its fault.
    strict: bool,
    /// The registry in force; readers clone the `Arc` and never wait for a reload.
    current: RwLock<Arc<Registry>>,
}

impl Default for LiveRegistry {
    fn default() -> Self {
        LiveRegistry::fixed(Registry::open(), false)
    }
}

impl LiveRegistry {
    /// A registry that never changes (no file behind it).
    pub fn fixed(registry: Registry, strict: bool) -> LiveRegistry {
        LiveRegistry {
            path: None,
            strict,
            current: RwLock::new(Arc::new(registry)),
        }
    }

    /// Reads the registry at `path` (missing: open mode until the file appears).
    pub fn load(path: &Path, strict: bool) -> anyhow::Result<LiveRegistry> {
        Ok(LiveRegistry {
            path: Some(path.to_owned()),
            strict,
            current: RwLock::new(Arc::new(Registry::load(path)?)),
        })
    }

    /// The registry in force now.
    pub fn current(&self) -> Arc<Registry> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn strict(&self) -> bool {
        self.strict
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Reads the file again and puts it in force; on an error the previous registry stays and
    /// the error (with `file:line:col`) is returned and logged.
    pub fn reload(&self) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        match Registry::load(path) {
            Ok(registry) => {
                tracing::info!(
                    file = %path.display(),
                    suppliers = registry.suppliers().len(),
                    open = registry.is_open(),
                    "supplier registry loaded"
                );
                let registry = Arc::new(registry);
                match self.current.write() {
                    Ok(mut current) => *current = registry,
                    Err(poisoned) => *poisoned.into_inner() = registry,
                }
                Ok(())
            }
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "supplier registry refused; the previous registry stays in force"
                );
                Err(error)
            }
        }
    }
}

/// Where `[[supplier.system]]` number `system` of supplier number `supplier` names its id.
fn system_position(
    text: &str,
    supplier: usize,
    system: usize,
) -> Option<crate::position::Position> {
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        supplier: Vec<SupplierSpans>,
    }
    #[derive(Deserialize)]
    struct SupplierSpans {
        #[serde(default)]
        system: Vec<SystemSpans>,
    }
    #[derive(Deserialize)]
    struct SystemSpans {
        id: toml::Spanned<toml::Value>,
    }
    let file: File = toml::from_str(text).ok()?;
    let span = file.supplier.get(supplier)?.system.get(system)?.id.span();
    Some(crate::position::Position::of_offset(text, span.start))
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

fn validate(supplier: &Supplier) -> anyhow::Result<()> {
    if supplier.name.trim().is_empty() {
        anyhow::bail!("a supplier needs a name");
    }
    if supplier.cvr.len() != 8 || !supplier.cvr.bytes().all(|b| b.is_ascii_digit()) {
        anyhow::bail!("CVR '{}' is not 8 digits", supplier.cvr);
    }
    Ok(())
}

/// One identity check that did not pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Which check: `supplier_cvr`, `identity` (UserIdentifier vs the certificate),
    /// `organisation_code`, `active_organisation_code`, `active_organisation_header`,
    /// `request_user_metadata_header` (the admin dashboard names the last three).
    pub check: String,
    pub expected: String,
    pub found: String,
    pub message: String,
    /// The DFDG code strict mode answers with.
    pub code: i64,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The checks a systemforvalter makes on one call: the certificate belongs to the supplier's
/// CVR, the headers name the caller as the certificate does, the organisation is plausible, and
/// STAR's two headers are present.
pub fn identity_findings(
    identity: &CallerIdentity,
    supplier: Option<&Supplier>,
    headers: &StarHeaders,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if let Some(supplier) = supplier {
        let certificate_cvr = identity.cvr.as_deref().unwrap_or("(none)");
        if certificate_cvr != supplier.cvr {
            findings.push(Finding {
                check: "supplier_cvr".into(),
                expected: supplier.cvr.clone(),
                found: certificate_cvr.to_owned(),
                message: format!(
                    "the certificate's CVR {certificate_cvr} is not the CVR {} registered for {}",
                    supplier.cvr, supplier.name
                ),
                code: CODE_LOGON_FAILED,
            });
        }
    }
    match &headers.active_organisation {
        None => findings.push(Finding {
            check: "active_organisation_header".into(),
            expected: "ActiveOrganisationHeader".into(),
            found: "(missing)".into(),
            message: "the ActiveOrganisationHeader is missing".into(),
            code: CODE_MISSING_ACTIVE_ORGANISATION,
        }),
        Some(organisation) => {
            let code = organisation.organisation_code.as_deref().unwrap_or("");
            if code.is_empty() || code.len() > 20 {
                findings.push(Finding {
                    check: "active_organisation_code".into(),
                    expected: "OrganisationCode of 1 to 20 characters".into(),
                    found: code.to_owned(),
                    message: format!("ActiveOrganisationHeader/OrganisationCode '{code}' is not 1 to 20 characters"),
                    code: 8234,
                });
            }
        }
    }
    match &headers.request_user {
        None => findings.push(Finding {
            check: "request_user_metadata_header".into(),
            expected: "RequestUserMetadataHeader".into(),
            found: "(missing)".into(),
            message: "the RequestUserMetadataHeader is missing".into(),
            code: CODE_MISSING_REQUEST_USER,
        }),
        Some(user) => {
            // A system call (user type 3) names the certificate as its user.
            let system_call = user.user_type.as_deref().is_none_or(|t| t == "3");
            let found = user.user_identifier.as_deref().unwrap_or("(missing)");
            if system_call && !found.eq_ignore_ascii_case(&identity.caller_id) {
                findings.push(Finding {
                    check: "identity".into(),
                    expected: identity.caller_id.clone(),
                    found: found.to_owned(),
                    message: format!(
                        "RequestUserMetadataHeader/UserIdentifier '{found}' differs from the certificate's caller id {}",
                        identity.caller_id
                    ),
                    code: CODE_LOGON_FAILED,
                });
            }
            let code = user.organisation_code.as_deref().unwrap_or("(missing)");
            let plausible = code == "-1"
                || (!code.is_empty()
                    && code.len() <= 8
                    && code.bytes().all(|b| b.is_ascii_digit()));
            if !plausible {
                findings.push(Finding {
                    check: "organisation_code".into(),
                    expected: "-1 or 1 to 8 digits".into(),
                    found: code.to_owned(),
                    message: format!(
                        "RequestOrganisationStructure/OrganisationCode '{code}' is not -1 or 1 to 8 digits"
                    ),
                    code: 8173,
                });
            }
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{CertificateAuthority, CertificateShape, ClientSpec};
    use crate::soap::{ActiveOrganisation, RequestUserMetadata};

    fn identity(cvr: &str) -> CallerIdentity {
        let ca = CertificateAuthority::generate("Test CA").unwrap();
        let issued = ca
            .issue_client(&ClientSpec {
                name: "Fagsystem".into(),
                organisation: "Org".into(),
                cvr: cvr.into(),
                shape: CertificateShape::Oces3 {
                    uuid: uuid::Uuid::new_v4(),
                },
                valid_days: 10,
            })
            .unwrap();
        CallerIdentity::from_der(&issued.cert_der).unwrap()
    }

    fn supplier(identity: &CallerIdentity, category: Category) -> Supplier {
        Supplier {
            name: "Testleverandør ApS".into(),
            cvr: "91234567".into(),
            category,
            identities: vec![identity.caller_id.clone()],
            services: vec![
                "PersonStatusService".into(),
                "JobcenterMessageService".into(),
            ],
            revoked: Vec::new(),
            systems: Vec::new(),
        }
    }

    #[test]
    fn open_mode_allows_everything() {
        let caller = identity("91234567");
        assert_eq!(
            Registry::open().authorize(&caller, Some("X"), Access::Write),
            Decision::Open
        );
    }

    #[test]
    fn each_refusal_has_its_dfdg_code() {
        let caller = identity("91234567");
        let stranger = identity("98765432");
        let small = Registry::of(vec![supplier(&caller, Category::Small)]);
        let code = |d: Decision| match d {
            Decision::Refused { code, .. } => code,
            other => panic!("not refused: {other:?}"),
        };
        assert_eq!(
            code(small.authorize(&stranger, Some("PersonStatusService"), Access::Read)),
            1012
        );
        assert_eq!(
            code(small.authorize(&caller, Some("CodeListService"), Access::Read)),
            1013
        );
        assert_eq!(code(small.authorize(&caller, None, Access::Read)), 1013);
        assert_eq!(
            code(small.authorize(&caller, Some("JobcenterMessageService"), Access::Write)),
            4575
        );
        assert_eq!(
            small.authorize(&caller, Some("personstatusservice"), Access::Read),
            Decision::Allowed {
                supplier: "Testleverandør ApS".into()
            }
        );
        let large = Registry::of(vec![supplier(&caller, Category::Large)]);
        assert!(matches!(
            large.authorize(&caller, Some("JobcenterMessageService"), Access::Write),
            Decision::Allowed { .. }
        ));
    }

    #[test]
    fn a_revoked_certificate_is_refused_with_the_reason() {
        let caller = identity("91234567");
        let mut registry = Registry::of(vec![supplier(&caller, Category::Large)]);
        registry
            .revoke("Testleverandør ApS", &caller.caller_id)
            .unwrap();
        match registry.authorize(&caller, Some("PersonStatusService"), Access::Read) {
            Decision::Refused {
                code: 1012,
                reason,
                supplier,
            } => {
                assert!(reason.contains("revoked"), "{reason}");
                assert_eq!(supplier.as_deref(), Some("Testleverandør ApS"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn identities_match_by_caller_id_or_fingerprint() {
        let caller = identity("91234567");
        let mut by_fingerprint = supplier(&caller, Category::Small);
        by_fingerprint.identities = vec![format!("SHA256:{}", caller.fingerprint.to_uppercase())];
        assert!(Registry::of(vec![by_fingerprint]).find(&caller).is_some());
    }

    #[test]
    fn the_first_supplier_naming_a_certificate_is_found_and_edits_keep_the_index() {
        let (first, second, stranger) = (
            identity("91234567"),
            identity("92345678"),
            identity("93456789"),
        );
        let named = |name: &str, identities: Vec<String>| Supplier {
            name: name.into(),
            identities,
            ..supplier(&first, Category::Large)
        };
        let mut registry = Registry::of(vec![
            named("A", vec![second.caller_id.to_uppercase()]),
            named("B", vec![first.caller_id.clone(), second.caller_id.clone()]),
            named(
                "C",
                vec![format!("SHA256:{}", first.fingerprint.to_uppercase())],
            ),
        ]);
        let found = |registry: &Registry, identity: &CallerIdentity| {
            registry.find(identity).map(|s| s.name.clone())
        };
        // By caller id or by fingerprint, case aside: the first in the file that names it.
        assert_eq!(found(&registry, &first).as_deref(), Some("B"));
        assert_eq!(found(&registry, &second).as_deref(), Some("A"));
        assert_eq!(found(&registry, &stranger), None);
        registry.revoke("B", &first.caller_id).unwrap();
        assert_eq!(
            found(&registry, &first).as_deref(),
            Some("B"),
            "revoked, still B's"
        );
        assert!(registry.remove("B"));
        assert_eq!(
            found(&registry, &first).as_deref(),
            Some("C"),
            "by fingerprint"
        );
        registry
            .upsert(named("A", vec![stranger.caller_id.clone()]))
            .unwrap();
        assert_eq!(found(&registry, &stranger).as_deref(), Some("A"));
        assert_eq!(found(&registry, &second), None, "A no longer names it");
    }

    #[test]
    fn findings_compare_headers_with_the_certificate() {
        let caller = identity("91234567");
        let registered = supplier(&caller, Category::Small);
        let good = StarHeaders {
            active_organisation: Some(ActiveOrganisation {
                organisation_type: Some("8".into()),
                organisation_code: Some("101".into()),
            }),
            request_user: Some(RequestUserMetadata {
                user_type: Some("3".into()),
                user_identifier: Some(caller.caller_id.clone()),
                organisation_code: Some("101".into()),
                ..RequestUserMetadata::default()
            }),
        };
        assert_eq!(identity_findings(&caller, Some(&registered), &good), vec![]);

        let mut wrong = good.clone();
        if let Some(user) = &mut wrong.request_user {
            user.user_identifier = Some("CVR:91234567-UUID:someone-else".into());
            user.organisation_code = Some("ABC".into());
        }
        let findings = identity_findings(&caller, Some(&registered), &wrong);
        let checks: Vec<&str> = findings.iter().map(|f| f.check.as_str()).collect();
        assert_eq!(checks, ["identity", "organisation_code"]);
        assert_eq!(findings[0].expected, caller.caller_id);

        let missing = identity_findings(&caller, None, &StarHeaders::default());
        let codes: Vec<i64> = missing.iter().map(|f| f.code).collect();
        assert_eq!(codes, [8232, 8233]);

        let other = identity("98765432");
        let findings = identity_findings(&other, Some(&registered), &good);
        assert_eq!(findings[0].check, "supplier_cvr");
    }

    #[test]
    fn registry_files_round_trip_and_errors_name_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suppliers.toml");
        assert!(Registry::load(&path).unwrap().is_open());
        let caller = identity("91234567");
        let mut registry = Registry::default();
        registry
            .upsert(supplier(&caller, Category::Medium))
            .unwrap();
        registry.save(&path).unwrap();
        let loaded = Registry::load(&path).unwrap();
        assert_eq!(loaded, registry);
        assert!(registry.remove("testleverandør aps"));
        assert!(registry.suppliers().is_empty());

        let error = Registry::parse(
            Path::new("s.toml"),
            "[[supplier]]\nname = \"A\"\ncvr = \"91234567\"\ncategory = \"huge\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.starts_with("s.toml:4:12: "), "{error}");
        let error = Registry::parse(
            Path::new("s.toml"),
            "[[supplier]]\nname = \"A\"\ncvr = \"1\"\ncategory = \"small\"\n",
        )
        .unwrap_err();
        assert!(format!("{error:#}").contains("not 8 digits"), "{error:#}");
    }

    const SYSTEMS: &str = r#"[[supplier]]
name = "A"
cvr = "91234567"
category = "large"

[[supplier.system]]
id = "0b6e2d8e-4c1a-4f3e-9a57-2d7c9e1f0a11"
name = "Fagsystem"
base_url = "https://webhook.a.test:8443/star/"
authorities = ["8/101", "1/42"]

[[supplier]]
name = "B"
cvr = "92345678"
category = "medium"

[[supplier.system]]
id = "7d1c3b2a-0f9e-4d8c-8b7a-6e5f4d3c2b1a"
base_url = "https://127.0.0.1:9443"
"#;

    #[test]
    fn systems_are_read_with_their_base_urls_and_authorities_and_saved_back() {
        let registry = Registry::parse(Path::new("s.toml"), SYSTEMS).unwrap();
        let systems: Vec<(&str, String, String)> = registry
            .systems()
            .map(|(supplier, system)| {
                (
                    supplier.name.as_str(),
                    system.base_url.to_string(),
                    system
                        .authorities
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                )
            })
            .collect();
        assert_eq!(
            systems,
            [
                (
                    "A",
                    "https://webhook.a.test:8443/star".to_owned(),
                    "8/101,1/42".to_owned()
                ),
                ("B", "https://127.0.0.1:9443".to_owned(), String::new()),
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("suppliers.toml");
        registry.save(&path).unwrap();
        let saved = std::fs::read_to_string(&path).unwrap();
        assert!(saved.contains("[[supplier.system]]"), "{saved}");
        assert_eq!(Registry::load(&path).unwrap(), registry);

        // Replacing a supplier keeps its systems.
        let mut replaced = registry.clone();
        let mut a = replaced.suppliers()[0].clone();
        a.systems.clear();
        a.services = vec!["PersonStatusService".into()];
        replaced.upsert(a).unwrap();
        assert_eq!(
            replaced.suppliers()[0].systems,
            registry.suppliers()[0].systems
        );
    }

    #[test]
    fn bad_systems_are_refused_at_their_line() {
        let error = |text: &str| {
            Registry::parse(Path::new("s.toml"), text)
                .unwrap_err()
                .to_string()
        };
        let message = error(&SYSTEMS.replace("https://webhook.a.test", "http://webhook.a.test"));
        assert!(message.starts_with("s.toml:9:12: "), "{message}");
        assert!(message.contains("must start with https://"), "{message}");
        let message = error(&SYSTEMS.replace("\"8/101\"", "\"jobcenter\""));
        assert!(message.starts_with("s.toml:10:"), "{message}");
        assert!(message.contains("orgType/orgCode"), "{message}");
        let message = error(&SYSTEMS.replace("0b6e2d8e-4c1a", "0b6e2d8e-4c1"));
        assert!(message.starts_with("s.toml:7:6: "), "{message}");
        let message = error(&SYSTEMS.replace(
            "7d1c3b2a-0f9e-4d8c-8b7a-6e5f4d3c2b1a",
            "0b6e2d8e-4c1a-4f3e-9a57-2d7c9e1f0a11",
        ));
        assert!(message.starts_with("s.toml:18:6: "), "{message}");
        assert!(
            message.contains("already registered for supplier 'A'"),
            "{message}"
        );
        let message = error(&SYSTEMS.replace(
            "base_url = \"https://127.0.0.1:9443\"",
            "base_url = \"https://127.0.0.1:9443\"\nurl = 1",
        ));
        assert!(message.starts_with("s.toml:20:1: "), "{message}");
    }
}
