//! Text encodings at the edges: the bytes of an XML document (a WSDL, an XSD, a request body)
//! turned into text by the rules of XML 1.0 Appendix F (byte order mark, then the encoding the
//! XML declaration names, else UTF-8), and URL percent-decoding. Everything inside the program
//! is UTF-8; everything we answer is UTF-8.
//!
//! Decoded: UTF-8, UTF-16 LE/BE (with a byte order mark, or detected from `<?xml` itself),
//! ISO-8859-1 (exactly: byte n is U+00nn, not the windows-1252 superset browsers use),
//! windows-1252, and every other encoding `encoding_rs` knows by its label (ISO-8859-15, …).
//! An undeclared or wrong encoding is an [`EncodingProblem`] that names the byte offset and line.

use std::borrow::Cow;
use std::fmt;

use encoding_rs::{DecoderResult, Encoding, UTF_16BE, UTF_16LE, UTF_8};

/// Why the bytes of a document are not text in the encoding it declares.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct EncodingProblem {
    /// Byte offset of the first byte that does not decode (0 for a declaration problem).
    pub offset: usize,
    /// 1-based line of that byte.
    pub line: usize,
    pub kind: EncodingProblemKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodingProblemKind {
    /// The bytes are not valid in `encoding`; `declared` says whether a declaration, a byte
    /// order mark or the transport named it (else UTF-8 was assumed).
    Invalid { encoding: &'static str, how: Source },
    /// The declaration names an encoding we do not know.
    Unknown { label: String },
    /// The byte order mark and the declaration disagree.
    Conflict {
        mark: &'static str,
        declared: String,
    },
    /// A 16-bit encoding declared in a document whose bytes are 8-bit, or the reverse.
    WrongWidth {
        declared: String,
        found: &'static str,
    },
    /// UTF-32 and other encodings XML parsers need not support.
    Unsupported { encoding: String },
}

/// What named the encoding a document was decoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Nothing did: UTF-8 is the default.
    Default,
    ByteOrderMark,
    Declaration,
    /// The charset of an HTTP Content-Type.
    Transport,
}

impl fmt::Display for EncodingProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = format!("byte offset {} (line {})", self.offset, self.line);
        match &self.kind {
            EncodingProblemKind::Invalid { encoding, how } => match how {
                Source::Default => write!(
                    f,
                    "not UTF-8 at {at}, and no encoding is declared: save it as UTF-8 or declare its encoding in the XML declaration (e.g. <?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>)"
                ),
                Source::ByteOrderMark => write!(
                    f,
                    "not valid {encoding} at {at}, which its byte order mark announces"
                ),
                Source::Declaration => write!(
                    f,
                    "not valid {encoding} at {at}, the encoding its XML declaration names: fix the declaration or save the file in {encoding}"
                ),
                Source::Transport => write!(
                    f,
                    "not valid {encoding} at {at}, the charset its Content-Type names"
                ),
            },
            EncodingProblemKind::Unknown { label } => write!(
                f,
                "the XML declaration names the unknown encoding '{label}' (use UTF-8, UTF-16, ISO-8859-1 or windows-1252)"
            ),
            EncodingProblemKind::Conflict { mark, declared } => write!(
                f,
                "it starts with a {mark} byte order mark but declares encoding '{declared}'; fix the declaration or drop the mark"
            ),
            EncodingProblemKind::WrongWidth { declared, found } if found.starts_with("16") => {
                write!(
                    f,
                    "it declares encoding '{declared}' but its bytes are {found}; fix the declaration (encoding=\"UTF-16\")"
                )
            }
            EncodingProblemKind::WrongWidth { declared, found } => write!(
                f,
                "it declares encoding '{declared}' but its bytes are {found}; fix the declaration or save it as UTF-16 with a byte order mark"
            ),
            EncodingProblemKind::Unsupported { encoding } => write!(
                f,
                "encoding {encoding} is not supported; save it as UTF-8 or UTF-16"
            ),
        }
    }
}

