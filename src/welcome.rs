//! Welcome packs ("velkomstpakke"): what STAR's systemforvalter hands a new supplier, in one
//! folder. `dfdg-mock welcome-pack` issues the supplier's OCES3 client certificate from the test
//! CA, registers the supplier, and writes the CA certificate, the client certificate, key and
//! two PKCS#12 files (for Java, for .NET/Mono), the endpoint list, the WSDLs of the allowed services (imports resolving inside the
//! pack, addresses pointing at the mock), one schema-valid example request per allowed operation
//! with the STAR headers filled in for the supplier's certificate, ready-to-run commands and a
//! README in Danish and English that walks through the three steps of the onboarding test.
//! For WSB (STAR pushing to the supplier's webhook) it adds STAR's sending certificate
//! (`star.crt`, with `ca.crt` all a webhook needs to trust it), its thumbprints and an example
//! receiver (`webhook_receiver.py`).
//!
//! The PKCS#12 password is returned to the caller (who prints it once) and never written into
//! the pack; nothing here prints or logs the key.

use std::fmt::{self, Write as _};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use time::OffsetDateTime;

use crate::identity::CallerIdentity;
use crate::pki::{self, CertificateShape, ClientPaths, ClientSpec, PkiError, PkiPaths};
use crate::soap::SoapVersion;
use crate::supplier::{Category, Registry, Supplier};
use crate::wsdl::sample::Overrides;
use crate::wsdl::{serve, Access, Catalog, Endpoint};

/// How long a welcome pack's client certificate is valid.
pub const CLIENT_VALID_DAYS: i64 = 365;
/// The mock's address written into a pack when none is given.
pub const DEFAULT_URL: &str = "https://localhost:8443";
/// The example script's name in the pack.
pub const SCRIPT: &str = "run-example.sh";
/// The example WSB webhook receiver's name in the pack (also shown in the project's README).
pub const RECEIVER: &str = "webhook_receiver.py";
/// The example WSB webhook receiver: Python's standard library only.
pub const RECEIVER_SOURCE: &str = include_str!("../wsb/webhook_receiver.py");

/// The name of the pack's PKCS#12 file of `kind`: `client-java.p12`, `client-dotnet.p12`.
pub fn pack_pkcs12(kind: pki::Pkcs12Kind) -> String {
    format!("client-{}.p12", kind.opened_by())
}

/// What to put in a pack: the validated form of `welcome-pack`'s flags.
#[derive(Debug, Clone)]
pub struct PackSpec {
    /// The supplier's name, as registered (e.g. "Testleverandør ApS").
    pub supplier: String,
    /// CVR number, 8 digits.
    pub cvr: String,
    pub category: Category,
    /// Service names as the user typed them; matched against the catalog.
    pub services: Vec<String>,
    /// The pack's folder.
    pub out: PathBuf,
    /// Also write `<out>.zip`.
    pub zip: bool,
    /// The mock's base address written into WSDLs, commands and README.
    pub url: BaseUrl,
    /// The test PKI (created when absent).
    pub certs: PkiPaths,
    /// The supplier registry file.
    pub registry: PathBuf,
    /// Overwrite an existing pack, zip and certificate.
    pub force: bool,
}

/// An `https://host[:port]` base address without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    url: String,
    /// `host:port` for `openssl s_client -connect`.
    connect: String,
    /// The host name for SNI, when it is not an IP address.
    server_name: Option<String>,
}

impl BaseUrl {
    /// Parses `https://host[:port][/]`; anything else is refused with what to write instead.
    pub fn parse(text: &str) -> anyhow::Result<BaseUrl> {
        let trimmed = text.trim().trim_end_matches('/');
        let Some(authority) = trimmed.strip_prefix("https://") else {
            bail!("--url '{text}' must start with https:// (the mock speaks mutual TLS only)");
        };
        let unsafe_char = |c: char| {
            c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\'' | '$' | '`' | '\\' | '@')
        };
        if authority.is_empty() || authority.contains(unsafe_char) {
            bail!("--url '{text}' must be https://HOST[:PORT], without a path, e.g. {DEFAULT_URL}");
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port))
                if !port.is_empty()
                    && port.bytes().all(|b| b.is_ascii_digit())
                    && (!host.contains(':') || host.ends_with(']')) =>
            {
                (host, port)
            }
            _ => (authority, "443"),
        };
        if host.is_empty() || port.parse::<u16>().is_err() {
            bail!("--url '{text}' must be https://HOST[:PORT], e.g. {DEFAULT_URL}");
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = bare
            .parse::<std::net::IpAddr>()
            .is_err()
            .then(|| bare.to_owned());
        Ok(BaseUrl {
            url: format!("https://{authority}"),
            connect: format!("{host}:{port}"),
            server_name,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// One example call in a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub service: String,
    pub operation: String,
    pub access: Access,
    pub version: SoapVersion,
    /// SOAPAction (1.1) or the `action` parameter (1.2), when the binding declares one.
    pub action: Option<String>,
    /// The endpoint's path, e.g. `/PersonStatusService/20/PersonStatusService.svc`.
    pub path: String,
    /// The request file inside the pack, e.g. `requests/PersonStatusService-GetVariablePersonStatus.xml`.
    pub file: String,
    /// The request envelope.
    pub request: String,
}

/// What [`build`] made.
pub struct Pack {
    /// The pack's folder.
    pub dir: PathBuf,
    /// `<dir>.zip`, when asked for.
    pub zip: Option<PathBuf>,
    /// The identity the mock sees for the pack's certificate.
    pub identity: CallerIdentity,
    /// The certificate's files in the certs folder.
    pub certificate: ClientPaths,
    /// True if the test PKI was created now.
    pub created_pki: bool,
    /// The services registered, spelled as the catalog spells them.
    pub services: Vec<String>,
    /// What changed in the supplier's earlier registration, if it had one.
    pub registry_changes: Vec<String>,
    /// True if there was no registry file before: the mock was open, and is no longer.
    pub closed_open_mode: bool,
    /// Every file in the pack, relative to `dir`, `/`-separated, in the order written.
    pub files: Vec<String>,
    /// One per allowed operation; the first is what `run-example.sh` sends without arguments.
    pub examples: Vec<Example>,
    /// The PKCS#12 password: shown once by the caller, never written into the pack.
    p12_password: String,
}

impl Pack {
    /// The password of the PKCS#12 file (print it once; it is in no file).
    pub fn p12_password(&self) -> &str {
        &self.p12_password
    }
}

impl fmt::Debug for Pack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pack")
            .field("dir", &self.dir)
            .field("zip", &self.zip)
            .field("caller_id", &self.identity.caller_id)
            .field("files", &self.files)
            .field("p12_password", &"(hidden)")
            .finish_non_exhaustive()
    }
}

