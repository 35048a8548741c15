//! The cold part of a call: everything no query filters or sorts on (bodies, headers, findings,
//! TLS details), packed into one blob and compressed with LZ4 against a dictionary.
//!
//! Calls of one operation are nearly the same bytes: the same envelope, namespaces and headers,
//! with a few GUIDs, times and names changed. So the store keeps one dictionary per operation
//! (the first call of it it journaled) and compresses each call against it: a 2.6 KB
//! SaveAvailabilityAssessment request and response become about 130 bytes. A dictionary is
//! never changed once written, so every blob stays readable.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::records::{CallRecord, IdentityFields, Outcome, StoredCall};
use super::schema::from_micros;
use super::{Finding, JournalError};

/// The longest dictionary kept; LZ4 looks back 64 KiB at most, and a call's first kilobytes are
/// what its successors share.
pub const MAX_DICTIONARY: usize = 16 * 1024;

/// A packed blob never unpacks to more than this (a corrupt size must not allocate gigabytes).
const MAX_UNPACKED: usize = 256 * 1024 * 1024;

/// The fields of a call kept only in the blob, as written.
#[derive(Serialize)]
struct ColdRef<'a> {
    peer: &'a str,
    tls_version: &'a str,
    cipher_suite: &'a str,
    alpn: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    soap_version: Option<&'a str>,
    soap_action: Option<&'a str>,
    operation: Option<&'a str>,
    operation_namespace: Option<&'a str>,
    star_headers: Option<&'a serde_json::Value>,
    request_truncated: bool,
    response_truncated: bool,
    receipts: &'a [String],
    outcome: &'a Outcome,
    detail: Option<&'a str>,
    scenario_file: Option<&'a str>,
    scenario_rule: Option<&'a str>,
    service: Option<&'a str>,
    service_operation: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    findings: &'a [Finding],
    supplier: Option<&'a str>,
    authorization: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    identity_findings: &'a [crate::supplier::Finding],
}

/// The same fields, as read back.
#[derive(Deserialize)]
pub struct Cold {
    pub peer: String,
    pub tls_version: String,
    pub cipher_suite: String,
    pub alpn: Option<String>,
    pub method: String,
    pub path: String,
    pub soap_version: Option<String>,
    pub soap_action: Option<String>,
    pub operation: Option<String>,
    pub operation_namespace: Option<String>,
    pub star_headers: Option<serde_json::Value>,
    pub request_truncated: bool,
    pub response_truncated: bool,
    pub receipts: Vec<String>,
    pub outcome: Outcome,
    pub detail: Option<String>,
    pub scenario_file: Option<String>,
    pub scenario_rule: Option<String>,
    pub service: Option<String>,
    pub service_operation: Option<String>,
    #[serde(default)]
    pub findings: Vec<Finding>,
    pub supplier: Option<String>,
    pub authorization: Option<String>,
    #[serde(default)]
    pub identity_findings: Vec<crate::supplier::Finding>,
}

/// [`pack_into`] a new buffer.
pub fn pack(call: &CallRecord) -> Result<Vec<u8>, JournalError> {
    let mut packed = Vec::new();
    pack_into(call, &mut packed)?;
    Ok(packed)
}

