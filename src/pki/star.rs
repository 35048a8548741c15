//! STAR's side of WSB in the test PKI: the sending certificate every push presents (the stand-in
//! for STAR's `sys-org-star-test.cer`), webhook server certificates for suppliers who rehearse
//! fully offline, and certificate thumbprints in the forms suppliers configure them.
//!
//! On disk the STAR certificate is `star.crt` / `star.key` in the PKI folder, issued from the
//! test CA by [`ensure_star`] (first start, or when the file is missing, expired or from another
//! CA). A webhook server certificate is `<stem>.crt` (leaf, then CA) / `<stem>.key`.

use std::fmt;
use std::path::PathBuf;

use x509_parser::prelude::{FromDer, X509Certificate};

use super::files::{load_ca, pair_exists, read_file, validate_stem, write_file, Secrecy};
use super::{
    CertificateAuthority, CertificateShape, ClientSpec, IssuedCertificate, PkiError, PkiPaths,
};
use crate::identity::CallerIdentity;

/// STAR's CVR number (Styrelsen for Arbejdsmarked og Rekruttering; public in the CVR register).
pub const STAR_CVR: &str = "55568510";
/// The organisation STAR's certificate names.
pub const STAR_ORGANISATION: &str = "Styrelsen for Arbejdsmarked og Rekruttering";
/// The common name of the mock's STAR certificate: it says plainly that it is a test stand-in.
pub const STAR_COMMON_NAME: &str = "STAR Webservicebeskeder Test (dfdg-mock)";
/// File stem of STAR's sending certificate: `star.crt`, `star.key`.
pub const STAR_STEM: &str = "star";
/// How long the STAR certificate made by [`ensure_star`] is valid.
const STAR_VALID_DAYS: i64 = 825;

/// The parameters of STAR's sending certificate: OCES3 system certificate of STAR (CVR
/// [`STAR_CVR`], `organizationIdentifier=NTRDK-55568510`, `serialNumber=UI:DK-O:G:<uuid>`),
/// client-auth EKU.
pub fn star_spec(uuid: uuid::Uuid, valid_days: i64) -> ClientSpec {
    ClientSpec {
        name: STAR_COMMON_NAME.to_owned(),
        organisation: STAR_ORGANISATION.to_owned(),
        cvr: STAR_CVR.to_owned(),
        shape: CertificateShape::Oces3 { uuid },
        valid_days,
    }
}

impl CertificateAuthority {
    /// Issues STAR's sending certificate (see [`star_spec`]) with a fresh UUID.
    pub fn issue_star(&self, valid_days: i64) -> Result<IssuedCertificate, PkiError> {
        self.issue_client(&star_spec(uuid::Uuid::new_v4(), valid_days))
    }

    /// Issues a supplier's webhook server certificate for `name` (a DNS name or IP address)
    /// and any further SANs: serverAuth EKU, CN = `name`.
    pub fn issue_webhook_server(
        &self,
        name: &str,
        extra_sans: &[String],
        valid_days: i64,
    ) -> Result<IssuedCertificate, PkiError> {
        let mut sans = vec![name.trim().to_owned()];
        for san in extra_sans {
            let san = san.trim();
            if !san.is_empty() && !sans.iter().any(|s| s.eq_ignore_ascii_case(san)) {
                sans.push(san.to_owned());
            }
        }
        if sans[0].is_empty() {
            return Err(PkiError::NoSans);
        }
        self.issue_server(&sans, valid_days)
    }
}

/// A certificate digest as suppliers paste it into their trust configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Thumbprint(Vec<u8>);

impl Thumbprint {
    /// Uppercase hex without separators, as .NET's `X509Certificate2.Thumbprint` and Windows
    /// show it (`Display` gives the same).
    pub fn hex(&self) -> String {
        self.to_string()
    }

    /// Uppercase hex in colon-separated pairs, as `openssl x509 -fingerprint` and Java's
    /// `keytool` show it.
    pub fn with_colons(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        pairs.join(":")
    }

    /// The digest bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in &self.0 {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbprint({self})")
    }
}

/// The SHA-256 and SHA-1 thumbprints of one certificate (DER).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbprints {
    /// SHA-256: what new configurations should pin.
    pub sha256: Thumbprint,
    /// SHA-1: what Windows, IIS and many .NET configurations still call "the thumbprint".
    pub sha1: Thumbprint,
}

