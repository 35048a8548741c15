//! The PKI on disk: `ca.crt`/`ca.key`, `server.crt`/`server.key` and client
//! `<stem>.crt`/`.key` with two PKCS#12 files, `<stem>-java.p12` and `<stem>-dotnet.p12`
//! (see [`Pkcs12Kind`]), in one folder (default `certs/`), for `dfdg-mock pki init|client`
//! and for `serve` on first start. Keys and PKCS#12 files are created with mode 0600,
//! certificates 0644; nothing is overwritten without `force`.

use std::fs;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{
    sha256, CertificateAuthority, CertificateShape, ClientSpec, IssuedCertificate, Pkcs12Kind,
    PkiError,
};
use crate::identity::{self, CallerIdentity};

/// How long the server certificate made by [`init`] is valid.
const SERVER_VALID_DAYS: i64 = 825;
/// How long the demo client certificate made by [`ensure_demo`] is valid.
const DEMO_CLIENT_VALID_DAYS: i64 = 825;

/// File stem of the demo client certificate that `serve` creates on first start.
pub const DEMO_CLIENT_STEM: &str = "demo-client";
/// Password of the demo client's PKCS#12 file. A documented test password: the demo
/// certificate only opens doors of a local mock.
pub const DEMO_P12_PASSWORD: &str = "dfdg-mock";
/// SANs every server certificate gets.
pub const DEFAULT_SERVER_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// Where the file API keeps the PKI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiPaths {
    /// The folder (default `certs/`).
    pub dir: PathBuf,
}

/// The files of one client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPaths {
    /// `<stem>.crt`, PEM certificate.
    pub cert: PathBuf,
    /// `<stem>.key`, PKCS#8 PEM key (mode 0600).
    pub key: PathBuf,
    /// The PKCS#12 files with key and chain (mode 0600), one per kind:
    /// `<stem>-java.p12` ([`Pkcs12Kind::Modern`]), `<stem>-dotnet.p12` ([`Pkcs12Kind::Legacy`]).
    pub pkcs12_files: [(Pkcs12Kind, PathBuf); 2],
}

impl ClientPaths {
    /// The PKCS#12 file of `kind`.
    pub fn pkcs12(&self, kind: Pkcs12Kind) -> &Path {
        self.pkcs12_files
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, path)| path.as_path())
            .expect("one PKCS#12 file per kind")
    }

    /// Every file: certificate, key, the PKCS#12 files.
    fn all(&self) -> impl Iterator<Item = &PathBuf> {
        [&self.cert, &self.key]
            .into_iter()
            .chain(self.pkcs12_files.iter().map(|(_, path)| path))
    }
}

impl PkiPaths {
    /// The PKI in folder `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PkiPaths { dir: dir.into() }
    }

    /// `ca.crt`: the CA certificate, to give to clients as trust anchor.
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// `ca.key`: the CA key.
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }

    /// `server.crt`: the server certificate followed by the CA certificate.
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }

    /// `server.key`: the server key.
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// The files of client `stem`.
    pub fn client(&self, stem: &str) -> ClientPaths {
        ClientPaths {
            cert: self.dir.join(format!("{stem}.crt")),
            key: self.dir.join(format!("{stem}.key")),
            pkcs12_files: Pkcs12Kind::ALL.map(|kind| {
                (
                    kind,
                    self.dir.join(format!("{stem}-{}.p12", kind.opened_by())),
                )
            }),
        }
    }
}

/// What [`init`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// The folder.
    pub paths: PkiPaths,
    /// The server certificate's SANs.
    pub server_sans: Vec<String>,
    /// SHA-256 fingerprint of the CA certificate (lowercase hex).
    pub ca_fingerprint: String,
}

/// What [`issue_client_files`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFiles {
    /// The files.
    pub paths: ClientPaths,
    /// The identity the mock will see for this certificate.
    pub identity: CallerIdentity,
}

/// What [`ensure_demo`] found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoPki {
    /// The folder.
    pub paths: PkiPaths,
    /// True if the CA was created now.
    pub created_ca: bool,
    /// True if the server certificate was (re)issued now.
    pub issued_server: bool,
    /// True if the demo client certificate was (re)issued now.
    pub issued_client: bool,
    /// The demo client's files.
    pub client: ClientPaths,
    /// The password of the demo client's PKCS#12 file ([`DEMO_P12_PASSWORD`]).
    pub client_p12_password: &'static str,
}

