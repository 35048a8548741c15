//! The cold part of a call: everything no query filters or sorts on (bodies, headers, findings,
//! TLS details), packed into one blob and compressed with LZ4 against a dictionary.
//!
//! Calls of one operation are nearly the same bytes: the same envelope, namespaces and headers,
//! with a few GUIDs, times and names changed. So the store keeps one dictionary per operation
//! (the first call of it it journaled) and compresses each call against it: a 2.6 KB
//! SaveAvailabilityAssessment request and response become about 130 bytes. A dictionary is
//! never changed once written, so every blob stays readable.
//!
//! Two forms of the packed cold fields exist: JSON (schema 6, still read) and, since schema 7,
//! a compact binary form written without serde (a profile of the writer showed a sixth of its
//! time in `serde_json` escaping strings). The binary form starts with a 4-byte length no JSON
//! part can have ([`BINARY`]) and a format byte.

use std::collections::HashMap;
use std::sync::Arc;

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

/// Where a JSON-packed blob has the length of its JSON, a binary one has this.
const BINARY: [u8; 4] = [0xff; 4];

/// The binary form's version, after [`BINARY`].
const FORMAT: u8 = 2;

/// Nesting a binary JSON value may have (a corrupt blob must not exhaust the stack).
const MAX_DEPTH: usize = 128;

/// The fields of a call kept only in the blob, as schema 6 wrote them.
#[cfg(test)]
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

/// The dictionaries a store has committed, by operation, shared with the handles that journal
/// through its writer: a caller's thread packs and compresses its own call with them (the data
/// is still in its cache there), and the writer thread only inserts. A dictionary is published
/// only once committed, and a committed one never changes, so a blob made with it stays right.
#[derive(Debug, Default)]
pub struct Compressor {
    dictionaries: std::sync::RwLock<HashMap<String, Dictionary>>,
}

/// A dictionary: its id in the store (0: none) and its bytes.
pub type Dictionary = (i64, Arc<Vec<u8>>);

impl Compressor {
    /// `call`'s cold part, compressed, if its operation's dictionary is known yet.
    pub fn compress(&self, call: &CallRecord) -> Option<super::store::Compressed> {
        let operation = call.operation.as_deref().unwrap_or_default();
        let (dictionary, bytes) = self.dictionaries.read().ok()?.get(operation).cloned()?;
        // Each request thread packs and compresses into buffers of its own that it keeps, and
        // hands on only the blob's own bytes: no large allocation, no zeroing, per call.
        thread_local! {
            static SCRATCH: std::cell::RefCell<(Vec<u8>, Vec<u8>)> = const {
                std::cell::RefCell::new((Vec::new(), Vec::new()))
            };
        }
        let blob = SCRATCH.with_borrow_mut(|(packed, scratch)| {
            pack_into(call, packed).ok()?;
            let blob = compress_into(packed, &bytes, scratch).to_vec();
            // Not kept: what a large body grew.
            if packed.capacity() > super::sqlite::REUSED_BUFFER {
                *packed = Vec::new();
                *scratch = Vec::new();
            }
            Some(blob)
        })?;
        Some(super::store::Compressed {
            dictionary,
            blob,
            user_matches: call.header_names_caller(),
        })
    }

    /// How many dictionaries callers can use.
    pub fn known(&self) -> usize {
        self.dictionaries.read().map_or(0, |map| map.len())
    }

    /// Makes committed dictionaries known.
    pub fn publish<'a>(&self, committed: impl Iterator<Item = (&'a String, &'a Dictionary)>) {
        if let Ok(mut map) = self.dictionaries.write() {
            for (operation, dictionary) in committed {
                map.entry(operation.clone())
                    .or_insert_with(|| dictionary.clone());
            }
        }
    }
}

/// [`pack_into`] a new buffer.
pub fn pack(call: &CallRecord) -> Result<Vec<u8>, JournalError> {
    let mut packed = Vec::new();
    pack_into(call, &mut packed)?;
    Ok(packed)
}

