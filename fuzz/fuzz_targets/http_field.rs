//! Header lines against the grammar of RFC 7230 §3.2, written out a second way: any input
//! gives a field or an error, never a panic, and a field's name and value are the parts of
//! the line around its first colon, the value without the whitespace around it.
#![no_main]

use _core::http::{parse_field, FieldError};
use libfuzzer_sys::fuzz_target;

fn tchar(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
        || b"!#$%&'*+-.^_`|~".contains(&b)
}

fuzz_target!(|line: &[u8]| {
    match parse_field(line) {
        Ok((name, value)) => {
            assert!(!name.is_empty() && name.iter().all(|&b| tchar(b)));
            assert_eq!(line.get(name.len()), Some(&b':'));
            let rest = &line[name.len() + 1..];
            let start = rest.iter().position(|&b| b != b' ' && b != b'\t');
            assert_eq!(start.map_or(&rest[rest.len()..], |i| &rest[i..]).starts_with(value), true);
            assert!(value.first().map_or(true, |b| *b != b' ' && *b != b'\t'));
            assert!(value.last().map_or(true, |b| *b != b' ' && *b != b'\t'));
            assert!(value.iter().all(|&b| b == b'\t' || b >= 0x20 && b != 0x7f));
        }
        Err((FieldError::Folded, part)) => assert!(part == line && matches!(line[0], b' ' | b'\t')),
        Err((FieldError::NoColon, part)) => assert!(part == line && !line.contains(&b':')),
        Err((FieldError::Name, part)) => {
            assert!(line.starts_with(part) && line.get(part.len()) == Some(&b':'));
            assert!(part.is_empty() || part.iter().any(|&b| !tchar(b)));
        }
        Err((FieldError::Value, part)) => {
            assert!(part.iter().any(|&b| b != b'\t' && (b < 0x20 || b == 0x7f)));
        }
    }
});