/// Creates the CA and a server certificate (SANs `localhost`, `127.0.0.1`, `::1` plus
/// `extra_sans`) in `paths.dir`. Without `force`, refuses if any of the files exists.
pub fn init(paths: &PkiPaths, extra_sans: &[String], force: bool) -> Result<InitReport, PkiError> {
    create_dir(&paths.dir)?;
    if !force {
        for path in [
            paths.ca_cert(),
            paths.ca_key(),
            paths.server_cert(),
            paths.server_key(),
        ] {
            if path.exists() {
                return Err(PkiError::Exists(path));
            }
        }
    }
    let ca = CertificateAuthority::generate("dfdg-mock Test CA")?;
    write_file(
        &paths.ca_key(),
        ca.key_pem.as_bytes(),
        Secrecy::Secret,
        force,
    )?;
    write_file(
        &paths.ca_cert(),
        ca.cert_pem.as_bytes(),
        Secrecy::Public,
        force,
    )?;
    let server_sans = write_server(paths, &ca, extra_sans, force)?;
    Ok(InitReport {
        paths: paths.clone(),
        server_sans,
        ca_fingerprint: identity::hex(&sha256(ca.cert_der())),
    })
}

/// Issues client certificate `stem` from the CA in `paths.dir` and writes `<stem>.crt`,
/// `<stem>.key` and the PKCS#12 files `<stem>-java.p12` and `<stem>-dotnet.p12` (both
/// protected by `p12_password`).
pub fn issue_client_files(
    paths: &PkiPaths,
    stem: &str,
    spec: &ClientSpec,
    p12_password: &str,
    force: bool,
) -> Result<ClientFiles, PkiError> {
    validate_stem(stem)?;
    let client_paths = paths.client(stem);
    if !force {
        for path in client_paths.all() {
            if path.exists() {
                return Err(PkiError::Exists(path.clone()));
            }
        }
    }
    let ca = load_ca(paths)?;
    let issued = ca.issue_client(spec)?;
    write_client(&client_paths, &ca, &issued, stem, p12_password, force)?;
    Ok(ClientFiles {
        paths: client_paths,
        identity: CallerIdentity::from_der(&issued.cert_der)?,
    })
}

/// First start of `serve`: makes whatever is missing of CA, server certificate (reissued from
/// the existing CA if it lacks a requested SAN) and the OCES3 demo client `demo-client`
/// (PKCS#12 password [`DEMO_P12_PASSWORD`]).
pub fn ensure_demo(paths: &PkiPaths, extra_sans: &[String]) -> Result<DemoPki, PkiError> {
    create_dir(&paths.dir)?;
    let created_ca = !pair_exists(&paths.ca_cert(), &paths.ca_key())?;
    let ca = if created_ca {
        let ca = CertificateAuthority::generate("dfdg-mock Test CA")?;
        write_file(
            &paths.ca_key(),
            ca.key_pem.as_bytes(),
            Secrecy::Secret,
            false,
        )?;
        write_file(
            &paths.ca_cert(),
            ca.cert_pem.as_bytes(),
            Secrecy::Public,
            false,
        )?;
        ca
    } else {
        load_ca(paths)?
    };

    let server_ok = !created_ca
        && paths.server_cert().exists()
        && paths.server_key().exists()
        && server_cert_fits(&paths.server_cert(), &ca, extra_sans)?;
    if !server_ok {
        write_server(paths, &ca, extra_sans, true)?;
    }

    let client = paths.client(DEMO_CLIENT_STEM);
    let client_ok = !created_ca && client.all().all(|path| path.exists());
    if !client_ok {
        let spec = ClientSpec {
            name: "Fagsystem Jobcenter Test".to_owned(),
            organisation: "Testleverandør ApS".to_owned(),
            cvr: "91234567".to_owned(),
            shape: CertificateShape::Oces3 {
                uuid: uuid::Uuid::new_v4(),
            },
            valid_days: DEMO_CLIENT_VALID_DAYS,
        };
        let issued = ca.issue_client(&spec)?;
        write_client(
            &client,
            &ca,
            &issued,
            DEMO_CLIENT_STEM,
            DEMO_P12_PASSWORD,
            true,
        )?;
    }

    Ok(DemoPki {
        paths: paths.clone(),
        created_ca,
        issued_server: !server_ok,
        issued_client: !client_ok,
        client,
        client_p12_password: DEMO_P12_PASSWORD,
    })
}

