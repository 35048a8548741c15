//! Test PKI: a throw-away CA, server and OCES-shaped client certificates, PKCS#12 bundles.
//!
//! Owns certificate *generation* (with rcgen, ECDSA P-256) in two forms: an in-memory API that
//! integration tests use to build a fresh PKI per test, and a file API (`certs/` by default)
//! used by `dfdg-mock pki init|client` and by `serve` on first start. Private keys never reach
//! `Debug` output or logs, and key files are created with mode 0600.
//!
//! This file holds the in-memory API; `pki/files.rs` the folder layout and file writing
//! (re-exported here), `pki/der.rs` the DER rewrite for OCES2's multi-valued RDN.
//!
//! Reading an identity *from* a certificate is [`crate::identity`]'s job.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::identity::IdentityError;

mod der;
mod files;
mod star;

pub use files::{
    ensure_demo, init, issue_client_files, ClientFiles, ClientPaths, DemoPki, InitReport, PkiPaths,
    DEFAULT_SERVER_SANS, DEMO_CLIENT_STEM, DEMO_P12_PASSWORD,
};
pub use star::{
    ensure_star, issue_webhook_server_files, star_spec, ServerFiles, StarFiles, Thumbprint,
    Thumbprints, STAR_COMMON_NAME, STAR_CVR, STAR_ORGANISATION, STAR_STEM,
};

/// OID 2.5.4.5, X.520 `serialNumber`: the OCES identifier (`UI:DK-O:G:…`, `CVR:…-FID:…`).
const OID_SERIAL_NUMBER: [u64; 4] = [2, 5, 4, 5];
/// OID 2.5.4.97, X.520 `organizationIdentifier`: `NTRDK-<cvr>` in OCES3.
const OID_ORGANIZATION_IDENTIFIER: [u64; 4] = [2, 5, 4, 97];

/// How long a CA made by [`CertificateAuthority::generate`] is valid.
const CA_VALID_DAYS: i64 = 3650;

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
    #[error("client name {0:?} must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', '-', not start with '.', and not be \"ca\", \"server\" or \"star\"")]
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
    /// `friendly_name`, protected as `kind` says.
    pub fn to_pkcs12(
        &self,
        ca: &CertificateAuthority,
        friendly_name: &str,
        password: &str,
        kind: Pkcs12Kind,
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
        let (encryption, mac) = match kind {
            Pkcs12Kind::Modern => (
                EncryptionAlgorithm::PbeWithHmacSha256AndAes256,
                MacAlgorithm::HmacSha256,
            ),
            Pkcs12Kind::Legacy => (
                EncryptionAlgorithm::PbeWithShaAnd3KeyTripleDesCbc,
                MacAlgorithm::HmacSha1,
            ),
        };
        store
            .writer(password)
            .encryption_algorithm(encryption)
            .mac_algorithm(mac)
            .write()
            .map_err(PkiError::Pkcs12)
    }
}

/// How a PKCS#12 file is protected. Every client certificate gets one file of each kind,
/// named for the stacks that open it ([`Pkcs12Kind::opened_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pkcs12Kind {
    /// PBES2 (PBKDF2-HMAC-SHA256, AES-256-CBC) for keys and certificates, HMAC-SHA256 MAC:
    /// OpenSSL 3, Java since 8u301/11.0.12 (keytool, JSSE), .NET 5+ on Linux and macOS.
    /// Mono, .NET Framework and older Windows certificate stores refuse it.
    Modern,
    /// PBE-SHA1-3DES for keys and certificates, HMAC-SHA1 MAC — what `openssl pkcs12
    /// -legacy` writes, with 3DES for the certificates as Windows does: .NET Framework and
    /// the Windows certificate store, Mono, older Java, OpenSSL 1.1 and 3.
    Legacy,
}

impl Pkcs12Kind {
    /// Both kinds, modern first.
    pub const ALL: [Pkcs12Kind; 2] = [Pkcs12Kind::Modern, Pkcs12Kind::Legacy];

    /// What opens it, as put in its file name: `<stem>-<opened_by>.p12`.
    pub fn opened_by(self) -> &'static str {
        match self {
            Pkcs12Kind::Modern => "java",
            Pkcs12Kind::Legacy => "dotnet",
        }
    }

    /// Who should use it, for printed listings.
    pub fn audience(self) -> &'static str {
        match self {
            Pkcs12Kind::Modern => "Java, OpenSSL 3",
            Pkcs12Kind::Legacy => ".NET Framework, Windows, Mono, older Java",
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::CallerIdentity;
    use std::fs;
    use x509_parser::extensions::GeneralName;

    pub(super) fn oces3_spec(valid_days: i64) -> ClientSpec {
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
        for kind in Pkcs12Kind::ALL {
            let p12 = client.to_pkcs12(&ca, "demo", &password, kind).expect("p12");

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
                // openssl prints what protects the file on stderr.
                let info = String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "openssl pkcs12: {info}");
                let expected: &[&str] = match kind {
                    Pkcs12Kind::Modern => &[
                        "MAC: sha256",
                        "PKCS7 Encrypted data: PBES2, PBKDF2, AES-256-CBC",
                        "Shrouded Keybag: PBES2, PBKDF2, AES-256-CBC",
                    ],
                    Pkcs12Kind::Legacy => &[
                        "MAC: sha1",
                        "PKCS7 Encrypted data: pbeWithSHA1And3-KeyTripleDES-CBC",
                        "Shrouded Keybag: pbeWithSHA1And3-KeyTripleDES-CBC",
                    ],
                };
                for line in expected {
                    assert!(info.contains(line), "{kind:?}: no {line:?} in\n{info}");
                }
            }
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
}