/// Packs the cold fields and both bodies into `packed` (cleared first, so that the writer
/// reuses one buffer), in the binary form: [`BINARY`], [`FORMAT`], the fields in a fixed order
/// (strings and byte strings as a varint length and the bytes, an absent `Option` as length 0
/// and a present one as length + 1), the request body, and the response body to the end.
pub fn pack_into(call: &CallRecord, packed: &mut Vec<u8>) -> Result<(), JournalError> {
    packed.clear();
    packed.reserve(256 + call.request_body.len() + call.response_body.len());
    packed.extend_from_slice(&BINARY);
    packed.push(FORMAT);
    let out = packed;
    put_str(out, &call.peer);
    put_str(out, &call.tls_version);
    put_str(out, &call.cipher_suite);
    put_opt(out, call.alpn.as_deref());
    put_str(out, &call.method);
    put_str(out, &call.path);
    put_opt(out, call.soap_version.as_deref());
    put_opt(out, call.soap_action.as_deref());
    put_opt(out, call.operation.as_deref());
    put_opt(out, call.operation_namespace.as_deref());
    match &call.star_headers {
        None => out.push(0),
        Some(value) => {
            out.push(1);
            put_value(out, value);
        }
    }
    out.push(u8::from(call.request_truncated) | u8::from(call.response_truncated) << 1);
    put_varint(out, call.receipts.len() as u64);
    for receipt in &call.receipts {
        put_str(out, receipt);
    }
    match &call.outcome {
        Outcome::Receipt => out.push(0),
        Outcome::Http => out.push(2),
        Outcome::Fault { code, fault_code } => {
            out.push(1);
            match code {
                None => out.push(0),
                Some(code) => {
                    out.push(1);
                    out.extend_from_slice(&code.to_le_bytes());
                }
            }
            put_str(out, fault_code);
        }
    }
    put_opt(out, call.detail.as_deref());
    put_opt(out, call.scenario_file.as_deref());
    put_opt(out, call.scenario_rule.as_deref());
    put_opt(out, call.service.as_deref());
    put_opt(out, call.service_operation.as_deref());
    put_json_list(out, &call.findings)?;
    put_opt(out, call.supplier.as_deref());
    put_opt(out, call.authorization.as_deref());
    put_json_list(out, &call.identity_findings)?;
    part_length(call.request_body.len())?;
    put_bytes(out, &call.request_body);
    out.extend_from_slice(&call.response_body);
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_bytes(out, text.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        None => out.push(0),
        Some(text) => {
            put_varint(out, text.len() as u64 + 1);
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// Findings are rare and of types that change with their modules: JSON, empty when none.
fn put_json_list<T: Serialize>(out: &mut Vec<u8>, items: &[T]) -> Result<(), JournalError> {
    if items.is_empty() {
        out.push(0);
        return Ok(());
    }
    let json = serde_json::to_vec(items).map_err(|source| JournalError::Encode {
        what: "findings",
        source,
    })?;
    put_bytes(out, &json);
    Ok(())
}

/// A JSON value: a tag byte (0 null, 1 false, 2 true, 3 number as its JSON text, 4 string,
/// 5 array, 6 object), then its contents.
fn put_value(out: &mut Vec<u8>, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => out.push(0),
        Value::Bool(false) => out.push(1),
        Value::Bool(true) => out.push(2),
        Value::Number(number) => {
            out.push(3);
            put_str(out, &number.to_string());
        }
        Value::String(text) => {
            out.push(4);
            put_str(out, text);
        }
        Value::Array(items) => {
            out.push(5);
            put_varint(out, items.len() as u64);
            for item in items {
                put_value(out, item);
            }
        }
        Value::Object(map) => {
            out.push(6);
            put_varint(out, map.len() as u64);
            for (key, item) in map {
                put_str(out, key);
                put_value(out, item);
            }
        }
    }
}

/// Reads the binary form back, field by field.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let (&first, rest) = self.bytes.split_first().ok_or("truncated blob")?;
        self.bytes = rest;
        Ok(first)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("overlong length".to_owned())
    }

    fn take(&mut self, length: u64) -> Result<&'a [u8], String> {
        let length = usize::try_from(length).map_err(|_| "length too large")?;
        if length > self.bytes.len() {
            return Err("truncated blob".to_owned());
        }
        let (part, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Ok(part)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let length = self.varint()?;
        self.take(length)
    }

    fn text(part: &[u8]) -> Result<String, String> {
        String::from_utf8(part.to_vec()).map_err(|error| error.to_string())
    }

    fn string(&mut self) -> Result<String, String> {
        Self::text(self.bytes()?)
    }

    fn opt(&mut self) -> Result<Option<String>, String> {
        match self.varint()? {
            0 => Ok(None),
            length => Self::text(self.take(length - 1)?).map(Some),
        }
    }

    fn json_list<T: serde::de::DeserializeOwned>(&mut self) -> Result<Vec<T>, String> {
        let json = self.bytes()?;
        if json.is_empty() {
            return Ok(Vec::new());
        }
        serde_json::from_slice(json).map_err(|error| error.to_string())
    }

    /// Steps over a value of [`Reader::value`]'s form without building it.
    fn skip_value(&mut self, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err("JSON nested too deeply".to_owned());
        }
        match self.byte()? {
            0..=2 => {}
            3 | 4 => {
                self.bytes()?;
            }
            5 => {
                for _ in 0..self.varint()? {
                    self.skip_value(depth + 1)?;
                }
            }
            6 => {
                for _ in 0..self.varint()? {
                    self.bytes()?;
                    self.skip_value(depth + 1)?;
                }
            }
            tag => return Err(format!("unknown JSON tag {tag}")),
        }
        Ok(())
    }

    /// Steps over an [`Reader::opt`] field.
    fn skip_opt(&mut self) -> Result<(), String> {
        match self.varint()? {
            0 => Ok(()),
            length => self.take(length - 1).map(drop),
        }
    }

    fn value(&mut self, depth: usize) -> Result<serde_json::Value, String> {
        use serde_json::Value;
        if depth > MAX_DEPTH {
            return Err("JSON nested too deeply".to_owned());
        }
        Ok(match self.byte()? {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => Value::Number(
                self.string()?
                    .parse()
                    .map_err(|error: serde_json::Error| error.to_string())?,
            ),
            4 => Value::String(self.string()?),
            5 => {
                let count = self.varint()?;
                let mut items = Vec::new();
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::Array(items)
            }
            6 => {
                let count = self.varint()?;
                let mut map = serde_json::Map::new();
                for _ in 0..count {
                    let key = self.string()?;
                    map.insert(key, self.value(depth + 1)?);
                }
                Value::Object(map)
            }
            tag => return Err(format!("unknown JSON tag {tag}")),
        })
    }
}