/// Writes a client's key, its PKCS#12 files (friendly name `stem`) and, last, its
/// certificate.
fn write_client(
    paths: &ClientPaths,
    ca: &CertificateAuthority,
    issued: &IssuedCertificate,
    stem: &str,
    p12_password: &str,
    force: bool,
) -> Result<(), PkiError> {
    write_file(
        &paths.key,
        issued.key_pem.as_bytes(),
        Secrecy::Secret,
        force,
    )?;
    for (kind, path) in &paths.pkcs12_files {
        let p12 = issued.to_pkcs12(ca, stem, p12_password, *kind)?;
        write_file(path, &p12, Secrecy::Secret, force)?;
    }
    write_file(
        &paths.cert,
        issued.cert_pem.as_bytes(),
        Secrecy::Public,
        force,
    )
}

/// Issues and writes the server certificate (chain: server, CA) and key.
fn write_server(
    paths: &PkiPaths,
    ca: &CertificateAuthority,
    extra_sans: &[String],
    force: bool,
) -> Result<Vec<String>, PkiError> {
    let sans = server_sans(extra_sans);
    let server = ca.issue_server(&sans, SERVER_VALID_DAYS)?;
    write_file(
        &paths.server_key(),
        server.key_pem.as_bytes(),
        Secrecy::Secret,
        force,
    )?;
    let chain = format!("{}{}", server.cert_pem, ca.cert_pem);
    write_file(
        &paths.server_cert(),
        chain.as_bytes(),
        Secrecy::Public,
        force,
    )?;
    Ok(sans)
}

/// Default SANs plus `extra`, without duplicates, in order.
fn server_sans(extra: &[String]) -> Vec<String> {
    let mut sans: Vec<String> = DEFAULT_SERVER_SANS.iter().map(|s| s.to_string()).collect();
    for san in extra {
        let san = san.trim();
        if !san.is_empty() && !sans.iter().any(|s| same_san(s, san)) {
            sans.push(san.to_owned());
        }
    }
    sans
}

fn same_san(a: &str, b: &str) -> bool {
    match (a.parse::<IpAddr>(), b.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => a.eq_ignore_ascii_case(b),
        _ => false,
    }
}

/// True if the server certificate at `path` was issued by `ca`, is currently valid and
/// covers the default SANs and `extra_sans`.
fn server_cert_fits(
    path: &Path,
    ca: &CertificateAuthority,
    extra_sans: &[String],
) -> Result<bool, PkiError> {
    let pem = read_file(path)?;
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(pem.as_bytes()) else {
        return Ok(false);
    };
    let Ok((_, cert)) = X509Certificate::from_der(&pem.contents) else {
        return Ok(false);
    };
    let Ok((_, ca_cert)) = X509Certificate::from_der(ca.cert_der()) else {
        return Ok(false);
    };
    if cert.issuer().as_raw() != ca_cert.subject().as_raw() || !cert.validity().is_valid() {
        return Ok(false);
    }
    let present: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => <[u8; 4]>::try_from(*ip)
                        .ok()
                        .map(|a| IpAddr::from(a).to_string()),
                    16 => <[u8; 16]>::try_from(*ip)
                        .ok()
                        .map(|a| IpAddr::from(a).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => return Ok(false),
    };
    Ok(server_sans(extra_sans)
        .iter()
        .all(|wanted| present.iter().any(|p| same_san(p, wanted))))
}

pub(super) fn load_ca(paths: &PkiPaths) -> Result<CertificateAuthority, PkiError> {
    let cert = read_file(&paths.ca_cert())?;
    let key = read_file(&paths.ca_key())?;
    CertificateAuthority::from_pem(&cert, &key)
}

/// True if both files exist, false if neither; an error naming the missing one otherwise.
pub(super) fn pair_exists(cert: &Path, key: &Path) -> Result<bool, PkiError> {
    match (cert.exists(), key.exists()) {
        (true, true) => Ok(true),
        (false, false) => Ok(false),
        (true, false) => Err(PkiError::Incomplete {
            present: cert.to_owned(),
            missing: key.to_owned(),
        }),
        (false, true) => Err(PkiError::Incomplete {
            present: key.to_owned(),
            missing: cert.to_owned(),
        }),
    }
}

pub(super) fn validate_stem(stem: &str) -> Result<(), PkiError> {
    let ok = !stem.is_empty()
        && stem.len() <= 64
        && !stem.starts_with('.')
        && stem != "ca"
        && stem != "server"
        && stem != super::STAR_STEM
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidStem(stem.to_owned()))
    }
}

/// Whether a file holds a secret (mode 0600) or public material (mode 0644).
#[derive(Clone, Copy)]
pub(super) enum Secrecy {
    Secret,
    Public,
}

fn create_dir(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        action: "create folder",
        path: dir.to_owned(),
        source,
    })
}