/// Builds the welcome pack `spec` describes, from the services of `catalog`. Everything is
/// checked (names, folders, registry) before the certificate is issued or a file is written.
pub fn build(spec: &PackSpec, catalog: &Catalog, now: OffsetDateTime) -> anyhow::Result<Pack> {
    let name = spec.supplier.trim();
    if name.is_empty() {
        bail!("--supplier needs a name, e.g. \"Testleverandør ApS\"");
    }
    if spec.cvr.len() != 8 || !spec.cvr.bytes().all(|b| b.is_ascii_digit()) {
        bail!(
            "--cvr '{}' is not 8 digits (fictitious test organisations use CVR numbers starting with 9)",
            spec.cvr
        );
    }
    let services = resolve_services(&spec.services, catalog)?;
    let planned = plan(&services, catalog, spec.category);
    if !planned.iter().any(|p| p.allowed) {
        bail!(
            "a {} supplier may only read, and {} offer{} no read operation: choose a read service or --category medium",
            spec.category.as_str(),
            services.join(", "),
            if services.len() == 1 { "s" } else { "" }
        );
    }
    let dir = &spec.out;
    let Some(dir_name) = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "." && n != "..")
    else {
        bail!(
            "--out '{}' must name the pack's own folder, e.g. packs/{}",
            dir.display(),
            stem_for(name, &spec.cvr)
        );
    };
    let is_pack = dir.join("endpoints.md").is_file();
    let occupied = fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied && !spec.force {
        bail!(
            "{} exists and is not empty; choose another --out, or use --force to overwrite the pack",
            dir.display()
        );
    }
    if occupied && !is_pack {
        bail!(
            "{} is not empty and holds no welcome pack (no endpoints.md); --force only overwrites a pack",
            dir.display()
        );
    }
    let zip_path = spec
        .zip
        .then(|| dir.with_file_name(format!("{dir_name}.zip")));
    if let Some(zip_path) = &zip_path {
        if zip_path.exists() && !spec.force {
            bail!("{} exists; use --force to overwrite it", zip_path.display());
        }
    }
    let mut registry = Registry::load(&spec.registry)?;
    let was_open = registry.is_open();
    let existing = registry
        .suppliers()
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(name))
        .cloned();
    // A supplier of this name with another CVR: its certificates are not this one's.
    let existing = match existing {
        Some(other) if other.cvr != spec.cvr && !spec.force => bail!(
            "{} is registered in {} with CVR {}, not {}; use --force to replace it (its certificates are dropped)",
            other.name,
            spec.registry.display(),
            other.cvr,
            spec.cvr
        ),
        Some(other) if other.cvr != spec.cvr => None,
        kept => kept,
    };

    // The certificate: the PKI first, as `serve` makes it on first start.
    let certs = &spec.certs;
    let created_pki = !certs.ca_cert().exists() && !certs.ca_key().exists();
    if created_pki {
        pki::ensure_demo(certs, &[])
            .with_context(|| format!("cannot create the test PKI in {}", certs.dir.display()))?;
    }
    // STAR's sending certificate, as `serve` makes it: the webhook trusts exactly this one.
    let star = pki::ensure_star(certs).with_context(|| {
        format!(
            "cannot make STAR's sending certificate in {}",
            certs.dir.display()
        )
    })?;
    let stem = stem_for(name, &spec.cvr);
    let password = pki::random_password();
    let client_spec = ClientSpec {
        name: cut(name, 64),
        organisation: cut(name, 64),
        cvr: spec.cvr.clone(),
        shape: CertificateShape::Oces3 {
            uuid: uuid::Uuid::new_v4(),
        },
        valid_days: CLIENT_VALID_DAYS,
    };
    let issued = match pki::issue_client_files(certs, &stem, &client_spec, &password, spec.force)
    {
        Ok(issued) => issued,
        Err(PkiError::Exists(path)) => bail!(
            "{} exists: {name} already has a certificate; use --force to issue a new one (the old one stays registered)",
            path.display()
        ),
        Err(error) => return Err(error.into()),
    };
    let identity = issued.identity;

    // The registry: the supplier with this certificate (earlier certificates stay its own).
    let (mut identities, revoked) = existing
        .as_ref()
        .map(|s| (s.identities.clone(), s.revoked.clone()))
        .unwrap_or_default();
    if !identities
        .iter()
        .any(|i| i.eq_ignore_ascii_case(&identity.caller_id))
    {
        identities.push(identity.caller_id.clone());
    }
    let registered = Supplier {
        name: name.to_owned(),
        cvr: spec.cvr.clone(),
        category: spec.category,
        identities,
        services: services.clone(),
        revoked,
        systems: Vec::new(),
    };
    let registry_changes = existing.map_or_else(Vec::new, |old| old.changes(&registered));
    registry.upsert(registered)?;
    registry.save(&spec.registry)?;

    // The pack.
    let caller = StarCaller {
        caller_id: identity.caller_id.clone(),
        system_name: identity
            .common_name
            .clone()
            .unwrap_or_else(|| name.to_owned()),
        cvr: spec.cvr.clone(),
    };
    let examples = examples(&planned, catalog, &caller, now);
    if examples.is_empty() {
        bail!(
            "the catalog could not route any allowed operation of {}",
            services.join(", ")
        );
    }
    if is_pack && spec.force {
        for stale in ["requests", "wsdl", "wsdl-tools"] {
            let path = dir.join(stale);
            if path.is_dir() {
                fs::remove_dir_all(&path)
                    .with_context(|| format!("cannot remove the old {}", path.display()))?;
            }
        }
    }
    let mut writer = PackWriter {
        dir: dir.clone(),
        files: Vec::new(),
    };
    writer.copy("ca.crt", &certs.ca_cert(), Mode::Public)?;
    writer.copy("client.crt", &issued.paths.cert, Mode::Public)?;
    writer.copy("client.key", &issued.paths.key, Mode::Secret)?;
    writer.copy("star.crt", &star.cert, Mode::Public)?;
    writer.write(
        "star-thumbprint.txt",
        format!(
            "SHA-256 {}\nSHA-1   {}\n",
            star.thumbprints.sha256.with_colons(),
            star.thumbprints.sha1.hex()
        )
        .as_bytes(),
        Mode::Public,
    )?;
    writer.write(RECEIVER, RECEIVER_SOURCE.as_bytes(), Mode::Executable)?;
    for (kind, path) in &issued.paths.pkcs12_files {
        writer.copy(&pack_pkcs12(*kind), path, Mode::Secret)?;
    }
    let context = Texts {
        name,
        spec,
        catalog,
        identity: &identity,
        star: &star,
        services: &services,
        planned: &planned,
        examples: &examples,
    };
    writer.write("README.md", readme(&context).as_bytes(), Mode::Public)?;
    writer.write("endpoints.md", endpoints(&context).as_bytes(), Mode::Public)?;
    writer.write("commands.md", commands(&context).as_bytes(), Mode::Public)?;
    writer.write(SCRIPT, script(&context).as_bytes(), Mode::Executable)?;
    for example in &examples {
        writer.write(&example.file, example.request.as_bytes(), Mode::Public)?;
    }
    let mut written_wsdls = Vec::new();
    for service in &services {
        for endpoint in catalog.endpoints.iter().filter(|e| &e.service == service) {
            if written_wsdls.contains(&endpoint.wsdl) {
                continue;
            }
            written_wsdls.push(endpoint.wsdl);
            // As published, and in the form strict tools (wsimport, svcutil, suds) need.
            for (folder, form) in [
                ("wsdl", serve::Form::Published),
                ("wsdl-tools", serve::Form::Tools),
            ] {
                for (path, text) in serve::files(catalog, endpoint, spec.url.as_str(), form) {
                    let path = format!("{folder}/{}/{path}", file_safe(service));
                    writer.write(&path, text.as_bytes(), Mode::Public)?;
                }
            }
        }
    }
    let files = writer.files;
    if let Some(zip_path) = &zip_path {
        write_zip(zip_path, dir, &dir_name, &files, now)?;
    }
    Ok(Pack {
        dir: dir.clone(),
        zip: zip_path,
        identity,
        certificate: issued.paths,
        created_pki,
        services,
        registry_changes,
        closed_open_mode: was_open,
        files,
        examples,
        p12_password: password,
    })
}