/// How a document is encoded, as far as its first bytes and declaration tell.
#[derive(Debug, Clone, Copy)]
enum Scheme {
    /// ISO-8859-1 exactly, which `encoding_rs` (following browsers) reads as windows-1252.
    Latin1,
    Other(&'static Encoding),
}

/// Decodes an XML document from `bytes` (a WSDL or XSD file).
pub fn decode_xml(bytes: &[u8]) -> Result<Cow<'_, str>, EncodingProblem> {
    decode_xml_with(bytes, None)
}

/// Decodes an XML document; `charset` is what the transport says (an HTTP Content-Type's
/// charset), which a byte order mark overrides and which overrides the XML declaration.
pub fn decode_xml_with<'a>(
    bytes: &'a [u8],
    charset: Option<&str>,
) -> Result<Cow<'a, str>, EncodingProblem> {
    let problem = |kind| EncodingProblem {
        offset: 0,
        line: 1,
        kind,
    };
    if bytes.starts_with(&[0, 0, 0xFE, 0xFF]) || bytes.starts_with(&[0xFF, 0xFE, 0, 0]) {
        return Err(problem(EncodingProblemKind::Unsupported {
            encoding: "UTF-32".to_owned(),
        }));
    }
    let mark = Encoding::for_bom(bytes);
    // Without a mark, `<?` in 16 bits says UTF-16 (XML 1.0 Appendix F.1).
    let sniffed = match bytes {
        [0x3C, 0, 0x3F, 0, ..] => Some(UTF_16LE),
        [0, 0x3C, 0, 0x3F, ..] => Some(UTF_16BE),
        _ => None,
    };
    let wide = mark.map(|(e, _)| e).or(sniffed).filter(|e| *e != UTF_8);
    let declared = declared_encoding(bytes, wide);
    let (scheme, how, skip) = match (mark, charset, &declared) {
        (Some((encoding, length)), _, declared) => {
            if let Some(declared) = declared {
                let compatible = match lookup(declared) {
                    Some(Scheme::Other(d)) => d == encoding || (is_utf16(encoding) && is_utf16(d)),
                    _ => false,
                };
                if !compatible {
                    return Err(problem(EncodingProblemKind::Conflict {
                        mark: encoding.name(),
                        declared: declared.clone(),
                    }));
                }
            }
            (Scheme::Other(encoding), Source::ByteOrderMark, length)
        }
        (None, Some(charset), _) => {
            let scheme = lookup(charset).ok_or_else(|| {
                problem(EncodingProblemKind::Unknown {
                    label: charset.to_owned(),
                })
            })?;
            match (scheme, sniffed) {
                (Scheme::Other(e), Some(order)) if is_utf16(e) => {
                    (Scheme::Other(order), Source::Transport, 0)
                }
                (scheme, _) => (scheme, Source::Transport, 0),
            }
        }
        (None, None, Some(label)) => {
            let scheme = lookup(label).ok_or_else(|| {
                problem(EncodingProblemKind::Unknown {
                    label: label.clone(),
                })
            })?;
            let utf16 = matches!(scheme, Scheme::Other(e) if is_utf16(e));
            match (sniffed, utf16) {
                // "UTF-16" without a mark, detected from `<?`: take the detected byte order.
                (Some(order), true) => (Scheme::Other(order), Source::Declaration, 0),
                (None, false) => (scheme, Source::Declaration, 0),
                (None, true) => {
                    return Err(problem(EncodingProblemKind::WrongWidth {
                        declared: label.clone(),
                        found: "8-bit, with no byte order mark",
                    }))
                }
                (Some(_), false) => {
                    return Err(problem(EncodingProblemKind::WrongWidth {
                        declared: label.clone(),
                        found: "16-bit (UTF-16)",
                    }))
                }
            }
        }
        (None, None, None) => match sniffed {
            Some(order) => (Scheme::Other(order), Source::Default, 0),
            None => (Scheme::Other(UTF_8), Source::Default, 0),
        },
    };
    let body = &bytes[skip..];
    match scheme {
        Scheme::Latin1 => Ok(Cow::Owned(body.iter().map(|b| char::from(*b)).collect())),
        Scheme::Other(encoding) if encoding == UTF_8 => match std::str::from_utf8(body) {
            Ok(text) => Ok(Cow::Borrowed(text)),
            Err(error) => {
                let valid = &body[..error.valid_up_to()];
                Err(EncodingProblem {
                    offset: skip + error.valid_up_to(),
                    line: valid.iter().filter(|b| **b == b'\n').count() + 1,
                    kind: EncodingProblemKind::Invalid {
                        encoding: UTF_8.name(),
                        how,
                    },
                })
            }
        },
        Scheme::Other(encoding) => decode_strictly(encoding, body, skip, how).map(Cow::Owned),
    }
}

