//! Test PKI: a throw-away CA, server and OCES-shaped client certificates, PKCS#12 bundles.
//!
//! Owns certificate *generation* (with rcgen, ECDSA P-256) in two forms: an in-memory API that
//! integration tests use to build a fresh PKI per test, and a file API (`certs/` by default)
//! used by `dfdg-mock pki init|client` and by `serve` on first start. Private keys never reach
//! `Debug` output or logs, and key files are created with mode 0600.
//!
//! Reading an identity *from* a certificate is [`crate::identity`]'s job.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::identity::{self, CallerIdentity, IdentityError};

/// OID 2.5.4.5, X.520 `serialNumber`: the OCES identifier (`UI:DK-O:G:…`, `CVR:…-FID:…`).
const OID_SERIAL_NUMBER: [u64; 4] = [2, 5, 4, 5];
/// OID 2.5.4.97, X.520 `organizationIdentifier`: `NTRDK-<cvr>` in OCES3.
const OID_ORGANIZATION_IDENTIFIER: [u64; 4] = [2, 5, 4, 97];

/// How long a CA made by [`CertificateAuthority::generate`] is valid.
const CA_VALID_DAYS: i64 = 3650;
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

/// What can go wrong while making or storing test certificates.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or failed to sign.
    #[error("certificate generation failed")]
    Generation(#[source] rcgen::Error),
    /// A CVR number is not 8 digits.
    #[error("CVR number must be exactly 8 digits, got {0:?}")]
    InvalidCvr(String),
    /// An OCES2 FID/UID/RID number is not a non-empty string of digits.
    #[error("OCES2 {kind} number must be digits only, got {value:?}")]
    InvalidOces2Number {
        /// `FID`, `UID` or `RID`.
        kind: &'static str,
        /// The rejected value.
        value: String,
    },
    /// A required text field of a [`ClientSpec`] is empty.
    #[error("client certificate {0} must not be empty")]
    EmptyField(&'static str),
    /// `valid_days` was 0 or beyond a century.
    #[error("valid_days must be between -36500 and 36500 and not 0 (positive: valid from yesterday; negative: already expired), got {0}")]
    InvalidValidity(i64),
    /// A server certificate was requested without any name.
    #[error("a server certificate needs at least one subject alternative name")]
    NoSans,
    /// A SAN is neither an IP address nor a valid DNS name.
    #[error("{0:?} is neither an IP address nor a valid DNS name")]
    InvalidSan(String),
    /// The CA certificate could not be used.
    #[error("CA certificate unusable: {0}")]
    CaCertificate(String),
    /// The CA key is not the key of the CA certificate.
    #[error("the CA private key does not belong to the CA certificate")]
    CaKeyMismatch,
    /// Building the PKCS#12 file failed.
    #[error("building the PKCS#12 file failed")]
    Pkcs12(#[source] p12_keystore::error::Error),
    /// A file exists and `force` was not given.
    #[error("{} already exists; refusing to overwrite it (use --force)", .0.display())]
    Exists(PathBuf),
    /// Only one half of a certificate/key pair exists.
    #[error("{} exists but {} is missing; restore it, or remove both (or use --force)", present.display(), missing.display())]
    Incomplete {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// A client file stem is not a plain file name.
    #[error("client name {0:?} must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-', not start with '.', and not be \"ca\" or \"server\"")]
    InvalidStem(String),
    /// Reading or writing a file failed.
    #[error("could not {action} {}", path.display())]
    Io {
        /// What was being done: "read", "write", "create folder".
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// rcgen's output did not have the expected structure (a bug, not a user error).
    #[error("internal error: generated certificate has unexpected DER structure at {0}")]
    UnexpectedDer(&'static str),
    /// A certificate just made could not be read back.
    #[error("issued certificate could not be read back")]
    Identity(#[from] IdentityError),
}

impl From<rcgen::Error> for PkiError {
    fn from(e: rcgen::Error) -> Self {
        PkiError::Generation(e)
    }
}

/// A self-signed test CA that can issue server and client certificates.
pub struct CertificateAuthority {
    /// rcgen's signer: the CA's subject, key identifier and key.
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    cert_pem: String,
    /// The CA certificate, DER (what TLS trust stores take).
    cert_der: Vec<u8>,
    /// The CA key, PKCS#8 PEM, kept to write `ca.key`. Never printed.
    key_pem: String,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Makes a self-signed CA (ECDSA P-256, valid 10 years from yesterday) with subject
    /// `CN=<common_name>, OU=Test - dfdg-mock, O=dfdg-mock test PKI, C=DK`.
    pub fn generate(common_name: &str) -> Result<Self, PkiError> {
        if common_name.trim().is_empty() {
            return Err(PkiError::EmptyField("CA common name"));
        }
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        push_country(&mut params.distinguished_name)?;
        params
            .distinguished_name
            .push(DnType::OrganizationName, "dfdg-mock test PKI");
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, "Test - dfdg-mock");
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial());
        (params.not_before, params.not_after) = validity(CA_VALID_DAYS)?;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(CertificateAuthority {
            cert_pem: cert.pem(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
            key_pem,
        })
    }

    /// Loads a CA from its certificate and PKCS#8 key (both PEM), as written by [`init`].
    ///
    /// The subject must consist of single-valued RDNs with UTF8String or PrintableString
    /// values (as every CA made here does), so issued certificates name it byte for byte.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| PkiError::CaCertificate(format!("not a PEM certificate: {e}")))?;
        if pem.label != "CERTIFICATE" {
            return Err(PkiError::CaCertificate(format!(
                "expected a CERTIFICATE PEM block, found {:?}",
                pem.label
            )));
        }
        let key = KeyPair::from_pem(key_pem).map_err(|e| {
            PkiError::CaCertificate(format!("CA key is not a PKCS#8 PEM private key: {e}"))
        })?;
        let (_, cert) = X509Certificate::from_der(&pem.contents)
            .map_err(|e| PkiError::CaCertificate(format!("not an X.509 certificate: {e}")))?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::CaKeyMismatch);
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name_of(&cert)?;
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.key_identifier_method = cert
            .iter_extensions()
            .find_map(|ext| match ext.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => {
                    Some(KeyIdMethod::PreSpecified(id.0.to_vec()))
                }
                _ => None,
            })
            .unwrap_or(KeyIdMethod::Sha256);
        Ok(CertificateAuthority {
            cert_pem: pem_encode("CERTIFICATE", &pem.contents),
            cert_der: pem.contents.clone(),
            issuer: Issuer::new(params, key),
            key_pem: key_pem.to_owned(),
        })
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Issues a TLS server certificate: EKU serverAuth only, CN = first SAN. Each SAN becomes
    /// an IP address entry if it parses as one, else a DNS name.
    pub fn issue_server(
        &self,
        sans: &[String],
        valid_days: i64,
    ) -> Result<IssuedCertificate, PkiError> {
        let first = sans.first().ok_or(PkiError::NoSans)?;
        for san in sans {
            if san.parse::<IpAddr>().is_err()
                && rcgen::string::Ia5String::try_from(san.as_str()).is_err()
            {
                return Err(PkiError::InvalidSan(san.clone()));
            }
        }
        let mut params = CertificateParams::new(sans.to_vec())
            .map_err(|_| PkiError::InvalidSan(sans.join(", ")))?;
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, first.as_str());
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params, valid_days, None)
    }

    /// Issues an OCES-shaped client certificate: EKU clientAuth, key usage digitalSignature.
    pub fn issue_client(&self, spec: &ClientSpec) -> Result<IssuedCertificate, PkiError> {
        spec.validate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let dn = &mut params.distinguished_name;
        // DER order is least specific first; RFC 4514 text shows it reversed (CN first).
        push_country(dn)?;
        let mut merge_cn_and_serial = false;
        match &spec.shape {
            CertificateShape::Oces3 { uuid } | CertificateShape::Oces3Person { uuid } => {
                let prefix = if matches!(spec.shape, CertificateShape::Oces3Person { .. }) {
                    "UI:DK-E:G:"
                } else {
                    "UI:DK-O:G:"
                };
                dn.push(
                    DnType::CustomDnType(OID_ORGANIZATION_IDENTIFIER.to_vec()),
                    format!("NTRDK-{}", spec.cvr),
                );
                dn.push(DnType::OrganizationName, spec.organisation.as_str());
                dn.push(
                    DnType::CustomDnType(OID_SERIAL_NUMBER.to_vec()),
                    format!("{prefix}{}", uuid.hyphenated()),
                );
                dn.push(DnType::CommonName, spec.name.as_str());
            }
            CertificateShape::Oces2(kind) => {
                dn.push(
                    DnType::OrganizationName,
                    format!("{} // CVR:{}", spec.organisation, spec.cvr),
                );
                let name = match kind {
                    Oces2Kind::Fid(_) => format!("{} (funktionscertifikat)", spec.name),
                    Oces2Kind::Uid(_) | Oces2Kind::Rid(_) => spec.name.clone(),
                };
                // CN, then serialNumber: merged below into one RDN `CN=… + serialNumber=…`.
                dn.push(DnType::CommonName, name);
                dn.push(
                    DnType::CustomDnType(OID_SERIAL_NUMBER.to_vec()),
                    format!("CVR:{}-{}:{}", spec.cvr, kind.tag(), kind.number()),
                );
                merge_cn_and_serial = true;
            }
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let merge = merge_cn_and_serial.then_some(2);
        self.sign(params, spec.valid_days, merge)
    }

    /// Signs `params` with this CA: fresh P-256 key, random serial, authority key identifier.
    ///
    /// `merge_last_rdns`: rcgen writes every attribute in its own RDN; when `Some(n)`, the last
    /// `n` RDNs of the subject are merged into one multi-valued RDN and the certificate is
    /// re-signed (OCES2 puts `CN + serialNumber` in one RDN).
    fn sign(
        &self,
        mut params: CertificateParams,
        valid_days: i64,
        merge_last_rdns: Option<usize>,
    ) -> Result<IssuedCertificate, PkiError> {
        (params.not_before, params.not_after) = validity(valid_days)?;
        params.serial_number = Some(random_serial());
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let cert_der = match merge_last_rdns {
            Some(n) => der::merge_subject_rdns(cert.der(), n, self.issuer.key())?,
            None => cert.der().to_vec(),
        };
        Ok(IssuedCertificate {
            cert_pem: pem_encode("CERTIFICATE", &cert_der),
            cert_der,
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
        })
    }
}

/// What a client certificate should say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSpec {
    /// The common name, e.g. "Fagsystem Jobcenter Test".
    pub name: String,
    /// The organisation, e.g. "Testleverandør ApS".
    pub organisation: String,
    /// The CVR number, 8 digits (fictitious test organisations start with 9).
    pub cvr: String,
    /// OCES3 or OCES2, with the identifier.
    pub shape: CertificateShape,
    /// Days of validity from now; negative makes an already expired certificate.
    pub valid_days: i64,
}

impl ClientSpec {
    fn validate(&self) -> Result<(), PkiError> {
        if self.name.trim().is_empty() {
            return Err(PkiError::EmptyField("name"));
        }
        if self.organisation.trim().is_empty() {
            return Err(PkiError::EmptyField("organisation"));
        }
        if self.cvr.len() != 8 || !self.cvr.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PkiError::InvalidCvr(self.cvr.clone()));
        }
        if let CertificateShape::Oces2(kind) = &self.shape {
            let number = kind.number();
            if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                return Err(PkiError::InvalidOces2Number {
                    kind: kind.tag(),
                    value: number.to_owned(),
                });
            }
        }
        Ok(())
    }
}