/// The catalog's spelling of each requested service (at least one).
fn resolve_services(requested: &[String], catalog: &Catalog) -> anyhow::Result<Vec<String>> {
    let services = crate::supplier::resolve_services(requested, catalog)?;
    if services.is_empty() {
        let known: Vec<&str> = catalog
            .endpoints
            .iter()
            .map(|e| e.service.as_str())
            .collect();
        bail!(
            "--services names none; the catalog serves: {}",
            known.join(", ")
        );
    }
    Ok(services)
}

/// One operation of an allowed service, and whether the supplier's category may call it (and
/// the catalog routes it: an operation whose action and element another one shadows is left out).
#[derive(Debug, Clone)]
struct Planned {
    endpoint: usize,
    port: usize,
    operation: usize,
    allowed: bool,
}

fn plan(services: &[String], catalog: &Catalog, category: Category) -> Vec<Planned> {
    let mut planned = Vec::new();
    for service in services {
        for (e, endpoint) in catalog.endpoints.iter().enumerate() {
            if &endpoint.service != service {
                continue;
            }
            for (p, port) in endpoint.ports.iter().enumerate() {
                for (o, operation) in port.operations.iter().enumerate() {
                    // One example per operation: a second port (SOAP 1.2 beside 1.1) repeats it.
                    let seen = planned.iter().any(|q: &Planned| {
                        q.endpoint == e
                            && endpoint.ports[q.port].operations[q.operation].name == operation.name
                    });
                    if seen {
                        continue;
                    }
                    let routable = catalog
                        .route(
                            &endpoint.path,
                            port.version,
                            operation.action.as_deref(),
                            &operation.input_name,
                        )
                        .is_ok();
                    planned.push(Planned {
                        endpoint: e,
                        port: p,
                        operation: o,
                        allowed: routable
                            && (operation.access == Access::Read || category.may_write()),
                    });
                }
            }
        }
    }
    planned
}

