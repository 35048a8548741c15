//! Caller identity: who is calling, read once from a (TLS-verified) client certificate.
//!
//! Owns the mapping from an X.509 certificate to STAR's notation of the caller
//! (`CVR:<cvr>-UUID:<uuid>` for OCES3, `CVR:<cvr>-FID:<fid>` and friends for OCES2), the
//! RFC 4514 rendering of subject and issuer names, and the clearly marked fallback
//! (`SHA256:<fingerprint>`) for certificates that are not OCES-shaped. This module does not
//! verify anything: chain and validity checks belong to the TLS layer.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};
use x509_parser::der_parser::asn1_rs::{Any, Class, Tag};
use x509_parser::prelude::{FromDer, X509Certificate, X509Name};

/// OID of the `serialNumber` attribute (X.520), where OCES puts the identifier.
const OID_SERIAL_NUMBER: &str = "2.5.4.5";
/// OID of `organizationIdentifier` (X.520), where OCES3 puts `NTRDK-<cvr>`.
const OID_ORGANIZATION_IDENTIFIER: &str = "2.5.4.97";
const OID_COMMON_NAME: &str = "2.5.4.3";
const OID_ORGANIZATION: &str = "2.5.4.10";

/// The caller as identified by its client certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallerIdentity {
    /// STAR's notation of the caller, or `SHA256:<fingerprint>` when the certificate is not OCES.
    pub caller_id: String,
    /// Which certificate shape the identity was read from.
    pub kind: IdentityKind,
    /// The CVR number (8 digits), when the certificate states one.
    pub cvr: Option<String>,
    /// The first `CN` of the subject.
    pub common_name: Option<String>,
    /// The first `O` of the subject.
    pub organisation: Option<String>,
    /// The subject as RFC 4514 text (most specific RDN first).
    pub subject: String,
    /// The issuer as RFC 4514 text (most specific RDN first).
    pub issuer: String,
    /// Certificate serial number: lowercase hex, no separators, leading zero bytes stripped.
    pub serial: String,
    /// SHA-256 of the certificate DER: lowercase hex, no separators.
    pub fingerprint: String,
    /// Start of the validity period.
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: time::OffsetDateTime,
    /// End of the validity period.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: time::OffsetDateTime,
}

/// The certificate shapes the mock tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// OCES3 organisation or system certificate (`UI:DK-O:G:<uuid>`).
    Oces3Organisation,
    /// OCES3 person certificate (`UI:DK-E:G:<uuid>`).
    Oces3Person,
    /// OCES2 FOCES function certificate (`CVR:<cvr>-FID:<fid>`).
    Oces2Function,
    /// OCES2 VOCES company certificate (`CVR:<cvr>-UID:<uid>`).
    Oces2Company,
    /// OCES2 MOCES employee certificate (`CVR:<cvr>-RID:<rid>`).
    Oces2Employee,
    /// Anything else; the caller is then named by the certificate fingerprint.
    Other,
}

impl IdentityKind {
    /// A short human-readable label, for logs, the dashboard and error messages.
    pub fn label(self) -> &'static str {
        match self {
            IdentityKind::Oces3Organisation => "OCES3 organisation/system",
            IdentityKind::Oces3Person => "OCES3 person",
            IdentityKind::Oces2Function => "OCES2 FOCES (function)",
            IdentityKind::Oces2Company => "OCES2 VOCES (company)",
            IdentityKind::Oces2Employee => "OCES2 MOCES (employee)",
            IdentityKind::Other => "not OCES",
        }
    }
}

/// Why no identity could be read from a certificate.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The bytes are not a DER-encoded X.509 certificate.
    #[error("not a DER-encoded X.509 certificate: {0}")]
    NotCertificate(String),
    /// The certificate is followed by extra bytes.
    #[error("{0} unexpected bytes after the DER-encoded certificate")]
    TrailingData(usize),
}