/// The start of a document as text, however it is encoded and wherever it is cut: for a quick
/// look (which SOAP version a broken request meant) before the real decoding.
pub fn decode_head(bytes: &[u8]) -> Cow<'_, str> {
    let wide = match bytes {
        [0xFF, 0xFE, ..] | [0x3C, 0, 0x3F, 0, ..] | [0x3C, 0, ..] => Some(UTF_16LE),
        [0xFE, 0xFF, ..] | [0, 0x3C, 0, 0x3F, ..] | [0, 0x3C, ..] => Some(UTF_16BE),
        _ => None,
    };
    match wide {
        Some(encoding) => encoding.decode_without_bom_handling(bytes).0,
        None => String::from_utf8_lossy(bytes),
    }
}

/// Decodes all of `bytes` with `encoding`, failing at the first malformed sequence.
fn decode_strictly(
    encoding: &'static Encoding,
    bytes: &[u8],
    skip: usize,
    how: Source,
) -> Result<String, EncodingProblem> {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let capacity = decoder
        .max_utf8_buffer_length_without_replacement(bytes.len())
        .unwrap_or(bytes.len() * 3);
    let mut text = String::with_capacity(capacity);
    let (result, read) = decoder.decode_to_string_without_replacement(bytes, &mut text, true);
    match result {
        DecoderResult::InputEmpty => Ok(text),
        DecoderResult::Malformed(bad, unread) => {
            let offset = skip + read - usize::from(bad) - usize::from(unread);
            Err(EncodingProblem {
                offset,
                line: text.matches('\n').count() + 1,
                kind: EncodingProblemKind::Invalid {
                    encoding: encoding.name(),
                    how,
                },
            })
        }
        // The buffer was sized for the worst case.
        DecoderResult::OutputFull => Err(EncodingProblem {
            offset: skip + read,
            line: text.matches('\n').count() + 1,
            kind: EncodingProblemKind::Invalid {
                encoding: encoding.name(),
                how,
            },
        }),
    }
}

fn is_utf16(encoding: &'static Encoding) -> bool {
    encoding == UTF_16LE || encoding == UTF_16BE
}

/// An encoding label → how we decode it.
fn lookup(label: &str) -> Option<Scheme> {
    let label = label.trim();
    let latin1 = [
        "iso-8859-1",
        "iso8859-1",
        "iso_8859-1",
        "iso_8859-1:1987",
        "latin1",
        "latin-1",
        "l1",
        "cp819",
        "ibm819",
        "iso-ir-100",
        "csisolatin1",
    ];
    if latin1.iter().any(|l| l.eq_ignore_ascii_case(label)) {
        return Some(Scheme::Latin1);
    }
    // "UTF-16" names no byte order; the mark or the first bytes give it.
    if label.eq_ignore_ascii_case("utf-16") || label.eq_ignore_ascii_case("utf16") {
        return Some(Scheme::Other(UTF_16LE));
    }
    Encoding::for_label_no_replacement(label.as_bytes()).map(Scheme::Other)
}