/// The STAR header values of a system call made with the pack's certificate.
struct StarCaller {
    caller_id: String,
    system_name: String,
    cvr: String,
}

impl StarCaller {
    fn overrides(&self) -> Overrides {
        Overrides::system_caller(&self.caller_id, &self.system_name, Some(&self.cvr))
    }
}

fn examples(
    planned: &[Planned],
    catalog: &Catalog,
    caller: &StarCaller,
    now: OffsetDateTime,
) -> Vec<Example> {
    let overrides = caller.overrides();
    let mut examples = Vec::new();
    for item in planned.iter().filter(|p| p.allowed) {
        let endpoint = &catalog.endpoints[item.endpoint];
        let port = &endpoint.ports[item.port];
        let operation = &port.operations[item.operation];
        let Ok(route) = catalog.route(
            &endpoint.path,
            port.version,
            operation.action.as_deref(),
            &operation.input_name,
        ) else {
            continue;
        };
        examples.push(Example {
            service: endpoint.service.clone(),
            operation: operation.name.clone(),
            access: operation.access,
            version: port.version,
            action: operation.action.clone(),
            path: crate::encoding::percent_encode(&endpoint.path).into_owned(),
            file: format!(
                "requests/{}-{}.xml",
                file_safe(&endpoint.service),
                file_safe(&operation.name)
            ),
            request: indented(&route.example_request_with(now, &overrides)),
        });
    }
    examples
}

/// The generated envelope (one line) indented for reading, two spaces a level. Whitespace is
/// added only between elements of element-only content; an element with no content is written
/// `<a/>`, since whitespace inside an empty content type is invalid (libxml2 says so). Should
/// the text not parse, it is returned as it was.
fn indented(xml: &str) -> String {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut writer = quick_xml::Writer::new_with_indent(Vec::with_capacity(xml.len() * 2), b' ', 2);
    // A start tag is held back until the next event shows whether the element is empty.
    let mut pending = None;
    loop {
        let event = match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(event) => event,
            Err(_) => return xml.to_owned(),
        };
        let written = match (pending.take(), event) {
            (Some(start), Event::End(_)) => writer.write_event(Event::Empty(start)),
            (held, Event::Start(start)) => {
                if let Some(previous) = held {
                    if writer.write_event(Event::Start(previous)).is_err() {
                        return xml.to_owned();
                    }
                }
                pending = Some(start);
                Ok(())
            }
            (held, event) => {
                if let Some(previous) = held {
                    if writer.write_event(Event::Start(previous)).is_err() {
                        return xml.to_owned();
                    }
                }
                writer.write_event(event)
            }
        };
        if written.is_err() {
            return xml.to_owned();
        }
    }
    if pending.is_some() {
        return xml.to_owned();
    }
    match String::from_utf8(writer.into_inner()) {
        Ok(mut text) => {
            text.push('\n');
            text
        }
        Err(_) => xml.to_owned(),
    }
}

/// The certificate's file stem in the certs folder: the supplier's name in ASCII.
fn stem_for(name: &str, cvr: &str) -> String {
    let mut stem = String::new();
    for c in name.to_lowercase().chars() {
        match c {
            'æ' => stem.push_str("ae"),
            'ø' => stem.push_str("oe"),
            'å' => stem.push_str("aa"),
            c if c.is_ascii_alphanumeric() => stem.push(c),
            _ if !stem.ends_with('-') => stem.push('-'),
            _ => {}
        }
    }
    let stem: String = stem.trim_matches('-').chars().take(48).collect();
    let stem = stem.trim_end_matches('-');
    // Never the PKI's own files: the CA, the server, the demo client, STAR, the webhook.
    if ["", "ca", "server", "demo-client", "star", "webhook"].contains(&stem) {
        format!("supplier-{cvr}")
    } else {
        stem.to_owned()
    }
}

/// A name made safe for a file name.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_start_matches('.')
        .to_owned()
}

fn cut(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// `text` as one shell word in single quotes.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// How a pack file is written.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Public,
    Secret,
    Executable,
}

impl Mode {
    fn bits(self) -> u32 {
        match self {
            Mode::Public => 0o644,
            Mode::Secret => 0o600,
            Mode::Executable => 0o755,
        }
    }
}

struct PackWriter {
    dir: PathBuf,
    files: Vec<String>,
}

impl PackWriter {
    fn copy(&mut self, name: &str, from: &Path, mode: Mode) -> anyhow::Result<()> {
        let contents = fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
        self.write(name, &contents, mode)
    }

    /// Writes `contents` at `name` (relative, `/`-separated); the mode is set at creation so a
    /// key is never readable by others, and again on an overwritten file.
    fn write(&mut self, name: &str, contents: &[u8], mode: Mode) -> anyhow::Result<()> {
        use std::io::Write as _;
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(mode.bits());
        }
        let mut file = options
            .open(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(fs::Permissions::from_mode(mode.bits()))
                .with_context(|| format!("cannot set the mode of {}", path.display()))?;
        }
        file.write_all(contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
        if !self.files.iter().any(|f| f == name) {
            self.files.push(name.to_owned());
        }
        Ok(())
    }
}

