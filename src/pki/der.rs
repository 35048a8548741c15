//! Minimal DER surgery for what rcgen cannot express: multi-valued RDNs.
//!
//! rcgen writes every subject attribute in its own RDN; OCES2 puts `CN + serialNumber` in one.
//! This module rewrites the subject of a freshly issued certificate and re-signs it.
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