/// The binary form after [`BINARY`].
fn unpack_binary(bytes: &[u8]) -> Result<(Cold, Vec<u8>, Vec<u8>), String> {
    let mut r = Reader { bytes };
    let cold = read_head(&mut r)?;
    let (flags, receipts) = read_receipts(&mut r)?;
    let outcome = match r.byte()? {
        0 => Outcome::Receipt,
        2 => Outcome::Http,
        1 => {
            let code = match r.byte()? {
                0 => None,
                _ => Some(i64::from_le_bytes(
                    r.take(8)?.try_into().map_err(|_| "truncated blob")?,
                )),
            };
            Outcome::Fault {
                code,
                fault_code: r.string()?,
            }
        }
        tag => return Err(format!("unknown outcome {tag}")),
    };
    let cold = Cold {
        request_truncated: flags & 1 != 0,
        response_truncated: flags & 2 != 0,
        receipts,
        outcome,
        detail: r.opt()?,
        scenario_file: r.opt()?,
        scenario_rule: r.opt()?,
        service: r.opt()?,
        service_operation: r.opt()?,
        findings: r.json_list()?,
        supplier: r.opt()?,
        authorization: r.opt()?,
        identity_findings: r.json_list()?,
        ..cold
    };
    let request = r.bytes()?.to_vec();
    Ok((cold, request, r.bytes.to_vec()))
}