/// Writes `files` (relative to `dir`) into a zip archive under the folder `prefix/`, keeping
/// their Unix modes (the key stays 0600, the script 0755).
fn write_zip(
    zip_path: &Path,
    dir: &Path,
    prefix: &str,
    files: &[String],
    now: OffsetDateTime,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    use zip::write::SimpleFileOptions;
    // Zip keeps local time without a zone; UTC it is. Out of zip's range (before 1980): its default.
    let modified = zip::DateTime::from_date_and_time(
        u16::try_from(now.year()).unwrap_or(1980),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
    )
    .unwrap_or_default();
    let file = fs::File::create(zip_path)
        .with_context(|| format!("cannot create {}", zip_path.display()))?;
    let mut zip = zip::ZipWriter::new(file);
    let context = || format!("cannot write {}", zip_path.display());
    for name in files {
        let path = dir.join(name);
        let contents =
            fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let mode = {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                fs::metadata(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?
                    .permissions()
                    .mode()
                    & 0o777
            }
            #[cfg(not(unix))]
            {
                0o644
            }
        };
        let options = SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(modified)
            .unix_permissions(mode);
        zip.start_file(format!("{prefix}/{name}"), options)
            .with_context(context)?;
        zip.write_all(&contents).with_context(context)?;
    }
    zip.finish().with_context(context)?;
    Ok(())
}

/// What the text files of a pack are made from.
struct Texts<'a> {
    name: &'a str,
    spec: &'a PackSpec,
    catalog: &'a Catalog,
    identity: &'a CallerIdentity,
    /// STAR's sending certificate, for the WSB section.
    star: &'a pki::StarFiles,
    services: &'a [String],
    planned: &'a [Planned],
    examples: &'a [Example],
}

/// The curl line that sends `example`, to `$URL` when set, else to `url`.
fn curl_line(example: &Example, url: &BaseUrl) -> String {
    let mut line = String::from(
        "curl --fail-with-body --silent --show-error --cacert ca.crt --cert client.crt --key client.key",
    );
    match example.version {
        SoapVersion::V11 => {
            line.push_str(" -H 'Content-Type: text/xml; charset=utf-8'");
            let action = example.action.as_deref().unwrap_or("");
            let _ = write!(
                line,
                " -H {}",
                shell_quote(&format!("SOAPAction: \"{action}\""))
            );
        }
        SoapVersion::V12 => {
            let mut content_type = String::from("application/soap+xml; charset=utf-8");
            if let Some(action) = &example.action {
                let _ = write!(content_type, "; action=\"{action}\"");
            }
            let _ = write!(
                line,
                " -H {}",
                shell_quote(&format!("Content-Type: {content_type}"))
            );
        }
    }
    let _ = write!(
        line,
        " --data-binary @{} \"${{URL:-{url}}}\"{}",
        example.file,
        shell_quote(&example.path)
    );
    line
}

fn s_client_line(url: &BaseUrl) -> String {
    let mut line = format!(
        "openssl s_client -connect {} -CAfile ca.crt -cert client.crt -key client.key -verify_return_error -brief",
        url.connect
    );
    match &url.server_name {
        Some(name) => {
            let _ = write!(line, " -servername {name} -verify_hostname {name}");
        }
        None => {
            let host = url.connect.rsplit_once(':').map_or("", |(host, _)| host);
            let _ = write!(
                line,
                " -verify_ip {}",
                host.trim_start_matches('[').trim_end_matches(']')
            );
        }
    }
    line.push_str(" </dev/null");
    line
}

fn category_text(category: Category) -> &'static str {
    match category {
        Category::Small => "lille / small: kun læsende operationer / read operations only",
        Category::Medium => "mellem / medium: læser og skriver / reads and writes",
        Category::Large => "stor / large: læser og skriver / reads and writes",
    }
}