/// Packs the cold fields and both bodies into `packed` (cleared first, so that the writer
/// reuses one buffer): `len(json) json len(request) request response`, lengths as 4-byte
/// little-endian.
pub fn pack_into(call: &CallRecord, packed: &mut Vec<u8>) -> Result<(), JournalError> {
    let cold = ColdRef {
        peer: &call.peer,
        tls_version: &call.tls_version,
        cipher_suite: &call.cipher_suite,
        alpn: call.alpn.as_deref(),
        method: &call.method,
        path: &call.path,
        soap_version: call.soap_version.as_deref(),
        soap_action: call.soap_action.as_deref(),
        operation: call.operation.as_deref(),
        operation_namespace: call.operation_namespace.as_deref(),
        star_headers: call.star_headers.as_ref(),
        request_truncated: call.request_truncated,
        response_truncated: call.response_truncated,
        receipts: &call.receipts,
        outcome: &call.outcome,
        detail: call.detail.as_deref(),
        scenario_file: call.scenario_file.as_deref(),
        scenario_rule: call.scenario_rule.as_deref(),
        service: call.service.as_deref(),
        service_operation: call.service_operation.as_deref(),
        findings: &call.findings,
        supplier: call.supplier.as_deref(),
        authorization: call.authorization.as_deref(),
        identity_findings: &call.identity_findings,
    };
    // The JSON goes straight into the buffer after a placeholder for its length.
    packed.clear();
    packed.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut *packed, &cold).map_err(|source| JournalError::Encode {
        what: "call",
        source,
    })?;
    let json_length = part_length(packed.len() - 4)?;
    packed[..4].copy_from_slice(&json_length.to_le_bytes());
    packed.reserve(4 + call.request_body.len() + call.response_body.len());
    push_part(packed, &call.request_body)?;
    packed.extend_from_slice(&call.response_body);
    Ok(())
}

fn part_length(length: usize) -> Result<u32, JournalError> {
    u32::try_from(length).map_err(|_| JournalError::Encode {
        what: "body",
        source: serde::ser::Error::custom("larger than 4 GiB"),
    })
}

fn push_part(packed: &mut Vec<u8>, part: &[u8]) -> Result<(), JournalError> {
    let length = part_length(part.len())?;
    packed.extend_from_slice(&length.to_le_bytes());
    packed.extend_from_slice(part);
    Ok(())
}

/// The cold fields and the two bodies of a packed blob.
pub fn unpack(packed: &[u8]) -> Result<(Cold, Vec<u8>, Vec<u8>), String> {
    let (json, rest) = take_part(packed)?;
    let (request, response) = take_part(rest)?;
    let cold: Cold = serde_json::from_slice(json).map_err(|error| error.to_string())?;
    Ok((cold, request.to_vec(), response.to_vec()))
}

fn take_part(bytes: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let length: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or("truncated blob")?;
    let length = u32::from_le_bytes(length) as usize;
    let part = bytes.get(4..4 + length).ok_or("truncated blob")?;
    Ok((part, &bytes[4 + length..]))
}

/// Compresses `packed` against `dictionary` (empty: none); the unpacked size goes first.
pub fn compress(packed: &[u8], dictionary: &[u8]) -> Vec<u8> {
    let mut blob = Vec::new();
    compress_into(packed, dictionary, &mut blob);
    blob
}

/// [`compress`] into `blob` (replacing what it held), so that the writer reuses one buffer.
pub fn compress_into(packed: &[u8], dictionary: &[u8], blob: &mut Vec<u8>) {
    let size = u32::try_from(packed.len()).unwrap_or(u32::MAX);
    blob.clear();
    blob.resize(
        4 + lz4_flex::block::get_maximum_output_size(packed.len()),
        0,
    );
    blob[..4].copy_from_slice(&size.to_le_bytes());
    // As lz4_flex's own `compress_prepend_size_with_dict`: a dictionary of 3 bytes or fewer
    // is none.
    let written = if dictionary.len() <= 3 {
        lz4_flex::block::compress_into(packed, &mut blob[4..])
    } else {
        lz4_flex::block::compress_into_with_dict(packed, &mut blob[4..], dictionary)
    };
    // The buffer has the room the format can need, so this cannot fail; were it to, the blob
    // would be left empty and its decompression would report it.
    match written {
        Ok(written) => blob.truncate(4 + written),
        Err(_) => blob.clear(),
    }
}

/// Undoes [`compress`].
pub fn decompress(blob: &[u8], dictionary: &[u8]) -> Result<Vec<u8>, String> {
    let size: [u8; 4] = blob
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or("truncated blob")?;
    let size = u32::from_le_bytes(size) as usize;
    if size > MAX_UNPACKED {
        return Err(format!("claims {size} bytes unpacked"));
    }
    let mut out = vec![0; size];
    let written = if dictionary.is_empty() {
        lz4_flex::block::decompress_into(&blob[4..], &mut out)
    } else {
        lz4_flex::block::decompress_into_with_dict(&blob[4..], &mut out, dictionary)
    }
    .map_err(|error| error.to_string())?;
    out.truncate(written);
    Ok(out)
}