pub(super) fn read_file(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

/// Writes `contents`; the mode is set at creation, so a key is never readable by others.
/// Without `force` the file must not exist yet.
pub(super) fn write_file(
    path: &Path,
    contents: &[u8],
    secrecy: Secrecy,
    force: bool,
) -> Result<(), PkiError> {
    let io_error = |source| PkiError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    let mode = match secrecy {
        Secrecy::Secret => 0o600,
        Secrecy::Public => 0o644,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = secrecy;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            PkiError::Exists(path.to_owned())
        } else {
            io_error(e)
        }
    })?;
    // An overwritten file keeps its old mode: tighten (or set) it explicitly.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_error)?;
    }
    file.write_all(contents).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::tests::oces3_spec;
    use crate::pki::Oces2Kind;

    #[test]
    fn init_writes_files_with_modes_and_refuses_to_overwrite() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = PkiPaths::new(dir.path().join("certs"));
        let report = init(&paths, &["mock.example".into()], false).expect("init");
        assert!(report.server_sans.contains(&"mock.example".to_owned()));
        let mode = |p: PathBuf| fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode(paths.ca_key()), 0o600);
        assert_eq!(mode(paths.server_key()), 0o600);
        assert_eq!(mode(paths.ca_cert()), 0o644);
        assert_eq!(mode(paths.server_cert()), 0o644);

        let err = init(&paths, &[], false).expect_err("must refuse");
        assert!(matches!(err, PkiError::Exists(_)));
        assert!(err.to_string().contains("--force"), "{err}");
        init(&paths, &[], true).expect("force overwrites");

        let mut spec = oces3_spec(30);
        spec.shape = CertificateShape::Oces2(Oces2Kind::Fid("42".into()));
        let files =
            issue_client_files(&paths, "leverandor", &spec, "pw", false).expect("client files");
        assert_eq!(files.identity.caller_id, "CVR:91234567-FID:42");
        assert_eq!(mode(files.paths.key.clone()), 0o600);
        for (kind, path) in &files.paths.pkcs12_files {
            assert_eq!(mode(path.clone()), 0o600, "{kind:?}");
        }
        assert!(files
            .paths
            .pkcs12(Pkcs12Kind::Modern)
            .ends_with("leverandor-java.p12"));
        assert!(files
            .paths
            .pkcs12(Pkcs12Kind::Legacy)
            .ends_with("leverandor-dotnet.p12"));
        assert_eq!(mode(files.paths.cert.clone()), 0o644);
        assert!(matches!(
            issue_client_files(&paths, "leverandor", &spec, "pw", false),
            Err(PkiError::Exists(_))
        ));
        assert!(matches!(
            issue_client_files(&paths, "../escape", &spec, "pw", false),
            Err(PkiError::InvalidStem(_))
        ));
    }

    #[test]
    fn ensure_demo_creates_once_and_reissues_server_for_new_san() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = PkiPaths::new(dir.path());
        let first = ensure_demo(&paths, &[]).expect("first start");
        assert!(first.created_ca && first.issued_server && first.issued_client);
        for (kind, path) in &first.client.pkcs12_files {
            let p12 = fs::read(path).expect("p12");
            p12_keystore::KeyStore::from_pkcs12(
                &p12,
                DEMO_P12_PASSWORD,
                p12_keystore::Pkcs12ImportPolicy::Relaxed,
            )
            .unwrap_or_else(|e| panic!("demo {kind:?} p12 opens: {e}"));
        }
        let demo_pem = fs::read_to_string(&first.client.cert).expect("demo cert");
        let (_, pem) = x509_parser::pem::parse_x509_pem(demo_pem.as_bytes()).expect("pem");
        let id = CallerIdentity::from_der(&pem.contents).expect("identity");
        assert_eq!(id.kind, crate::identity::IdentityKind::Oces3Organisation);
        assert_eq!(id.cvr.as_deref(), Some("91234567"));

        let second = ensure_demo(&paths, &["127.0.0.1".into()]).expect("second start");
        assert!(!second.created_ca && !second.issued_server && !second.issued_client);

        let ca_before = fs::read(paths.ca_cert()).expect("ca");
        let third = ensure_demo(&paths, &["mock.internal".into()]).expect("new san");
        assert!(!third.created_ca && third.issued_server && !third.issued_client);
        assert_eq!(fs::read(paths.ca_cert()).expect("ca"), ca_before);
        let ca = load_ca(&paths).expect("ca loads");
        assert!(
            server_cert_fits(&paths.server_cert(), &ca, &["mock.internal".into()]).expect("check")
        );

        fs::remove_file(paths.ca_key()).expect("remove key");
        assert!(matches!(
            ensure_demo(&paths, &[]),
            Err(PkiError::Incomplete { .. })
        ));
    }
}