impl CallerIdentity {
    /// Reads the caller identity from a DER-encoded certificate.
    pub fn from_der(der: &[u8]) -> Result<Self, IdentityError> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| IdentityError::NotCertificate(e.to_string()))?;
        if !rest.is_empty() {
            return Err(IdentityError::TrailingData(rest.len()));
        }

        let fingerprint = hex(&Sha256::digest(der));
        let subject_attributes = attributes(cert.subject());
        let first = |oid: &str| {
            subject_attributes
                .iter()
                .find(|(o, v)| o == oid && v.is_some())
                .and_then(|(_, v)| v.clone())
        };
        let common_name = first(OID_COMMON_NAME);
        let organisation = first(OID_ORGANIZATION);
        let ntrdk_cvr = subject_attributes
            .iter()
            .filter(|(o, _)| o == OID_ORGANIZATION_IDENTIFIER)
            .find_map(|(_, v)| v.as_deref().and_then(parse_ntrdk));
        let oces = subject_attributes
            .iter()
            .filter(|(o, _)| o == OID_SERIAL_NUMBER)
            .find_map(|(_, v)| v.as_deref().and_then(parse_oces_serial));

        let (kind, caller_id, cvr) = match (oces, ntrdk_cvr) {
            (Some(OcesSerial::Oces3 { person, uuid }), Some(cvr)) => {
                let kind = if person {
                    IdentityKind::Oces3Person
                } else {
                    IdentityKind::Oces3Organisation
                };
                (kind, format!("CVR:{cvr}-UUID:{uuid}"), Some(cvr))
            }
            (Some(OcesSerial::Oces2 { kind, cvr, number }), _) => {
                let (kind, tag) = match kind {
                    Oces2Tag::Fid => (IdentityKind::Oces2Function, "FID"),
                    Oces2Tag::Uid => (IdentityKind::Oces2Company, "UID"),
                    Oces2Tag::Rid => (IdentityKind::Oces2Employee, "RID"),
                };
                (kind, format!("CVR:{cvr}-{tag}:{number}"), Some(cvr))
            }
            // An OCES3 UUID without an NTRDK CVR, or nothing OCES at all: fingerprint fallback.
            (_, cvr) => (IdentityKind::Other, format!("SHA256:{fingerprint}"), cvr),
        };

        let raw_serial = cert.raw_serial();
        let significant = raw_serial
            .iter()
            .position(|b| *b != 0)
            .map_or(&raw_serial[raw_serial.len()..], |i| &raw_serial[i..]);
        let serial = if significant.is_empty() {
            "00".to_owned()
        } else {
            hex(significant)
        };

        Ok(CallerIdentity {
            caller_id,
            kind,
            cvr,
            common_name,
            organisation,
            subject: rfc4514(cert.subject()),
            issuer: rfc4514(cert.issuer()),
            serial,
            fingerprint,
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
        })
    }
}

/// The OCES identifier found in a `serialNumber` attribute.
enum OcesSerial {
    Oces3 {
        person: bool,
        uuid: uuid::Uuid,
    },
    Oces2 {
        kind: Oces2Tag,
        cvr: String,
        number: String,
    },
}

enum Oces2Tag {
    Fid,
    Uid,
    Rid,
}

/// Parses `UI:DK-O:G:<uuid>`, `UI:DK-E:G:<uuid>` or `CVR:<cvr>-FID|UID|RID:<number>`,
/// ignoring whitespace and the case of the prefixes.
fn parse_oces_serial(value: &str) -> Option<OcesSerial> {
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(uuid) = strip_prefix_ignore_case(&compact, "UI:DK-O:G:") {
        let uuid = uuid::Uuid::try_parse(uuid).ok()?;
        return Some(OcesSerial::Oces3 {
            person: false,
            uuid,
        });
    }
    if let Some(uuid) = strip_prefix_ignore_case(&compact, "UI:DK-E:G:") {
        let uuid = uuid::Uuid::try_parse(uuid).ok()?;
        return Some(OcesSerial::Oces3 { person: true, uuid });
    }
    let rest = strip_prefix_ignore_case(&compact, "CVR:")?;
    let (cvr, rest) = rest.split_once('-')?;
    if !is_cvr(cvr) {
        return None;
    }
    let (tag, number) = rest.split_once(':')?;
    let kind = match tag.to_ascii_uppercase().as_str() {
        "FID" => Oces2Tag::Fid,
        "UID" => Oces2Tag::Uid,
        "RID" => Oces2Tag::Rid,
        _ => return None,
    };
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    Some(OcesSerial::Oces2 {
        kind,
        cvr: cvr.to_owned(),
        number: number.to_owned(),
    })
}