/// The dictionary a packed call makes for the calls of its operation after it.
pub fn dictionary_from(packed: &[u8]) -> &[u8] {
    &packed[..packed.len().min(MAX_DICTIONARY)]
}

/// The columns of a stored call as either store reads them: the hot row, the certificate's
/// identity (JSON) and the compressed blob.
pub struct HotParts {
    pub id: i64,
    pub time_us: i64,
    pub http_status: i64,
    pub latency_us: i64,
    pub identity: Option<String>,
    pub data: Vec<u8>,
}

/// A stored call from its columns and the dictionary its blob was compressed with.
pub fn call_from_parts(parts: HotParts, dictionary: &[u8]) -> Result<StoredCall, JournalError> {
    let id = parts.id;
    let corrupt = |column, reason: String| JournalError::Corrupt {
        table: "calls",
        id,
        column,
        reason,
    };
    let time = from_micros(parts.time_us).map_err(|error| corrupt("time_us", error.to_string()))?;
    let identity = parts
        .identity
        .map(|json| serde_json::from_str::<IdentityFields>(&json))
        .transpose()
        .map_err(|error| corrupt("certificate", error.to_string()))?;
    let packed = decompress(&parts.data, dictionary).map_err(|reason| corrupt("data", reason))?;
    let (cold, request_body, response_body) =
        unpack(&packed).map_err(|reason| corrupt("data", reason))?;
    let record = CallRecord {
        time,
        peer: cold.peer,
        tls_version: cold.tls_version,
        cipher_suite: cold.cipher_suite,
        alpn: cold.alpn,
        identity,
        method: cold.method,
        path: cold.path,
        soap_version: cold.soap_version,
        soap_action: cold.soap_action,
        operation: cold.operation,
        operation_namespace: cold.operation_namespace,
        star_headers: cold.star_headers,
        request_body,
        request_truncated: cold.request_truncated,
        response_body,
        response_truncated: cold.response_truncated,
        http_status: u16::try_from(parts.http_status)
            .map_err(|error| corrupt("http_status", error.to_string()))?,
        receipts: cold.receipts,
        outcome: cold.outcome,
        detail: cold.detail,
        latency_micros: u64::try_from(parts.latency_us)
            .map_err(|error| corrupt("latency_us", error.to_string()))?,
        scenario_file: cold.scenario_file,
        scenario_rule: cold.scenario_rule,
        service: cold.service,
        service_operation: cold.service_operation,
        findings: cold.findings,
        supplier: cold.supplier,
        authorization: cold.authorization,
        identity_findings: cold.identity_findings,
    };
    Ok(StoredCall { id, record })
}

/// The value of the `outcome` column.
pub fn outcome_number(outcome: &Outcome) -> i16 {
    match outcome {
        Outcome::Receipt => 0,
        Outcome::Fault { .. } => 1,
        Outcome::Http => 2,
    }
}

/// What one batch changes in a certificate's row.
#[derive(Debug, Clone, Copy)]
pub struct CertificateDelta {
    pub calls: i64,
    pub first_us: i64,
    pub last_us: i64,
    pub latest_receipt: Option<i64>,
    pub latest_passed: Option<i64>,
}

/// Notes in `deltas` what call `id` (of `certificate`, arrived at `time_us`) changes.
pub fn note_call(
    deltas: &mut std::collections::HashMap<i64, CertificateDelta>,
    certificate: i64,
    id: i64,
    time_us: i64,
    call: &CallRecord,
) {
    let delta = deltas.entry(certificate).or_insert(CertificateDelta {
        calls: 0,
        first_us: time_us,
        last_us: time_us,
        latest_receipt: None,
        latest_passed: None,
    });
    delta.calls += 1;
    delta.first_us = delta.first_us.min(time_us);
    delta.last_us = delta.last_us.max(time_us);
    if call.outcome == Outcome::Receipt {
        delta.latest_receipt = delta.latest_receipt.max(Some(id));
        if call.identity_passed() {
            delta.latest_passed = delta.latest_passed.max(Some(id));
        }
    }
}