fn readme(c: &Texts<'_>) -> String {
    let mut out = String::new();
    let first = &c.examples[0];
    let url = &c.spec.url;
    let _ = writeln!(
        out,
        "# Velkomstpakke: {name}\n\n*Welcome pack: {name}*\n\n\
         Denne pakke indeholder alt, hvad {name} skal bruge for at gennemføre STARs\n\
         integrationstest (onboarding) mod dfdg-mock, en offline efterligning af STARs DFDG- og\n\
         Jobnet-webservices.\n\n\
         *This pack holds everything {name} needs to run STAR's onboarding integration test\n\
         against dfdg-mock, an offline imitation of STAR's DFDG and Jobnet webservices.*\n",
        name = c.name
    );
    let _ = writeln!(out, "## Jeres oplysninger / Your details\n");
    let _ = writeln!(out, "| | |\n|---|---|");
    let _ = writeln!(out, "| Leverandør / Supplier | {} |", c.name);
    let _ = writeln!(out, "| CVR | {} |", c.spec.cvr);
    let _ = writeln!(
        out,
        "| Kategori / Category | {} |",
        category_text(c.spec.category)
    );
    let _ = writeln!(out, "| Tjenester / Services | {} |", c.services.join(", "));
    let _ = writeln!(
        out,
        "| Kalder-id / Caller id | `{}` |",
        c.identity.caller_id
    );
    let _ = writeln!(
        out,
        "| Certifikatets subject / Certificate subject | `{}` |",
        c.identity.subject
    );
    let _ = writeln!(out, "| Adresse / Address | {url} |\n");
    let _ = writeln!(
        out,
        "## Indhold / Contents\n\n\
         | fil / file | hvad / what |\n|---|---|\n\
         | `ca.crt` | test-CA'ens certifikat: stol på det / the test CA's certificate: trust it |\n\
         | `client.crt`, `client.key` | jeres OCES3-systemcertifikat og nøgle (PEM; nøglen er hemmelig) / your OCES3 system certificate and key (PEM; the key is secret) |\n\
         | `client-java.p12`, `client-dotnet.p12` | det samme som PKCS#12, til Java og til .NET (se nedenfor); adgangskoden blev vist én gang, da pakken blev lavet, og står ikke i pakken / the same as PKCS#12, for Java and for .NET (see below); its password was shown once when the pack was made and is not in the pack |\n\
         | `endpoints.md` | adresser og operationer (læs/skriv) / addresses and operations (read/write) |\n\
         | `wsdl/` | WSDL'er med importerede skemaer; adresserne peger på {url} / WSDLs with their imported schemas; addresses point at {url} |\n\
         | `wsdl-tools/` | de samme WSDL'er til wsimport, svcutil og suds: hvert skema erklærer sine navnerum og xs:imports / the same WSDLs for wsimport, svcutil and suds: every schema declares its namespaces and xs:imports |\n\
         | `requests/` | et gyldigt eksempel pr. operation med STAR-headerne udfyldt for jer / one valid example per operation, STAR headers filled in for you |\n\
         | `commands.md`, `{SCRIPT}` | kommandoer klar til brug / ready-to-run commands |\n\
         | `star.crt`, `star-thumbprint.txt` | STARs afsendercertifikat til WSB og dets thumbprints: jeres webhook stoler kun på det / STAR's sending certificate for WSB and its thumbprints: your webhook trusts only it |\n\
         | `{RECEIVER}` | en eksempel-webhook til WSB (Python, kun standardbiblioteket) / an example WSB webhook (Python, standard library only) |\n"
    );
    let _ = writeln!(
        out,
        "Hvert kald bærer to SOAP-headere. I `RequestUserMetadataHeader` er `UserIdentifier` jeres\n\
         kalder-id `{id}` (brugertype 3, System), og organisationen er jeres CVR {cvr}\n\
         (organisationstype 24, Virksomhed). `ActiveOrganisationHeader` angiver den organisation,\n\
         I kalder for (eksemplerne bruger jobcenter 101); sæt jeres kundes værdier dér.\n\n\
         *Every call carries two SOAP headers. In `RequestUserMetadataHeader`, `UserIdentifier` is\n\
         your caller id `{id}` (user type 3, System) and the organisation is your CVR {cvr}\n\
         (organisation type 24, Virksomhed). `ActiveOrganisationHeader` names the organisation you\n\
         call for (the examples use jobcenter 101); put your customer's values there.*\n",
        id = c.identity.caller_id,
        cvr = c.spec.cvr
    );
    let _ = writeln!(
        out,
        "## Trin 1: Foretag et kald / Step 1: make a call\n\n\
         Kør fra pakkens mappe (kræver curl) / Run from the pack's folder (needs curl):\n\n\
         ```bash\n./{SCRIPT}                      # {op} ({service})\n\
         URL={url} ./{SCRIPT} {op}\n```\n\n\
         Svaret er et SOAP-svar med HTTP 200. Det bærer DFDG's kvittering: `MessageIdentifier` i\n\
         svarets `ServiceReceipt` (et opslag uden `ServiceReceipt`: dets\n\
         `ServiceRequestLogReferenceIdentifier`). `{SCRIPT}` skriver kvitteringen og den\n\
         kommando, I skal køre i trin 3. Alle kommandoerne står i `commands.md`.\n\n\
         *The answer is a SOAP response with HTTP 200. It carries DFDG's receipt: the\n\
         `MessageIdentifier` in its `ServiceReceipt` (a lookup without a `ServiceReceipt`: its\n\
         `ServiceRequestLogReferenceIdentifier`). `{SCRIPT}` prints the receipt and the command\n\
         to run in step 3. Every command is in `commands.md`.*\n",
        op = first.operation,
        service = first.service,
    );
    let _ = writeln!(
        out,
        "## Trin 2: Systemforvalteren kontrollerer, hvem der kaldte / Step 2: the systemforvalter checks who called\n\n\
         Kaldet skal være modtaget med jeres certifikat, og `UserIdentifier` skal være lig med\n\
         certifikatets kalder-id `{id}`. Systemforvalteren ser det med:\n\n\
         *The call must have arrived with your certificate, and `UserIdentifier` must equal the\n\
         certificate's caller id `{id}`. The systemforvalter sees it with:*\n\n\
         ```bash\ndfdg-mock calls --caller '{id}'\n```\n",
        id = c.identity.caller_id
    );
    let _ = writeln!(
        out,
        "## Trin 3: Bekræft kvitteringen / Step 3: confirm the receipt\n\n\
         Bekræft, at I modtog kvitteringen fra trin 1 / Confirm that you received the receipt from step 1:\n\n\
         ```bash\ndfdg-mock confirm <MessageIdentifier> --supplier {name}\n```\n\n\
         Svarets `ServiceRequestLogReferenceIdentifier` virker også: det er samme kald. Kun jeres\n\
         egne kvitteringer kan bekræftes.\n\n\
         *The answer's `ServiceRequestLogReferenceIdentifier` works too: it names the same call.\n\
         Only your own receipts can be confirmed.*\n",
        name = shell_quote(c.name)
    );
    let _ = writeln!(
        out,
        "## Java og .NET\n\n\
         Begge PKCS#12-filer har certifikatet, nøglen og CA'en og åbnes med adgangskoden, I fik,\n\
         da pakken blev lavet. Stol på `ca.crt`. Giv WSDL'erne i `wsdl-tools/` til wsimport,\n\
         svcutil eller suds; zeep og node-soap tager også `wsdl/`.\n\n\
         *Both PKCS#12 files hold the certificate, the key and the CA and open with the password\n\
         you were given when the pack was made. Trust `ca.crt`. Give the WSDLs in `wsdl-tools/`\n\
         to wsimport, svcutil or suds; zeep and node-soap take `wsdl/` too.*\n\n\
         | platform | fil / file |\n|---|---|\n\
         | Java 8u301+, 11.0.12+, 17+ (keytool, `javax.net.ssl.keyStore`), OpenSSL 3, .NET 5+ på/on Linux og/and macOS | `client-java.p12` (AES-256, HMAC-SHA256) |\n\
         | .NET Framework, Windows' certifikatlager / certificate store, Mono, ældre/older Java | `client-dotnet.p12` (3DES, SHA-1 MAC) |\n\n\
         Mono og ældre Windows afviser `client-java.p12` (\"Unable to decode certificate\").\n\n\
         *Mono and older Windows refuse `client-java.p12` (\"Unable to decode certificate\").*"
    );
    let _ = writeln!(
        out,
        "\n## WSB: STAR kalder jer / STAR calls you\n\n\
         STAR sender beskeder (JSON, `POST`) til jeres webhook over mutual TLS og præsenterer\n\
         sit eget klientcertifikat, `star.crt` (udstedt af `ca.crt`). Jeres webhook skal kræve\n\
         et klientcertifikat og kun acceptere dette:\n\n\
         *STAR pushes messages (JSON, `POST`) to your webhook over mutual TLS, presenting its own\n\
         client certificate, `star.crt` (issued by `ca.crt`). Your webhook must require a client\n\
         certificate and accept only this one:*\n\n\
         | | |\n|---|---|\n\
         | Subject | `{subject}` |\n\
         | SHA-256 | `{sha256}` |\n\
         | SHA-1 (Windows' thumbprint) | `{sha1}` |\n\n\
         Et servercertifikat til webhooken fra test-CA'en (dfdg-mock stoler på den), og\n\
         eksempel-webhooken på port 9443 (fra mappen, hvor pakken blev lavet) /\n\
         *A server certificate for the webhook from the test CA (dfdg-mock trusts it), and the\n\
         example webhook on port 9443 (from the folder where the pack was made):*\n\n\
         ```bash\ndfdg-mock pki server --dir {certs} --name 127.0.0.1 --out webhook\n\
         cp {certs}/webhook.crt {certs}/webhook.key {pack}/\n\
         (cd {pack} && python3 {RECEIVER} --port 9443)\n```\n\n\
         Systemforvalteren registrerer jeres systems base-URL (`[[supplier.system]]` i\n\
         registret); I opretter abonnementer med `POST /AbonnementService/v1/SyncWebhookAbonnementer`\n\
         med jeres klientcertifikat. Svar 2xx på hver besked, også en gentaget (samme `beskedId`).\n\n\
         *The systemforvalter registers your system's base URL (`[[supplier.system]]` in the\n\
         registry); you subscribe with `POST /AbonnementService/v1/SyncWebhookAbonnementer` using\n\
         your client certificate. Answer 2xx to every message, a repeated one too (same `beskedId`).*\n\n\
         ```bash\ncurl --fail-with-body --cacert ca.crt --cert client.crt --key client.key \\\n  \
         -H 'content-type: application/json' \\\n  \
         -d '{{\"systemIdentifier\": \"<system-GUID>\", \"abonnementer\": [{{\"orgType\": 8, \"orgCode\": 101, \"entityType\": 30000, \"webhookUrl\": \"/webhook\"}}]}}' \\\n  \
         {url}/AbonnementService/v1/SyncWebhookAbonnementer\n```",
        url = c.spec.url,
        subject = c.star.identity.subject,
        sha256 = c.star.thumbprints.sha256.with_colons(),
        sha1 = c.star.thumbprints.sha1.hex(),
        certs = shell_quote(&c.spec.certs.dir.display().to_string()),
        pack = shell_quote(&c.spec.out.display().to_string()),
    );
    out
}

