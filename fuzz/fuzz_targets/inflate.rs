//! The inflater with an output limit: arbitrary compressed input either inflates to at most
//! `LIMIT` bytes or fails with 1007 (bad data) or 1009 (too big), and its buffer never grows
//! past `LIMIT + 1` bytes.
#![no_main]

use _core::deflate::Inflater;
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Ok(mut inflater) = Inflater::new(15, false) else {
        return;
    };
    let mut out = Vec::new();
    let result = inflater
        .decompress(data, &mut out, LIMIT)
        .and_then(|()| inflater.finish(&mut out, LIMIT));
    assert!(out.capacity() <= LIMIT + 1, "capacity {}", out.capacity());
    match result {
        Ok(()) => assert!(out.len() <= LIMIT),
        Err(error) => assert!(matches!(error.close_code(), 1007 | 1009), "{error:?}"),
    }
});