/// The certificate generations and kinds the mock can issue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateShape {
    /// OCES3 organisation/system certificate: `serialNumber=UI:DK-O:G:<uuid>`.
    Oces3 {
        /// The certificate's UUID.
        uuid: uuid::Uuid,
    },
    /// OCES3 person certificate: `serialNumber=UI:DK-E:G:<uuid>`.
    Oces3Person {
        /// The certificate's UUID.
        uuid: uuid::Uuid,
    },
    /// OCES2 certificate: `serialNumber=CVR:<cvr>-FID|UID|RID:<number>` in one RDN with CN.
    Oces2(Oces2Kind),
}

/// OCES2 certificate kinds, each with its number (digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Oces2Kind {
    /// FOCES function certificate, `FID:<digits>`.
    Fid(String),
    /// VOCES company certificate, `UID:<digits>`.
    Uid(String),
    /// Employee certificate, `RID:<digits>`.
    Rid(String),
}

impl Oces2Kind {
    fn tag(&self) -> &'static str {
        match self {
            Oces2Kind::Fid(_) => "FID",
            Oces2Kind::Uid(_) => "UID",
            Oces2Kind::Rid(_) => "RID",
        }
    }

    fn number(&self) -> &str {
        match self {
            Oces2Kind::Fid(n) | Oces2Kind::Uid(n) | Oces2Kind::Rid(n) => n,
        }
    }
}