fn endpoints(c: &Texts<'_>) -> String {
    let mut out = format!(
        "# Adresser og operationer / Endpoints and operations: {}\n\n\
         Kategori / category: {}. Alle kald kræver jeres klientcertifikat (mutual TLS). /\n\
         Every call needs your client certificate (mutual TLS).\n",
        c.name,
        category_text(c.spec.category)
    );
    let mut current: Option<usize> = None;
    for item in c.planned {
        let endpoint: &Endpoint = &c.catalog.endpoints[item.endpoint];
        if current != Some(item.endpoint) {
            current = Some(item.endpoint);
            let url = &c.spec.url;
            let path = crate::encoding::percent_encode(&endpoint.path);
            let folder = file_safe(&endpoint.service);
            let versions: Vec<String> = endpoint
                .ports
                .iter()
                .map(|p| p.version.to_string())
                .collect();
            let _ = writeln!(
                out,
                "\n## {}\n\n- URL: {url}{path}\n- WSDL: {url}{path}?wsdl (i pakken / in the pack: `wsdl/{folder}/`); til wsimport, svcutil og suds / for wsimport, svcutil and suds: {url}{path}?wsdl&tools (`wsdl-tools/{folder}/`)\n- {}\n",
                endpoint.service,
                versions.join(", ")
            );
            let _ = writeln!(
                out,
                "| operation | læs/skriv / read/write | SOAPAction | eksempel / example |\n|---|---|---|---|"
            );
        }
        let port = &endpoint.ports[item.port];
        let operation = &port.operations[item.operation];
        let example = c
            .examples
            .iter()
            .find(|e| e.service == endpoint.service && e.operation == operation.name)
            .map_or_else(
                || {
                    format!(
                        "ikke tilladt for kategori {} (DFDG 4575) / not allowed for a {} supplier",
                        c.spec.category.as_str(),
                        c.spec.category.as_str()
                    )
                },
                |e| format!("`{}`", e.file),
            );
        let _ = writeln!(
            out,
            "| {} | {} | `{}` | {} |",
            operation.name,
            operation.access.label(),
            operation.action.as_deref().unwrap_or("(none)"),
            example
        );
    }
    out
}

