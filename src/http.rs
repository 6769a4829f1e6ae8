//! The header fields of the opening handshake's HTTP/1.1 messages (RFC 7230 §3.2), checked
//! and split without I/O and without Python.
//!
//! Owns the grammar of one header line once the head is split into lines:
//! `header-field = field-name ":" OWS field-value OWS`, where `field-name` is a token and
//! `field-value` is made of visible characters, spaces, tabs and obs-text. No obsolete line
//! folding. `python/wsrs/http11.py` splits the head and turns a [`FieldError`] into its
//! `InvalidMessage`; `python/wsrs/datastructures.py` states the same grammar for headers
//! that wsrs writes. Never panics: every input gives a field or an error.

/// Why a header line is not a valid header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldError {
    /// The line starts with a space or a tab: obsolete line folding (RFC 7230 §3.2.4).
    Folded,
    /// The line has no colon.
    NoColon,
    /// The name is empty or not a token (no whitespace before the colon either).
    Name,
    /// The value has a control character (other than tab) or DEL.
    Value,
}

/// A header field: its name and its value.
pub type Field<'a> = (&'a [u8], &'a [u8]);

/// Why a header line is refused, and the part of it concerned.
pub type Refused<'a> = (FieldError, &'a [u8]);

/// Whether `byte` is a `tchar` (RFC 7230 §3.2.6).
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Whether `byte` may appear in a field value: `VCHAR`, `obs-text`, space or tab.
fn is_value_byte(byte: u8) -> bool {
    byte == b'\t' || (0x20..0x7f).contains(&byte) || byte >= 0x80
}

/// `bytes` without the spaces and tabs at both ends (RFC 7230 §3.2.3: OWS).
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// The name and value of the header line `line` (without its CRLF), the value without the
/// optional whitespace around it; or the part that is wrong, with why.
///
/// # Errors
///
/// The [`FieldError`] of the first rule `line` breaks, in the order of the variants, with
/// the part it concerns: the whole line, the name, or the value.
pub fn parse_field(line: &[u8]) -> Result<Field<'_>, Refused<'_>> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err((FieldError::Folded, line));
    }
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return Err((FieldError::NoColon, line));
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().copied().all(is_tchar) {
        return Err((FieldError::Name, name));
    }
    let value = trim_ows(value);
    if !value.iter().copied().all(is_value_byte) {
        return Err((FieldError::Value, value));
    }
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_name_and_value() {
        assert_eq!(
            parse_field(b"Host: example.com"),
            Ok((&b"Host"[..], &b"example.com"[..]))
        );
        assert_eq!(parse_field(b"X-Empty:"), Ok((&b"X-Empty"[..], &b""[..])));
        assert_eq!(
            parse_field(b"X:  \t a \t b\t "),
            Ok((&b"X"[..], &b"a \t b"[..]))
        );
        assert_eq!(parse_field(b"X: \t "), Ok((&b"X"[..], &b""[..])));
        // obs-text and a colon in the value are fine.
        assert_eq!(
            parse_field(b"X: caf\xe9: yes"),
            Ok((&b"X"[..], &b"caf\xe9: yes"[..]))
        );
        assert_eq!(
            parse_field(b"!#$%&'*+-.^_`|~09azAZ:v"),
            Ok((&b"!#$%&'*+-.^_`|~09azAZ"[..], &b"v"[..]))
        );
    }

    #[test]
    fn refuses_folding() {
        assert_eq!(
            parse_field(b" folded"),
            Err((FieldError::Folded, &b" folded"[..]))
        );
        assert_eq!(
            parse_field(b"\tX: y"),
            Err((FieldError::Folded, &b"\tX: y"[..]))
        );
    }

    #[test]
    fn refuses_a_line_without_colon() {
        assert_eq!(parse_field(b""), Err((FieldError::NoColon, &b""[..])));
        assert_eq!(
            parse_field(b"Host"),
            Err((FieldError::NoColon, &b"Host"[..]))
        );
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(parse_field(b": v"), Err((FieldError::Name, &b""[..])));
        assert_eq!(
            parse_field(b"Host : v"),
            Err((FieldError::Name, &b"Host "[..]))
        );
        assert_eq!(
            parse_field(b"A(b): v"),
            Err((FieldError::Name, &b"A(b)"[..]))
        );
        assert_eq!(
            parse_field(b"\xe9: v"),
            Err((FieldError::Name, &b"\xe9"[..]))
        );
    }

    #[test]
    fn refuses_control_characters_in_values() {
        for bad in [0u8, 0x0a, 0x0d, 0x1f, 0x7f] {
            let line = [b'X', b':', b' ', b'a', bad, b'b'];
            assert_eq!(parse_field(&line), Err((FieldError::Value, &line[3..])));
        }
    }
}
