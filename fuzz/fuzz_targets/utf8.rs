//! Incremental UTF-8 validation against `std::str::from_utf8` on the whole input: fed in
//! pieces, the validator accepts exactly the valid inputs.
#![no_main]

use _core::utf8::{validate, Utf8Validator};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&step, data)) = input.split_first() else {
        return;
    };
    let expected = std::str::from_utf8(data).is_ok();
    assert_eq!(validate(data), expected);
    let step = usize::from(step % 16) + 1;
    let mut validator = Utf8Validator::new();
    let mut ok = true;
    let pieces: Vec<&[u8]> = data.chunks(step).collect();
    for (i, piece) in pieces.iter().enumerate() {
        if validator.feed(piece, i + 1 == pieces.len()).is_err() {
            ok = false;
            break;
        }
    }
    if pieces.is_empty() {
        ok = validator.feed(&[], true).is_ok();
    }
    assert_eq!(ok, expected);
});