/// The `encoding` of the XML declaration at the start of `bytes`, read in ASCII (or in the
/// 16-bit code units of `wide`).
fn declared_encoding(bytes: &[u8], wide: Option<&'static Encoding>) -> Option<String> {
    // Bytes as they are, but for UTF-16, which is decoded first (every request passes here:
    // the usual body is borrowed, not copied).
    let head: Cow<'_, [u8]> = match wide {
        Some(encoding) => {
            let (text, _) = encoding.decode_without_bom_handling(&bytes[..bytes.len().min(1024)]);
            Cow::Owned(text.trim_start_matches('\u{feff}').bytes().collect())
        }
        None => {
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            Cow::Borrowed(&bytes[..bytes.len().min(512)])
        }
    };
    let head = head.strip_prefix(b"<?xml")?;
    if !head.first().is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    let end = head.windows(2).position(|w| w == b"?>")?;
    let declaration = std::str::from_utf8(&head[..end]).ok()?;
    let rest = &declaration[declaration.find("encoding")? + "encoding".len()..];
    let rest = rest.trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].to_owned())
}

/// Percent-decodes a URL path or query component (`+` stays `+`; see [`decode_query_value`]).
pub fn percent_decode(text: &str) -> Result<Cow<'_, str>, PercentProblem> {
    decode_percent(text, false)
}

/// Percent-decodes a query name or value of `application/x-www-form-urlencoded` (`+` is a space).
pub fn decode_query_value(text: &str) -> Result<Cow<'_, str>, PercentProblem> {
    decode_percent(text, true)
}

/// A percent-encoding that does not decode to UTF-8 text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PercentProblem {
    #[error("bad percent-encoding in {0:?} (a % must be followed by two hex digits)")]
    BadEscape(String),
    #[error("{0:?} does not percent-decode to UTF-8 text")]
    NotUtf8(String),
}

fn decode_percent(text: &str, plus_is_space: bool) -> Result<Cow<'_, str>, PercentProblem> {
    if !(text.contains('%') || plus_is_space && text.contains('+')) {
        return Ok(Cow::Borrowed(text));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' => {
                let byte = bytes
                    .get(index + 1..index + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or_else(|| PercentProblem::BadEscape(text.to_owned()))?;
                out.push(byte);
                index += 2;
            }
            byte => out.push(byte),
        }
        index += 1;
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| PercentProblem::NotUtf8(text.to_owned()))
}

/// A request's path (percent-decoded when it decodes to UTF-8) and its query as sent: how the
/// journal records and shows where a call went.
pub fn decoded_path_and_query(uri: &http::Uri) -> String {
    let path = percent_decode(uri.path()).unwrap_or(Cow::Borrowed(uri.path()));
    match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.into_owned(),
    }
}