/// A certificate with its private key.
#[derive(Clone)]
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The private key, PKCS#8 PEM. Private so it only leaves on purpose.
    key_pem: String,
    /// The private key, PKCS#8 DER.
    key_der: Vec<u8>,
}

impl fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCertificate")
            .field("cert_pem", &self.cert_pem)
            .field("key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl IssuedCertificate {
    /// The private key, PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The private key, PKCS#8 DER.
    pub fn key_der(&self) -> Vec<u8> {
        self.key_der.clone()
    }

    /// A password-protected PKCS#12 file with the key and the chain (leaf, then CA), under
    /// `friendly_name`. PBES2 with AES-256-CBC and HMAC-SHA256 MAC: OpenSSL 3, Java 17 and
    /// .NET read it.
    pub fn to_pkcs12(
        &self,
        ca: &CertificateAuthority,
        friendly_name: &str,
        password: &str,
    ) -> Result<Vec<u8>, PkiError> {
        use p12_keystore::{
            Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, PrivateKey,
            PrivateKeyChain,
        };
        let key = PrivateKey::from_der(&self.key_der).map_err(PkiError::Pkcs12)?;
        let leaf = Certificate::from_der(&self.cert_der).map_err(PkiError::Pkcs12)?;
        let root = Certificate::from_der(ca.cert_der()).map_err(PkiError::Pkcs12)?;
        let local_key_id = sha256(&self.cert_der)[..20].to_vec();
        let chain = PrivateKeyChain::new(local_key_id, key, [leaf, root]);
        let mut store = KeyStore::new();
        store.add_entry(friendly_name, KeyStoreEntry::PrivateKeyChain(chain));
        store
            .writer(password)
            .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
            .mac_algorithm(MacAlgorithm::HmacSha256)
            .write()
            .map_err(PkiError::Pkcs12)
    }
}

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
    /// `<stem>.p12`, PKCS#12 with key and chain (mode 0600).
    pub p12: PathBuf,
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
            p12: self.dir.join(format!("{stem}.p12")),
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
/// `<stem>.key` and `<stem>.p12` (protected by `p12_password`).
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
        for path in [&client_paths.cert, &client_paths.key, &client_paths.p12] {
            if path.exists() {
                return Err(PkiError::Exists(path.clone()));
            }
        }
    }
    let ca = load_ca(paths)?;
    let issued = ca.issue_client(spec)?;
    let p12 = issued.to_pkcs12(&ca, stem, p12_password)?;
    write_file(
        &client_paths.key,
        issued.key_pem.as_bytes(),
        Secrecy::Secret,
        force,
    )?;
    write_file(&client_paths.p12, &p12, Secrecy::Secret, force)?;
    write_file(
        &client_paths.cert,
        issued.cert_pem.as_bytes(),
        Secrecy::Public,
        force,
    )?;
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
    let client_ok =
        !created_ca && client.cert.exists() && client.key.exists() && client.p12.exists();
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
        let p12 = issued.to_pkcs12(&ca, DEMO_CLIENT_STEM, DEMO_P12_PASSWORD)?;
        write_file(
            &client.key,
            issued.key_pem.as_bytes(),
            Secrecy::Secret,
            true,
        )?;
        write_file(&client.p12, &p12, Secrecy::Secret, true)?;
        write_file(
            &client.cert,
            issued.cert_pem.as_bytes(),
            Secrecy::Public,
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

/// A random 20-character alphanumeric password from the operating system's CSPRNG
/// (via `uuid` v4, which draws from `getrandom`).
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(20);
    while out.len() < 20 {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        // Bytes 6 and 8 carry the UUID version and variant bits: not random.
        for (i, b) in bytes.iter().enumerate() {
            // Rejection sampling: 248 = 4 * 62 keeps the choice uniform.
            if i == 6 || i == 8 || *b >= 248 || out.len() == 20 {
                continue;
            }
            out.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// helpers

/// `not_before`/`not_after` for `valid_days` from now: positive starts yesterday (clock skew);
/// negative ends `-valid_days` ago and started a day before that.
fn validity(valid_days: i64) -> Result<(OffsetDateTime, OffsetDateTime), PkiError> {
    if valid_days == 0 || !(-36500..=36500).contains(&valid_days) {
        return Err(PkiError::InvalidValidity(valid_days));
    }
    let now = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc());
    let not_after = now + Duration::days(valid_days);
    let not_before = if valid_days > 0 {
        now - Duration::days(1)
    } else {
        not_after - Duration::days(1)
    };
    Ok((not_before, not_after))
}

/// A random positive 16-byte serial number.
fn random_serial() -> SerialNumber {
    let mut bytes = uuid::Uuid::new_v4().into_bytes();
    // Positive and without a leading zero byte.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

fn push_country(dn: &mut DistinguishedName) -> Result<(), PkiError> {
    let dk = rcgen::string::PrintableString::try_from("DK")?;
    dn.push(DnType::CountryName, DnValue::PrintableString(dk));
    Ok(())
}

/// Rebuilds an rcgen `DistinguishedName` from a parsed CA subject.
fn distinguished_name_of(cert: &X509Certificate<'_>) -> Result<DistinguishedName, PkiError> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let mut dn = DistinguishedName::new();
    for rdn in cert.subject().iter_rdn() {
        let mut attributes = rdn.iter();
        let (Some(attribute), None) = (attributes.next(), attributes.next()) else {
            return Err(PkiError::CaCertificate(
                "subject has an empty or multi-valued RDN".to_owned(),
            ));
        };
        let oid: Vec<u64> = attribute
            .attr_type()
            .iter()
            .ok_or_else(|| PkiError::CaCertificate("subject has an oversized OID".to_owned()))?
            .collect();
        let value = attribute.attr_value();
        let text = std::str::from_utf8(value.data)
            .map_err(|_| PkiError::CaCertificate("subject value is not UTF-8".to_owned()))?;
        let value = match value.tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_owned()),
            Tag::PrintableString => {
                DnValue::PrintableString(rcgen::string::PrintableString::try_from(text)?)
            }
            other => {
                return Err(PkiError::CaCertificate(format!(
                    "subject uses unsupported string type {other}"
                )))
            }
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
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

fn load_ca(paths: &PkiPaths) -> Result<CertificateAuthority, PkiError> {
    let cert = read_file(&paths.ca_cert())?;
    let key = read_file(&paths.ca_key())?;
    CertificateAuthority::from_pem(&cert, &key)
}

/// True if both files exist, false if neither; an error naming the missing one otherwise.
fn pair_exists(cert: &Path, key: &Path) -> Result<bool, PkiError> {
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

fn validate_stem(stem: &str) -> Result<(), PkiError> {
    let ok = !stem.is_empty()
        && stem.len() <= 64
        && !stem.starts_with('.')
        && stem != "ca"
        && stem != "server"
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
enum Secrecy {
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

fn read_file(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

/// Writes `contents`; the mode is set at creation, so a key is never readable by others.
/// Without `force` the file must not exist yet.
fn write_file(path: &Path, contents: &[u8], secrecy: Secrecy, force: bool) -> Result<(), PkiError> {
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

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).to_vec()
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(TABLE[((n >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Minimal DER surgery for what rcgen cannot express: multi-valued RDNs.
mod der {
    use super::PkiError;
    use crate::identity::push_der_length;
    use rcgen::{KeyPair, SigningKey as _};

    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const BIT_STRING: u8 = 0x03;

    fn malformed(what: &'static str) -> PkiError {
        PkiError::UnexpectedDer(what)
    }

    /// One DER element split off the front of a buffer.
    struct Tlv<'a> {
        tag: u8,
        /// The value bytes.
        contents: &'a [u8],
        /// Tag, length and value bytes.
        whole: &'a [u8],
        /// What follows the element.
        rest: &'a [u8],
    }

    /// Splits the first TLV off `input`.
    fn split_tlv(input: &[u8]) -> Option<Tlv<'_>> {
        let tag = *input.first()?;
        let first_len = *input.get(1)?;
        let (len, header) = if first_len < 0x80 {
            (usize::from(first_len), 2)
        } else {
            let count = usize::from(first_len & 0x7f);
            if count == 0 || count > 4 {
                return None;
            }
            let bytes = input.get(2..2 + count)?;
            let len = bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + count)
        };
        let end = header.checked_add(len)?;
        let whole = input.get(..end)?;
        Some(Tlv {
            tag,
            contents: &whole[header..],
            whole,
            rest: &input[end..],
        })
    }

    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        push_der_length(&mut out, contents.len());
        out.extend_from_slice(contents);
        out
    }

    /// Merges the last `n` RDNs of the certificate's subject into one multi-valued RDN and
    /// re-signs the certificate with `ca_key` (same algorithm as rcgen used).
    pub(super) fn merge_subject_rdns(
        cert: &[u8],
        n: usize,
        ca_key: &KeyPair,
    ) -> Result<Vec<u8>, PkiError> {
        let outer = split_tlv(cert).ok_or_else(|| malformed("certificate"))?;
        let tbs = split_tlv(outer.contents).ok_or_else(|| malformed("tbs"))?;
        let algorithm = split_tlv(tbs.rest).ok_or_else(|| malformed("algorithm"))?;
        let tbs = tbs.contents;

        // TBSCertificate: [0] version, serial, signature, issuer, validity, subject, ...
        let mut before_subject = Vec::new();
        let mut cursor = tbs;
        let mut index = 0;
        let (subject, after_subject) = loop {
            let field = split_tlv(cursor).ok_or_else(|| malformed("tbs field"))?;
            let is_subject = if tbs.first() == Some(&0xa0) {
                index == 5
            } else {
                index == 4
            };
            if is_subject {
                if field.tag != SEQUENCE {
                    return Err(malformed("subject"));
                }
                break (field.contents, field.rest);
            }
            before_subject.extend_from_slice(field.whole);
            cursor = field.rest;
            index += 1;
        };

        let mut rdns = Vec::new();
        let mut cursor = subject;
        while !cursor.is_empty() {
            let rdn = split_tlv(cursor).ok_or_else(|| malformed("rdn"))?;
            if rdn.tag != SET {
                return Err(malformed("rdn tag"));
            }
            rdns.push(rdn.contents);
            cursor = rdn.rest;
        }
        if n < 2 || n > rdns.len() {
            return Err(malformed("rdn count"));
        }
        let keep = rdns.len() - n;
        let mut new_subject = Vec::new();
        for rdn in &rdns[..keep] {
            new_subject.extend(tlv(SET, rdn));
        }
        // Members stay in the given order (CN first, as real FOCES certificates have it)
        // rather than DER-sorted; X.509 stacks (OpenSSL, webpki, Java, .NET) accept both.
        new_subject.extend(tlv(SET, &rdns[keep..].concat()));

        let mut tbs_contents = before_subject;
        tbs_contents.extend(tlv(SEQUENCE, &new_subject));
        tbs_contents.extend_from_slice(after_subject);
        let new_tbs = tlv(SEQUENCE, &tbs_contents);

        let signature = ca_key.sign(&new_tbs)?;
        let mut bits = vec![0u8];
        bits.extend(signature);

        let mut contents = new_tbs;
        contents.extend_from_slice(algorithm.whole);
        contents.extend(tlv(BIT_STRING, &bits));
        Ok(tlv(SEQUENCE, &contents))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oces3_spec(valid_days: i64) -> ClientSpec {
        ClientSpec {
            name: "Fagsystem Jobcenter Test".into(),
            organisation: "Testleverandør ApS".into(),
            cvr: "91234567".into(),
            shape: CertificateShape::Oces3 {
                uuid: uuid::Uuid::new_v4(),
            },
            valid_days,
        }
    }

    fn ekus(cert: &X509Certificate<'_>) -> (bool, bool) {
        let eku = cert
            .extended_key_usage()
            .expect("eku parses")
            .expect("eku present")
            .value;
        (eku.server_auth, eku.client_auth)
    }

    fn openssl_available() -> bool {
        std::process::Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    #[test]
    fn ca_server_and_client_form_a_chain() {
        let ca = CertificateAuthority::generate("Chain Test CA").expect("ca");
        let (_, ca_cert) = X509Certificate::from_der(ca.cert_der()).expect("ca parses");
        let bc = ca_cert
            .basic_constraints()
            .expect("bc parses")
            .expect("bc present");
        assert!(bc.value.ca);
        let ku = ca_cert.key_usage().expect("ku").expect("ku present").value;
        assert!(ku.key_cert_sign() && ku.crl_sign());
        let ca_ski = ca_cert
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
                _ => None,
            })
            .expect("ca has ski");

        let server = ca
            .issue_server(&["localhost".into(), "127.0.0.1".into()], 30)
            .expect("server");
        let client = ca.issue_client(&oces3_spec(30)).expect("client");
        for (issued, expected_eku) in [(&server, (true, false)), (&client, (false, true))] {
            let (_, cert) = X509Certificate::from_der(&issued.cert_der).expect("parses");
            assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());
            assert_eq!(ekus(&cert), expected_eku);
            let aki = cert
                .iter_extensions()
                .find_map(|e| match e.parsed_extension() {
                    ParsedExtension::AuthorityKeyIdentifier(aki) => {
                        aki.key_identifier.as_ref().map(|k| k.0.to_vec())
                    }
                    _ => None,
                })
                .expect("aki present");
            assert_eq!(aki, ca_ski);
            assert!(cert.validity().is_valid());
        }
        let (_, server_cert) = X509Certificate::from_der(&server.cert_der).expect("parses");
        let sans = server_cert
            .subject_alternative_name()
            .expect("san")
            .expect("san present");
        assert!(sans
            .value
            .general_names
            .iter()
            .any(|n| matches!(n, GeneralName::IPAddress(ip) if *ip == [127, 0, 0, 1])));
        assert!(sans
            .value
            .general_names
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName("localhost"))));
    }

    #[test]
    fn negative_validity_gives_an_expired_certificate() {
        let ca = CertificateAuthority::generate("Expiry Test CA").expect("ca");
        let client = ca.issue_client(&oces3_spec(-3)).expect("client");
        let (_, cert) = X509Certificate::from_der(&client.cert_der).expect("parses");
        let now = OffsetDateTime::now_utc();
        let not_after = cert.validity().not_after.to_datetime();
        let not_before = cert.validity().not_before.to_datetime();
        assert!(not_after < now - Duration::days(2));
        assert!(not_before < not_after);
        assert!(!cert.validity().is_valid());
        assert!(matches!(
            ca.issue_client(&oces3_spec(0)),
            Err(PkiError::InvalidValidity(0))
        ));
    }

    #[test]
    fn invalid_specs_are_refused() {
        let ca = CertificateAuthority::generate("Spec Test CA").expect("ca");
        let mut spec = oces3_spec(1);
        spec.cvr = "1234".into();
        assert!(matches!(
            ca.issue_client(&spec),
            Err(PkiError::InvalidCvr(_))
        ));
        let mut spec = oces3_spec(1);
        spec.shape = CertificateShape::Oces2(Oces2Kind::Fid("12a".into()));
        assert!(matches!(
            ca.issue_client(&spec),
            Err(PkiError::InvalidOces2Number { kind: "FID", .. })
        ));
        assert!(matches!(ca.issue_server(&[], 1), Err(PkiError::NoSans)));
        assert!(matches!(
            ca.issue_server(&["bad name with spaces ø".into()], 1),
            Err(PkiError::InvalidSan(_))
        ));
    }

    #[test]
    fn foces_has_multi_valued_rdn_and_valid_signature() {
        let ca = CertificateAuthority::generate("FOCES Test CA").expect("ca");
        let mut spec = oces3_spec(10);
        spec.shape = CertificateShape::Oces2(Oces2Kind::Fid("1234567890123".into()));
        let client = ca.issue_client(&spec).expect("client");
        let (_, cert) = X509Certificate::from_der(&client.cert_der).expect("parses");
        let rdns: Vec<usize> = cert
            .subject()
            .iter_rdn()
            .map(|r| r.iter().count())
            .collect();
        assert_eq!(rdns, vec![1, 1, 2]);
        let id = CallerIdentity::from_der(&client.cert_der).expect("identity");
        assert_eq!(
            id.subject,
            "CN=Fagsystem Jobcenter Test (funktionscertifikat)+serialNumber=CVR:91234567-FID:1234567890123,\
             O=Testleverandør ApS // CVR:91234567,C=DK"
        );

        if openssl_available() {
            let dir = tempfile::tempdir().expect("tempdir");
            let ca_path = dir.path().join("ca.crt");
            let leaf_path = dir.path().join("leaf.crt");
            fs::write(&ca_path, ca.cert_pem()).expect("write ca");
            fs::write(&leaf_path, &client.cert_pem).expect("write leaf");
            let out = std::process::Command::new("openssl")
                .arg("verify")
                .arg("-CAfile")
                .arg(&ca_path)
                .arg("-purpose")
                .arg("sslclient")
                .arg(&leaf_path)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl verify: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn ca_round_trips_through_pem() {
        let ca = CertificateAuthority::generate("Reload Test CA").expect("ca");
        let reloaded = CertificateAuthority::from_pem(ca.cert_pem(), &ca.key_pem).expect("reload");
        assert_eq!(reloaded.cert_der(), ca.cert_der());
        let client = reloaded.issue_client(&oces3_spec(5)).expect("client");
        let (_, cert) = X509Certificate::from_der(&client.cert_der).expect("parses");
        let (_, ca_cert) = X509Certificate::from_der(ca.cert_der()).expect("parses");
        assert_eq!(cert.issuer().as_raw(), ca_cert.subject().as_raw());

        let other = CertificateAuthority::generate("Other CA").expect("ca");
        assert!(matches!(
            CertificateAuthority::from_pem(ca.cert_pem(), &other.key_pem),
            Err(PkiError::CaKeyMismatch)
        ));
    }

    #[test]
    fn pem_encoding_matches_rcgen() {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec!["x".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        assert_eq!(
            pem_encode("CERTIFICATE", cert.der()).replace("\r\n", "\n"),
            cert.pem().replace("\r\n", "\n")
        );
    }

    #[test]
    fn debug_never_shows_private_keys() {
        let ca = CertificateAuthority::generate("Debug Test CA").expect("ca");
        let client = ca.issue_client(&oces3_spec(5)).expect("client");
        assert!(client.key_pem().contains("PRIVATE KEY"));
        for text in [format!("{ca:?}"), format!("{client:?}")] {
            assert!(!text.contains("PRIVATE KEY"), "{text}");
            assert!(text.contains("[redacted]"));
        }
    }

    #[test]
    fn pkcs12_opens_with_the_password() {
        let ca = CertificateAuthority::generate("P12 Test CA").expect("ca");
        let client = ca.issue_client(&oces3_spec(5)).expect("client");
        let password = random_password();
        let p12 = client.to_pkcs12(&ca, "demo", &password).expect("p12");

        let store = p12_keystore::KeyStore::from_pkcs12(
            &p12,
            &password,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .expect("p12 re-reads");
        let (alias, chain) = store.private_key_chain().expect("key chain");
        assert_eq!(alias, "demo");
        assert_eq!(chain.key().as_der(), client.key_der().as_slice());
        let certs: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
        assert_eq!(certs, vec![client.cert_der.as_slice(), ca.cert_der()]);
        assert!(p12_keystore::KeyStore::from_pkcs12(
            &p12,
            "wrong",
            p12_keystore::Pkcs12ImportPolicy::Relaxed
        )
        .is_err());

        if openssl_available() {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("client.p12");
            fs::write(&path, &p12).expect("write");
            let out = std::process::Command::new("openssl")
                .args(["pkcs12", "-info", "-noout", "-in"])
                .arg(&path)
                .arg("-passin")
                .arg(format!("pass:{password}"))
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "openssl pkcs12: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn random_passwords_are_alphanumeric_and_differ() {
        let a = random_password();
        let b = random_password();
        assert_eq!(a.len(), 20);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
    }

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
        assert_eq!(mode(files.paths.p12.clone()), 0o600);
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
        let p12 = fs::read(&first.client.p12).expect("p12");
        p12_keystore::KeyStore::from_pkcs12(
            &p12,
            DEMO_P12_PASSWORD,
            p12_keystore::Pkcs12ImportPolicy::Relaxed,
        )
        .expect("demo p12 opens");
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