/// The fields of the binary form before its flags and receipts (the format byte first).
fn read_head(r: &mut Reader<'_>) -> Result<Cold, String> {
    let format = r.byte()?;
    if format != FORMAT {
        return Err(format!("unknown blob format {format}"));
    }
    Ok(Cold {
        peer: r.string()?,
        tls_version: r.string()?,
        cipher_suite: r.string()?,
        alpn: r.opt()?,
        method: r.string()?,
        path: r.string()?,
        soap_version: r.opt()?,
        soap_action: r.opt()?,
        operation: r.opt()?,
        operation_namespace: r.opt()?,
        star_headers: match r.byte()? {
            0 => None,
            _ => Some(r.value(0)?),
        },
        request_truncated: false,
        response_truncated: false,
        receipts: Vec::new(),
        outcome: Outcome::Http,
        detail: None,
        scenario_file: None,
        scenario_rule: None,
        service: None,
        service_operation: None,
        findings: Vec::new(),
        supplier: None,
        authorization: None,
        identity_findings: Vec::new(),
    })
}

/// Steps over [`read_head`]'s fields, building none of them: all a pruning step wants of them.
fn skip_head(r: &mut Reader<'_>) -> Result<(), String> {
    let format = r.byte()?;
    if format != FORMAT {
        return Err(format!("unknown blob format {format}"));
    }
    // peer, TLS version, cipher suite; ALPN; method, path; SOAP version, SOAPAction,
    // operation and its namespace; then the STAR headers.
    for _ in 0..3 {
        r.bytes()?;
    }
    r.skip_opt()?;
    for _ in 0..2 {
        r.bytes()?;
    }
    for _ in 0..4 {
        r.skip_opt()?;
    }
    if r.byte()? != 0 {
        r.skip_value(0)?;
    }
    Ok(())
}

/// The flags and receipts that follow [`read_head`]'s fields.
fn read_receipts(r: &mut Reader<'_>) -> Result<(u8, Vec<String>), String> {
    let flags = r.byte()?;
    let count = r.varint()?;
    let mut receipts = Vec::new();
    for _ in 0..count {
        receipts.push(r.string()?);
    }
    Ok((flags, receipts))
}

/// The receipts of a stored call from its compressed blob alone, without its bodies and the
/// fields after them: what a pruning step needs of each call it removes.
pub fn receipts_from_data(data: &[u8], dictionary: &[u8]) -> Result<Vec<String>, String> {
    let packed = decompress(data, dictionary)?;
    match packed.strip_prefix(&BINARY) {
        Some(binary) => {
            let mut r = Reader { bytes: binary };
            skip_head(&mut r)?;
            Ok(read_receipts(&mut r)?.1)
        }
        None => Ok(unpack(&packed)?.0.receipts),
    }
}

/// Packs `call` as schema 6 did (JSON): for tests that make its blobs.
#[cfg(test)]
pub fn pack_json(call: &CallRecord) -> Result<Vec<u8>, JournalError> {
    let mut packed = Vec::new();
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
    packed.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut packed, &cold).map_err(|source| JournalError::Encode {
        what: "call",
        source,
    })?;
    let json_length = part_length(packed.len() - 4)?;
    packed[..4].copy_from_slice(&json_length.to_le_bytes());
    packed.reserve(4 + call.request_body.len() + call.response_body.len());
    push_part(&mut packed, &call.request_body)?;
    packed.extend_from_slice(&call.response_body);
    Ok(packed)
}

fn part_length(length: usize) -> Result<u32, JournalError> {
    u32::try_from(length).map_err(|_| JournalError::Encode {
        what: "body",
        source: serde::ser::Error::custom("larger than 4 GiB"),
    })
}

#[cfg(test)]
fn push_part(packed: &mut Vec<u8>, part: &[u8]) -> Result<(), JournalError> {
    let length = part_length(part.len())?;
    packed.extend_from_slice(&length.to_le_bytes());
    packed.extend_from_slice(part);
    Ok(())
}