/// Parses `NTRDK-<cvr>` from an `organizationIdentifier`.
fn parse_ntrdk(value: &str) -> Option<String> {
    let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
    let cvr = strip_prefix_ignore_case(&compact, "NTRDK-")?;
    is_cvr(cvr).then(|| cvr.to_owned())
}

fn is_cvr(value: &str) -> bool {
    value.len() == 8 && value.bytes().all(|b| b.is_ascii_digit())
}

fn strip_prefix_ignore_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// All attributes of a name in DER order: dotted OID and the decoded text, if it is text.
fn attributes(name: &X509Name<'_>) -> Vec<(String, Option<String>)> {
    name.iter_attributes()
        .map(|a| (a.attr_type().to_id_string(), decode_string(a.attr_value())))
        .collect()
}

/// Renders a name as RFC 4514 text: RDNs most specific first, multi-valued RDNs joined by `+`.
pub(crate) fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attribute| {
                    let oid = attribute.attr_type().to_id_string();
                    let value = attribute.attr_value();
                    match (short_name(&oid), decode_string(value)) {
                        (Some(short), Some(text)) => format!("{short}={}", escape(&text)),
                        (Some(short), None) => format!("{short}=#{}", hex(&der_of(value))),
                        (None, _) => format!("{oid}=#{}", hex(&der_of(value))),
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// The attribute type names this mock spells out; others are written as dotted OIDs.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "2.5.4.6" => "C",
        "2.5.4.9" => "STREET",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        "2.5.4.5" => "serialNumber",
        "2.5.4.97" => "organizationIdentifier",
        "1.2.840.113549.1.9.1" => "emailAddress",
        "2.5.4.42" => "GN",
        "2.5.4.4" => "SN",
        "2.5.4.12" => "title",
        _ => return None,
    })
}