/// The receipts index key of a GUID: the first 8 bytes of its SHA-256, so the index stays small
/// and fixed-size whatever a scenario writes as a receipt. Collisions are resolved by reading
/// the call's own receipts.
pub fn receipt_key(guid: &str) -> i64 {
    let digest = Sha256::digest(guid.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(first)
}

/// The key of a receipt GUID in the time-ordered index (`receipts_by_time`), if it is a
/// version-7 UUID: its millisecond time (43 bits, good until the year 2248) then 20 of its
/// random bits, so that the receipts of a batch, made moments apart, go to the end of the index.
/// Keys of GUIDs made in the same millisecond may collide; as with [`receipt_key`], the call's
/// own receipts decide.
pub fn receipt_time_key(guid: &str) -> Option<i64> {
    let uuid = uuid::Uuid::try_parse(guid).ok()?;
    if uuid.get_version_num() != 7 {
        return None;
    }
    let bits = uuid.as_u128();
    let millis = (bits >> 80) as u64 & ((1 << 43) - 1);
    let random = bits as u64 & ((1 << 20) - 1);
    i64::try_from(millis << 20 | random).ok()
}

/// The bucket of a receipt key (0..256), the first column of the receipts index.
pub fn receipt_bucket(key: i64) -> i64 {
    key & 0xff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_round_trips_with_and_without_a_dictionary() {
        let packed = b"\x03\0\0\0{}x\x02\0\0\0abcdef".to_vec();
        for dictionary in [&b""[..], b"{}xabcdef and more"] {
            let blob = compress(&packed, dictionary);
            assert_eq!(decompress(&blob, dictionary).unwrap(), packed);
        }
        assert!(decompress(b"\xff\xff\xff\x7f", b"").is_err());
        assert!(decompress(b"\x01", b"").is_err());
    }

    #[test]
    fn compress_into_writes_lz4_flex_s_own_size_prepended_format() {
        let packed = b"\x03\0\0\0{}x\x02\0\0\0abcdef, abcdef and more".to_vec();
        let dictionary = b"{}xabcdef and more";
        let mut blob = vec![1, 2, 3];
        compress_into(&packed, dictionary, &mut blob);
        assert_eq!(
            blob,
            lz4_flex::block::compress_prepend_size_with_dict(&packed, dictionary)
        );
        compress_into(&packed, b"", &mut blob);
        assert_eq!(blob, lz4_flex::block::compress_prepend_size(&packed));
    }

    #[test]
    fn version_7_receipts_are_keyed_in_time_order_and_others_are_not() {
        let first = uuid::Uuid::now_v7().to_string();
        let second = uuid::Uuid::now_v7().to_string();
        let (a, b) = (
            receipt_time_key(&first).unwrap(),
            receipt_time_key(&second).unwrap(),
        );
        assert!(a >> 20 <= b >> 20, "{first} then {second}: keys {a} {b}");
        assert_eq!(receipt_time_key(&first.to_uppercase()), Some(a));
        assert_eq!(receipt_time_key(&uuid::Uuid::new_v4().to_string()), None);
        assert_eq!(
            receipt_time_key("0000000-aaaa-4bbb-8ccc-000000000000"),
            None
        );
        assert_eq!(receipt_time_key("not a GUID"), None);
        // The time in the key is the UUID's own: 2026-12-01T00:00:00Z.
        let millis: u64 = 1_796_083_200_000;
        let made =
            uuid::Uuid::from_u128(u128::from(millis) << 80 | 0x7000 << 64 | 0x8000 << 48 | 5);
        assert_eq!(
            receipt_time_key(&made.to_string()),
            Some((millis << 20 | 5) as i64)
        );
    }

    #[test]
    fn receipt_keys_are_stable() {
        assert_eq!(receipt_key("a"), receipt_key("a"));
        assert_ne!(receipt_key("a"), receipt_key("b"));
    }
}