/// The cold fields and the two bodies of a packed blob, in either form.
pub fn unpack(packed: &[u8]) -> Result<(Cold, Vec<u8>, Vec<u8>), String> {
    if let Some(binary) = packed.strip_prefix(&BINARY) {
        return unpack_binary(binary);
    }
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
    compress_into(packed, dictionary, &mut Vec::new()).to_vec()
}

/// [`compress`] into `blob`, a buffer kept from call to call, and returns the blob's part of it.
/// The buffer is only ever grown (LZ4 writes into initialised bytes, so growing zeroes them), so
/// a buffer in reuse costs no zeroing per call.
pub fn compress_into<'b>(packed: &[u8], dictionary: &[u8], blob: &'b mut Vec<u8>) -> &'b [u8] {
    let size = u32::try_from(packed.len()).unwrap_or(u32::MAX);
    let room = 4 + lz4_flex::block::get_maximum_output_size(packed.len());
    if blob.len() < room {
        blob.resize(room, 0);
    }
    let blob = &mut blob[..room];
    blob[..4].copy_from_slice(&size.to_le_bytes());
    keep_table_pages();
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
        Ok(written) => &blob[..4 + written],
        Err(_) => &[],
    }
}

/// LZ4 allocates its hash table (8 KiB, or 16 KiB when the dictionary and the input pass
/// 64 KiB) for each compression and frees it after. On its own in an allocator page, that page
/// empties each time and goes back to the system at once (`memory::configure`), to be faulted
/// in again by the next call: madvise with its TLB shootdowns and page faults were 12 % of the
/// server's CPU under keep-alive load. A block of each size held by every compressing thread
/// keeps those pages from emptying.
fn keep_table_pages() {
    thread_local! {
        static KEPT: (Box<[u16; 4096]>, Box<[u32; 4096]>) = (Box::new([0; 4096]), Box::new([0; 4096]));
    }
    KEPT.with(|_| ());
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
        identity: identity.map(std::sync::Arc::new),
        method: cold.method,
        path: cold.path,
        soap_version: cold.soap_version,
        soap_action: cold.soap_action,
        operation: cold.operation,
        operation_namespace: cold.operation_namespace,
        star_headers: cold.star_headers,
        request_body: request_body.into(),
        request_truncated: cold.request_truncated,
        response_body: response_body.into(),
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
        // A buffer in reuse, longer than the blob and holding other bytes.
        let mut blob = vec![1; 500];
        assert_eq!(
            compress_into(&packed, dictionary, &mut blob),
            lz4_flex::block::compress_prepend_size_with_dict(&packed, dictionary)
        );
        assert_eq!(
            compress_into(&packed, b"", &mut blob),
            lz4_flex::block::compress_prepend_size(&packed)
        );
        assert_eq!(
            compress_into(&packed, dictionary, &mut Vec::new()),
            lz4_flex::block::compress_prepend_size_with_dict(&packed, dictionary)
        );
    }

    fn every_field(faulted: bool) -> CallRecord {
        CallRecord {
            time: time::OffsetDateTime::UNIX_EPOCH,
            peer: "127.0.0.1:40001".to_owned(),
            tls_version: "TLSv1.3".to_owned(),
            cipher_suite: "TLS13_AES_256_GCM_SHA384".to_owned(),
            alpn: faulted.then(|| "h2".to_owned()),
            identity: None,
            method: "POST".to_owned(),
            path: "/JobcenterMessageService/2/X.svc?x=1".to_owned(),
            soap_version: Some("1.1".to_owned()),
            soap_action: (!faulted).then(|| "urn:x#Op".to_owned()),
            operation: Some("Op".to_owned()),
            operation_namespace: Some("urn:x".to_owned()),
            star_headers: Some(serde_json::json!({
                "request_user": { "user_identifier": "CVR:1-UUID:æøå \"q\"", "n": [1, 2.5, -3, null, true, false, {}] },
                "empty": ""
            })),
            request_body: "<s:Envelope>æ</s:Envelope>".as_bytes().to_vec().into(),
            request_truncated: faulted,
            response_body: b"<s:Envelope>ok</s:Envelope>".to_vec().into(),
            response_truncated: !faulted,
            http_status: 200,
            receipts: if faulted {
                Vec::new()
            } else {
                vec!["a".to_owned(), String::new()]
            },
            outcome: if faulted {
                Outcome::Fault {
                    code: Some(-1014),
                    fault_code: "Client".to_owned(),
                }
            } else {
                Outcome::Receipt
            },
            detail: faulted.then(|| "not valid: é".to_owned()),
            latency_micros: 1,
            scenario_file: Some(String::new()),
            scenario_rule: None,
            service: Some("JobcenterMessageService".to_owned()),
            service_operation: Some("Op".to_owned()),
            findings: if faulted {
                vec![Finding {
                    path: "/Op/A".to_owned(),
                    expected: "an int".to_owned(),
                    found: "x".to_owned(),
                }]
            } else {
                Vec::new()
            },
            supplier: Some("Leverandør".to_owned()),
            authorization: faulted.then(|| "refused 1013".to_owned()),
            identity_findings: Vec::new(),
        }
    }

    fn cold_of(call: &CallRecord, packed: &[u8]) -> CallRecord {
        let (cold, request_body, response_body) = unpack(packed).unwrap();
        CallRecord {
            peer: cold.peer,
            tls_version: cold.tls_version,
            cipher_suite: cold.cipher_suite,
            alpn: cold.alpn,
            method: cold.method,
            path: cold.path,
            soap_version: cold.soap_version,
            soap_action: cold.soap_action,
            operation: cold.operation,
            operation_namespace: cold.operation_namespace,
            star_headers: cold.star_headers,
            request_body: request_body.into(),
            request_truncated: cold.request_truncated,
            response_body: response_body.into(),
            response_truncated: cold.response_truncated,
            receipts: cold.receipts,
            outcome: cold.outcome,
            detail: cold.detail,
            scenario_file: cold.scenario_file,
            scenario_rule: cold.scenario_rule,
            service: cold.service,
            service_operation: cold.service_operation,
            findings: cold.findings,
            supplier: cold.supplier,
            authorization: cold.authorization,
            identity_findings: cold.identity_findings,
            ..call.clone()
        }
    }

    #[test]
    fn the_binary_form_round_trips_every_field_and_json_blobs_of_schema_6_still_read() {
        for faulted in [false, true] {
            let call = every_field(faulted);
            let packed = pack(&call).unwrap();
            assert!(packed.starts_with(&BINARY));
            assert_eq!(cold_of(&call, &packed), call, "binary");
            let json = pack_json(&call).unwrap();
            assert_eq!(json[4], b'{');
            assert_eq!(cold_of(&call, &json), call, "JSON");
        }
        let packed = pack(&every_field(true)).unwrap();
        for end in 0..packed.len() - b"<s:Envelope>ok</s:Envelope>".len() {
            assert!(unpack(&packed[..end]).is_err(), "cut at {end}");
        }
        let mut other = packed.clone();
        other[4] = 9;
        assert!(unpack(&other).is_err());
    }

    #[test]
    fn a_calls_receipts_are_read_from_its_compressed_blob_alone_in_either_form() {
        // Either way round the optional fields, stepped over unread.
        for faulted in [false, true] {
            let call = CallRecord {
                receipts: vec!["a".to_owned(), String::new()],
                ..every_field(faulted)
            };
            for packed in [pack(&call).unwrap(), pack_json(&call).unwrap()] {
                for dictionary in [&b""[..], dictionary_from(&packed)] {
                    let blob = compress(&packed, dictionary);
                    assert_eq!(
                        receipts_from_data(&blob, dictionary).unwrap(),
                        call.receipts
                    );
                }
            }
        }
        let call = every_field(false);
        let blob = compress(&pack(&call).unwrap()[..40], b"");
        assert!(receipts_from_data(&blob, b"").is_err(), "a cut blob");
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