/// Decodes the ASN.1 string types used in names; `None` for anything that is not text.
fn decode_string(value: &Any<'_>) -> Option<String> {
    if value.class() != Class::Universal || value.header.is_constructed() {
        return None;
    }
    let data = value.data;
    match value.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_owned),
        // T.61 in practice carries Latin-1 in certificates.
        Tag::T61String => Some(data.iter().map(|b| char::from(*b)).collect()),
        Tag::BmpString => {
            if data.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => {
            if data.len() % 4 != 0 {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

/// Re-encodes an attribute value as DER (for the RFC 4514 `#hex` form).
fn der_of(value: &Any<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.data.len() + 6);
    match value.header.raw_tag() {
        Some(raw) => out.extend_from_slice(raw),
        None => {
            let class_bits = (value.class() as u8) << 6;
            let constructed = if value.header.is_constructed() {
                0x20
            } else {
                0
            };
            let number = value.tag().0;
            if number < 31 {
                // Tag numbers below 31 fit in the low five bits.
                out.push(class_bits | constructed | number as u8);
            } else {
                out.push(class_bits | constructed | 0x1f);
                let mut groups = Vec::new();
                let mut n = number;
                loop {
                    groups.push((n & 0x7f) as u8);
                    n >>= 7;
                    if n == 0 {
                        break;
                    }
                }
                let last = groups.len() - 1;
                for (i, g) in groups.iter().rev().enumerate() {
                    out.push(if i < last { g | 0x80 } else { *g });
                }
            }
        }
    }
    push_der_length(&mut out, value.data.len());
    out.extend_from_slice(value.data);
    out
}

/// Appends a DER definite length.
pub(crate) fn push_der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Escapes an attribute value per RFC 4514 section 2.4.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

/// Lowercase hex without separators.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::{CertificateAuthority, CertificateShape, ClientSpec, Oces2Kind};

    const UUID: &str = "3f2b6c1e-8d4a-4b7e-9c21-5a0e7d9f4b13";

    fn ca() -> CertificateAuthority {
        CertificateAuthority::generate("Identity Test CA").expect("test CA")
    }

    fn client(ca: &CertificateAuthority, shape: CertificateShape) -> CallerIdentity {
        let spec = ClientSpec {
            name: "Fagsystem Jobcenter Test".into(),
            organisation: "Testleverandør ApS".into(),
            cvr: "91234567".into(),
            shape,
            valid_days: 30,
        };
        let issued = ca.issue_client(&spec).expect("client certificate");
        CallerIdentity::from_der(&issued.cert_der).expect("identity")
    }

    fn uuid() -> uuid::Uuid {
        uuid::Uuid::parse_str(UUID).expect("test uuid")
    }

    #[test]
    fn oces3_organisation_certificate_gives_cvr_and_uuid() {
        let ca = ca();
        let id = client(&ca, CertificateShape::Oces3 { uuid: uuid() });
        assert_eq!(id.kind, IdentityKind::Oces3Organisation);
        assert_eq!(id.caller_id, format!("CVR:91234567-UUID:{UUID}"));
        assert_eq!(id.cvr.as_deref(), Some("91234567"));
        assert_eq!(id.common_name.as_deref(), Some("Fagsystem Jobcenter Test"));
        assert_eq!(id.organisation.as_deref(), Some("Testleverandør ApS"));
        assert_eq!(
            id.subject,
            format!(
                "CN=Fagsystem Jobcenter Test,serialNumber=UI:DK-O:G:{UUID},\
                 O=Testleverandør ApS,organizationIdentifier=NTRDK-91234567,C=DK"
            )
        );
        assert_eq!(
            id.issuer,
            "CN=Identity Test CA,OU=Test - dfdg-mock,O=dfdg-mock test PKI,C=DK"
        );
        assert_eq!(id.fingerprint.len(), 64);
        assert!(!id.serial.starts_with("00"));
        assert!(id.not_before < id.not_after);
    }

    #[test]
    fn oces3_person_certificate_is_told_apart() {
        let ca = ca();
        let id = client(&ca, CertificateShape::Oces3Person { uuid: uuid() });
        assert_eq!(id.kind, IdentityKind::Oces3Person);
        assert_eq!(id.caller_id, format!("CVR:91234567-UUID:{UUID}"));
        assert!(id
            .subject
            .contains(&format!("serialNumber=UI:DK-E:G:{UUID}")));
    }

    #[test]
    fn oces2_function_company_and_employee_certificates() {
        let ca = ca();
        let cases = [
            (
                Oces2Kind::Fid("1234567890123".into()),
                IdentityKind::Oces2Function,
                "CVR:91234567-FID:1234567890123",
            ),
            (
                Oces2Kind::Uid("55667788".into()),
                IdentityKind::Oces2Company,
                "CVR:91234567-UID:55667788",
            ),
            (
                Oces2Kind::Rid("42".into()),
                IdentityKind::Oces2Employee,
                "CVR:91234567-RID:42",
            ),
        ];
        for (oces2, kind, caller_id) in cases {
            let id = client(&ca, CertificateShape::Oces2(oces2));
            assert_eq!(id.kind, kind);
            assert_eq!(id.caller_id, caller_id);
            assert_eq!(id.cvr.as_deref(), Some("91234567"));
            assert!(id
                .subject
                .ends_with(",O=Testleverandør ApS // CVR:91234567,C=DK"));
        }
    }

    #[test]
    fn foces_subject_reads_like_domain_example() {
        let ca = ca();
        let id = client(
            &ca,
            CertificateShape::Oces2(Oces2Kind::Fid("1234567890123".into())),
        );
        assert_eq!(
            id.common_name.as_deref(),
            Some("Fagsystem Jobcenter Test (funktionscertifikat)")
        );
    }

    #[test]
    fn plain_certificate_falls_back_to_fingerprint() {
        let ca = ca();
        let server = ca
            .issue_server(&["localhost".to_owned()], 10)
            .expect("server certificate");
        let id = CallerIdentity::from_der(&server.cert_der).expect("identity");
        assert_eq!(id.kind, IdentityKind::Other);
        assert_eq!(id.caller_id, format!("SHA256:{}", id.fingerprint));
        assert_eq!(id.cvr, None);
        assert_eq!(id.subject, "CN=localhost");
        assert_eq!(IdentityKind::Other.label(), "not OCES");
    }

    #[test]
    fn ca_certificate_identity_is_fallback_with_its_own_subject() {
        let ca = ca();
        let id = CallerIdentity::from_der(ca.cert_der()).expect("identity");
        assert_eq!(id.kind, IdentityKind::Other);
        assert_eq!(id.subject, id.issuer);
    }

    #[test]
    fn serial_number_parsing_is_tolerant_and_strict_where_it_matters() {
        assert!(matches!(
            parse_oces_serial(&format!(" ui:dk-o:g: {UUID} ")),
            Some(OcesSerial::Oces3 { person: false, .. })
        ));
        assert!(matches!(
            parse_oces_serial("cvr:91234567 - fid:123"),
            Some(OcesSerial::Oces2 {
                kind: Oces2Tag::Fid,
                ..
            })
        ));
        assert!(parse_oces_serial("CVR:9123-FID:1").is_none());
        assert!(parse_oces_serial("UI:DK-O:G:not-a-uuid").is_none());
        assert!(parse_oces_serial("CVR:91234567-XID:1").is_none());
        assert_eq!(parse_ntrdk("ntrdk-91234567").as_deref(), Some("91234567"));
        assert_eq!(parse_ntrdk("NTRDK-123"), None);
    }

    #[test]
    fn rfc4514_escaping() {
        assert_eq!(
            escape("a,b+c\"d\\e<f>g;h"),
            "a\\,b\\+c\\\"d\\\\e\\<f\\>g\\;h"
        );
        assert_eq!(escape("#x"), "\\#x");
        assert_eq!(escape("x#"), "x#");
        assert_eq!(escape(" x "), "\\ x\\ ");
        assert_eq!(escape("Testleverandør"), "Testleverandør");
    }

    #[test]
    fn escaped_and_non_ascii_subject_from_certificate() {
        let ca = ca();
        let spec = ClientSpec {
            name: "Æbler, Pærer + Blåbær".into(),
            organisation: "#Søstrene \"Grene\" A/S ".into(),
            cvr: "98765432".into(),
            shape: CertificateShape::Oces3 { uuid: uuid() },
            valid_days: 5,
        };
        let issued = ca.issue_client(&spec).expect("client");
        let id = CallerIdentity::from_der(&issued.cert_der).expect("identity");
        assert!(id
            .subject
            .starts_with("CN=Æbler\\, Pærer \\+ Blåbær,serialNumber="));
        assert!(id
            .subject
            .contains(",O=\\#Søstrene \\\"Grene\\\" A/S\\ ,organizationIdentifier="));
        assert_eq!(id.common_name.as_deref(), Some("Æbler, Pærer + Blåbær"));
        assert_eq!(id.caller_id, format!("CVR:98765432-UUID:{UUID}"));
    }

    #[test]
    fn unknown_attribute_is_dotted_with_hex_der() {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CustomDnType(vec![1, 2, 3, 4]), "AB");
        params.distinguished_name.push(
            rcgen::DnType::CustomDnType(vec![2, 5, 4, 97]),
            "NTRDK-91234567",
        );
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let id = CallerIdentity::from_der(cert.der()).expect("identity");
        assert_eq!(
            id.subject,
            "organizationIdentifier=NTRDK-91234567,1.2.3.4=#0c024142"
        );
        // A CVR without an OCES serialNumber: fallback identity, CVR still reported.
        assert_eq!(id.kind, IdentityKind::Other);
        assert_eq!(id.cvr.as_deref(), Some("91234567"));
    }

    #[test]
    fn oces3_uuid_without_cvr_falls_back() {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CustomDnType(vec![2, 5, 4, 5]),
            format!("UI:DK-O:G:{UUID}"),
        );
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("cert");
        let id = CallerIdentity::from_der(cert.der()).expect("identity");
        assert_eq!(id.kind, IdentityKind::Other);
        assert!(id.caller_id.starts_with("SHA256:"));
        assert_eq!(id.cvr, None);
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(matches!(
            CallerIdentity::from_der(b"not a certificate"),
            Err(IdentityError::NotCertificate(_))
        ));
        let ca = ca();
        let mut der = ca.cert_der().to_vec();
        der.push(0);
        assert!(matches!(
            CallerIdentity::from_der(&der),
            Err(IdentityError::TrailingData(1))
        ));
    }

    #[test]
    fn identity_serializes_dates_as_rfc3339() {
        let ca = ca();
        let id = client(&ca, CertificateShape::Oces3 { uuid: uuid() });
        let json = serde_json::to_value(&id).expect("json");
        assert_eq!(json["kind"], "oces3_organisation");
        let not_after = json["not_after"].as_str().expect("string date");
        assert!(not_after.ends_with('Z'), "{not_after}");
        let back: CallerIdentity = serde_json::from_value(json).expect("round trip");
        assert_eq!(back, id);
    }
}