impl Thumbprints {
    /// The thumbprints of a DER-encoded certificate.
    pub fn of(cert_der: &[u8]) -> Thumbprints {
        use sha1::Digest as _;
        Thumbprints {
            sha256: Thumbprint(super::sha256(cert_der)),
            sha1: Thumbprint(sha1::Sha1::digest(cert_der).to_vec()),
        }
    }
}

/// The paths of STAR's sending certificate in a PKI folder.
impl PkiPaths {
    /// `star.crt`: STAR's sending certificate (PEM), to give to suppliers.
    pub fn star_cert(&self) -> PathBuf {
        self.dir.join(format!("{STAR_STEM}.crt"))
    }

    /// `star.key`: its key (mode 0600); only the mock uses it.
    pub fn star_key(&self) -> PathBuf {
        self.dir.join(format!("{STAR_STEM}.key"))
    }
}

/// What [`ensure_star`] found or made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StarFiles {
    /// `star.crt`.
    pub cert: PathBuf,
    /// `star.key`.
    pub key: PathBuf,
    /// True if the certificate was (re)issued now.
    pub issued: bool,
    /// The identity a webhook sees when STAR calls.
    pub identity: CallerIdentity,
    /// Its thumbprints, for the supplier's trust configuration.
    pub thumbprints: Thumbprints,
}

/// Makes STAR's sending certificate from the CA in `paths.dir` unless a valid one issued by
/// that CA is already there. The CA must exist (`pki init`, or `serve`'s first start).
pub fn ensure_star(paths: &PkiPaths) -> Result<StarFiles, PkiError> {
    let ca = load_ca(paths)?;
    let (cert, key) = (paths.star_cert(), paths.star_key());
    let present = pair_exists(&cert, &key)?;
    let current = if present {
        let pem = read_file(&cert)?;
        current_star(&pem, &ca)
    } else {
        None
    };
    let (der, issued) = match current {
        Some(der) => (der, false),
        None => {
            let star = ca.issue_star(STAR_VALID_DAYS)?;
            write_file(&key, star.key_pem().as_bytes(), Secrecy::Secret, true)?;
            write_file(&cert, star.cert_pem.as_bytes(), Secrecy::Public, true)?;
            (star.cert_der, true)
        }
    };
    Ok(StarFiles {
        identity: CallerIdentity::from_der(&der)?,
        thumbprints: Thumbprints::of(&der),
        cert,
        key,
        issued,
    })
}

/// The DER of the STAR certificate in `pem` if `ca` signed it, it is valid now and still names
/// STAR; `None` means "issue a new one".
fn current_star(pem: &str, ca: &CertificateAuthority) -> Option<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let (_, cert) = X509Certificate::from_der(&pem.contents).ok()?;
    let (_, ca_cert) = X509Certificate::from_der(ca.cert_der()).ok()?;
    let identity = CallerIdentity::from_der(&pem.contents).ok()?;
    // The signature, not just the issuer name: a re-made CA has the same name.
    let fits = cert.issuer().as_raw() == ca_cert.subject().as_raw()
        && cert.verify_signature(Some(ca_cert.public_key())).is_ok()
        && cert.validity().is_valid()
        && identity.cvr.as_deref() == Some(STAR_CVR);
    fits.then(|| pem.contents.clone())
}

/// What [`issue_webhook_server_files`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFiles {
    /// `<stem>.crt`: the server certificate followed by the CA certificate.
    pub cert: PathBuf,
    /// `<stem>.key`: its key (mode 0600).
    pub key: PathBuf,
    /// The certificate's SANs, first = CN.
    pub sans: Vec<String>,
    /// Its thumbprints.
    pub thumbprints: Thumbprints,
}