fn commands(c: &Texts<'_>) -> String {
    let mut out = format!(
        "# Kommandoer / Commands: {}\n\n\
         Kør dem fra pakkens mappe. Sæt `URL` for at ramme en anden adresse end {url}. /\n\
         Run them from the pack's folder. Set `URL` to reach another address than {url}.\n\n\
         ```bash\nexport URL={url}\n```\n\n",
        c.name,
        url = c.spec.url
    );
    for example in c.examples {
        let _ = writeln!(
            out,
            "## {} — {} ({})\n\n```bash\n{}\n```\n",
            example.service,
            example.operation,
            example.access.label(),
            curl_line(example, &c.spec.url)
        );
    }
    let _ = writeln!(
        out,
        "## TLS alene / TLS only\n\n\
         Viser handshaket med jeres certifikat / shows the handshake with your certificate:\n\n\
         ```bash\n{}\n```",
        s_client_line(&c.spec.url)
    );
    out
}

fn script(c: &Texts<'_>) -> String {
    let first = &c.examples[0];
    let known: Vec<&str> = c.examples.iter().map(|e| e.operation.as_str()).collect();
    let mut out = format!(
        "#!/usr/bin/env bash\n\
         # Sends an example request of {name}'s welcome pack over mutual TLS, prints the answer,\n\
         # then (on stderr) the receipt it carries and the command that confirms it (step 3).\n\
         #   ./{SCRIPT}              sends {op}\n\
         #   ./{SCRIPT} OPERATION    sends another: {known}\n\
         #   URL=https://host:port ./{SCRIPT}   another address\n\
         set -euo pipefail\n\
         URL=\"${{URL:-{url}}}\"\n\
         cd \"$(dirname \"$0\")\"\n\
         send() {{\n\
         case \"$1\" in\n",
        name = c.name.replace('\n', " "),
        op = first.operation,
        known = known.join(", "),
        url = c.spec.url,
    );
    for example in c.examples {
        let _ = writeln!(
            out,
            "  {})\n    {} ;;",
            shell_quote(&example.operation),
            curl_line(example, &c.spec.url)
        );
    }
    let _ = writeln!(
        out,
        "  *)\n    echo \"unknown operation '$1'; known: {known}\" >&2\n    return 2 ;;\nesac\n}}\n\
         status=0\n\
         answer=\"$(send \"${{1:-{op}}}\")\" || status=$?\n\
         printf '%s\\n' \"$answer\"\n\
         if [ \"$status\" -ne 0 ]; then\n\
         \x20 [ \"$status\" -eq 2 ] || echo \"the call was not answered with HTTP 200 (curl exit $status); the answer above says why\" >&2\n\
         \x20 exit \"$status\"\n\
         fi\n\
         # DFDG's receipt: the MessageIdentifier of the ServiceReceipt, else the log reference.\n\
         id_of() {{ printf '%s' \"$answer\" | tr -d '\\r\\n' | sed -n \"s/.*<\\([[:alnum:]_.-]*:\\)\\{{0,1\\}}$1>[[:space:]]*\\([0-9A-Fa-f-]*\\).*/\\2/p\"; }}\n\
         receipt=\"$(id_of MessageIdentifier)\"\n\
         [ -n \"$receipt\" ] || receipt=\"$(id_of ServiceRequestLogReferenceIdentifier)\"\n\
         if [ -n \"$receipt\" ]; then\n\
         \x20 echo >&2\n\
         \x20 echo \"Kvittering / receipt: $receipt\" >&2\n\
         \x20 echo \"Trin 3 / step 3: dfdg-mock confirm $receipt --supplier {supplier}\" >&2\n\
         fi",
        known = known.join(", "),
        op = first.operation,
        supplier = shell_quote(c.name).replace('"', "\\\"").replace('$', "\\$").replace('`', "\\`"),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_https_host_and_port() {
        let url = BaseUrl::parse("https://localhost:8443/").unwrap();
        assert_eq!(url.as_str(), "https://localhost:8443");
        assert_eq!(url.connect, "localhost:8443");
        assert_eq!(url.server_name.as_deref(), Some("localhost"));
        let url = BaseUrl::parse("https://127.0.0.1:9").unwrap();
        assert_eq!(url.server_name, None);
        let url = BaseUrl::parse("https://mock.example").unwrap();
        assert_eq!(url.connect, "mock.example:443");
        let url = BaseUrl::parse("https://[::1]:8443").unwrap();
        assert_eq!(url.connect, "[::1]:8443");
        assert_eq!(url.server_name, None);
        for bad in [
            "http://localhost:8443",
            "https://",
            "https://host/path",
            "https://host:99999",
            "https://a b",
            "https://$(rm)",
        ] {
            assert!(BaseUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn stems_are_ascii_and_never_the_pki_own_files() {
        assert_eq!(
            stem_for("Testleverandør ApS", "91234567"),
            "testleverandoer-aps"
        );
        assert_eq!(stem_for("Æblegård & Co.", "91234567"), "aeblegaard-co");
        assert_eq!(stem_for("CA", "91234567"), "supplier-91234567");
        assert_eq!(stem_for("STAR", "91234567"), "supplier-91234567");
        assert_eq!(stem_for("Webhook", "91234567"), "supplier-91234567");
        assert_eq!(stem_for("!!!", "91234567"), "supplier-91234567");
    }

    #[test]
    fn indenting_keeps_text_and_writes_empty_elements_empty() {
        let xml = r#"<?xml version="1.0"?><a xmlns="urn:x"><b>1 2</b><c></c><d/></a>"#;
        assert_eq!(
            indented(xml),
            "<?xml version=\"1.0\"?>\n<a xmlns=\"urn:x\">\n  <b>1 2</b>\n  <c/>\n  <d/>\n</a>\n"
        );
        assert_eq!(indented("<a><b></a>"), "<a><b></a>");
    }

    #[test]
    fn shell_words_are_quoted() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