/// Percent-encodes `text` for a URL query value: unreserved characters stay, everything else
/// (non-ASCII as UTF-8 bytes) becomes `%XX`.
pub fn percent_encode(text: &str) -> Cow<'_, str> {
    let keep = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/');
    if text.bytes().all(keep) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if keep(byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(text: &str, bom: bool) -> Vec<u8> {
        let mut out = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
        out.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        out
    }

    fn utf16be(text: &str) -> Vec<u8> {
        let mut out = vec![0xFE, 0xFF];
        out.extend(text.encode_utf16().flat_map(u16::to_be_bytes));
        out
    }

    #[test]
    fn utf8_with_or_without_mark_and_declaration() {
        assert_eq!(decode_xml(b"<a>\xC3\xA6</a>").unwrap(), "<a>æ</a>");
        assert_eq!(
            decode_xml(b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?><a/>").unwrap(),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><a/>"
        );
        assert!(matches!(decode_xml(b"<a>x</a>").unwrap(), Cow::Borrowed(_)));
    }

    #[test]
    fn utf16_both_byte_orders_with_mark_or_detected() {
        let text = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<påmindelse/>";
        assert_eq!(decode_xml(&utf16le(text, true)).unwrap(), text);
        assert_eq!(decode_xml(&utf16be(text)).unwrap(), text);
        assert_eq!(decode_xml(&utf16le(text, false)).unwrap(), text);
        // A mark and no declaration.
        assert_eq!(decode_xml(&utf16le("<a>ø</a>", true)).unwrap(), "<a>ø</a>");
    }

    #[test]
    fn latin1_is_exact_and_windows_1252_has_its_extras() {
        let latin1 = b"<?xml version='1.0' encoding='ISO-8859-1'?><a>\xE6\xF8\xE5\x80</a>";
        assert_eq!(
            decode_xml(latin1).unwrap(),
            "<?xml version='1.0' encoding='ISO-8859-1'?><a>æøå\u{80}</a>"
        );
        let cp1252 = b"<?xml version=\"1.0\" encoding=\"windows-1252\"?><a>\x80 \xE6</a>";
        assert!(decode_xml(cp1252).unwrap().ends_with("<a>€ æ</a>"));
    }

    #[test]
    fn undeclared_and_wrong_encodings_name_the_offset_and_line() {
        let problem = decode_xml(b"<a>\n<b>\xE6</b></a>").unwrap_err();
        assert_eq!((problem.offset, problem.line), (7, 2));
        assert!(
            problem.to_string().contains("no encoding is declared"),
            "{problem}"
        );

        let problem =
            decode_xml(b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<a>\xFF</a>").unwrap_err();
        assert_eq!((problem.offset, problem.line), (43, 3));
        assert!(
            problem.to_string().contains("its XML declaration names"),
            "{problem}"
        );

        let problem = decode_xml(b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>").unwrap_err();
        assert!(problem.to_string().contains("8-bit"), "{problem}");

        let wrong = utf16le("<?xml version=\"1.0\" encoding=\"UTF-8\"?><a/>", true);
        let problem = decode_xml(&wrong).unwrap_err();
        assert!(problem.to_string().contains("byte order mark"), "{problem}");

        let problem = decode_xml(b"<?xml version=\"1.0\" encoding=\"klingon\"?><a/>").unwrap_err();
        assert!(
            problem.to_string().contains("unknown encoding 'klingon'"),
            "{problem}"
        );

        // A lone surrogate in UTF-16.
        let mut broken = utf16le("<a>", true);
        broken.extend([0x00, 0xD8, 0x41, 0x00]);
        let problem = decode_xml(&broken).unwrap_err();
        assert_eq!(problem.offset, 8, "{problem}");
    }

    #[test]
    fn transport_charset_wins_over_the_declaration_and_a_mark_over_both() {
        let latin1 = b"<?xml version=\"1.0\"?><a>\xE6</a>";
        assert_eq!(
            decode_xml_with(latin1, Some("iso-8859-1")).unwrap(),
            "<?xml version=\"1.0\"?><a>æ</a>"
        );
        assert_eq!(
            decode_xml_with(&utf16le("<a/>", true), Some("utf-8")).unwrap(),
            "<a/>"
        );
        let problem = decode_xml_with(latin1, Some("utf-8")).unwrap_err();
        assert!(problem.to_string().contains("Content-Type"), "{problem}");
    }

    #[test]
    fn percent_decoding_and_encoding() {
        assert_eq!(
            percent_decode("getOIOP%C3%A5mindelseSamlingHent").unwrap(),
            "getOIOPåmindelseSamlingHent"
        );
        assert_eq!(percent_decode("a+b").unwrap(), "a+b");
        assert_eq!(decode_query_value("a+b%20c").unwrap(), "a b c");
        assert!(percent_decode("%zz").is_err());
        assert!(percent_decode("%4").is_err());
        assert!(percent_decode("%ff").is_err());
        assert_eq!(percent_encode("Påmindelse Hent"), "P%C3%A5mindelse%20Hent");
        assert_eq!(percent_encode("common/A.xsd"), "common/A.xsd");
    }
}