/// Issues a webhook server certificate for `name` (+ `extra_sans`) from the CA in `paths.dir`
/// and writes `<stem>.crt` (chain: leaf, CA) and `<stem>.key`. Without `force`, refuses to
/// overwrite.
pub fn issue_webhook_server_files(
    paths: &PkiPaths,
    stem: &str,
    name: &str,
    extra_sans: &[String],
    valid_days: i64,
    force: bool,
) -> Result<ServerFiles, PkiError> {
    validate_stem(stem)?;
    let (cert, key) = (
        paths.dir.join(format!("{stem}.crt")),
        paths.dir.join(format!("{stem}.key")),
    );
    if !force {
        for path in [&cert, &key] {
            if path.exists() {
                return Err(PkiError::Exists(path.clone()));
            }
        }
    }
    let ca = load_ca(paths)?;
    let server = ca.issue_webhook_server(name, extra_sans, valid_days)?;
    write_file(&key, server.key_pem().as_bytes(), Secrecy::Secret, force)?;
    let chain = format!("{}{}", server.cert_pem, ca.cert_pem());
    write_file(&cert, chain.as_bytes(), Secrecy::Public, force)?;
    let (_, parsed) = X509Certificate::from_der(&server.cert_der)
        .map_err(|_| PkiError::UnexpectedDer("webhook server certificate"))?;
    let sans = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => (*d).to_owned(),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                        4 => <[u8; 4]>::try_from(*ip)
                            .map(|a| std::net::IpAddr::from(a).to_string())
                            .unwrap_or_default(),
                        16 => <[u8; 16]>::try_from(*ip)
                            .map(|a| std::net::IpAddr::from(a).to_string())
                            .unwrap_or_default(),
                        _ => String::new(),
                    },
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ServerFiles {
        cert,
        key,
        sans,
        thumbprints: Thumbprints::of(&server.cert_der),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::IdentityKind;
    use crate::pki::init;

    #[test]
    fn star_certificate_names_star_as_an_oces3_system() {
        let ca = CertificateAuthority::generate("STAR Test CA").expect("ca");
        let star = ca.issue_star(30).expect("star");
        let id = CallerIdentity::from_der(&star.cert_der).expect("identity");
        assert_eq!(id.kind, IdentityKind::Oces3Organisation);
        assert_eq!(id.cvr.as_deref(), Some(STAR_CVR));
        assert!(
            id.caller_id.starts_with("CVR:55568510-UUID:"),
            "{}",
            id.caller_id
        );
        assert!(
            id.subject.contains("organizationIdentifier=NTRDK-55568510")
                || id.subject.contains("2.5.4.97=NTRDK-55568510"),
            "{}",
            id.subject
        );
        assert!(
            id.subject.contains("serialNumber=UI:DK-O:G:"),
            "{}",
            id.subject
        );
        assert_eq!(id.organisation.as_deref(), Some(STAR_ORGANISATION));
        let (_, cert) = X509Certificate::from_der(&star.cert_der).expect("parses");
        let eku = cert
            .extended_key_usage()
            .expect("eku")
            .expect("present")
            .value;
        assert!(eku.client_auth && !eku.server_auth);
    }

    #[test]
    fn thumbprints_match_known_digests_in_both_forms() {
        // SHA-1 and SHA-256 of "abc" (FIPS 180 test vectors).
        let t = Thumbprints::of(b"abc");
        assert_eq!(t.sha1.hex(), "A9993E364706816ABA3E25717850C26C9CD0D89D");
        assert_eq!(
            t.sha256.to_string(),
            "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
        );
        assert!(t.sha1.with_colons().starts_with("A9:99:3E:36:"));
        assert_eq!(t.sha1.with_colons().len(), 20 * 3 - 1);
    }

    #[test]
    fn ensure_star_issues_once_and_reissues_when_from_another_ca() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = PkiPaths::new(dir.path());
        init(&paths, &[], false).expect("init");
        let first = ensure_star(&paths).expect("first");
        assert!(first.issued);
        let mode = std::fs::metadata(&first.key)
            .expect("key")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            first.identity.fingerprint,
            first.thumbprints.sha256.hex().to_ascii_lowercase()
        );
        let second = ensure_star(&paths).expect("second");
        assert!(!second.issued);
        assert_eq!(second.identity, first.identity);

        init(&paths, &[], true).expect("new CA");
        let third = ensure_star(&paths).expect("third");
        assert!(
            third.issued,
            "a certificate from the old CA must be replaced"
        );
        assert_ne!(third.identity.fingerprint, first.identity.fingerprint);
    }

    #[test]
    fn webhook_server_files_hold_the_chain_and_refuse_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let paths = PkiPaths::new(dir.path());
        init(&paths, &[], false).expect("init");
        let files = issue_webhook_server_files(
            &paths,
            "webhook",
            "webhook.leverandor.test",
            &["127.0.0.1".into()],
            30,
            false,
        )
        .expect("server files");
        assert_eq!(files.sans, ["webhook.leverandor.test", "127.0.0.1"]);
        let chain = std::fs::read_to_string(&files.cert).expect("chain");
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
        assert!(matches!(
            issue_webhook_server_files(&paths, "webhook", "x.test", &[], 30, false),
            Err(PkiError::Exists(_))
        ));
        assert!(matches!(
            issue_webhook_server_files(&paths, "star", "x.test", &[], 30, true),
            Err(PkiError::InvalidStem(_))
        ));
    }
}
