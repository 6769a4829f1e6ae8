//! The inflater with an output limit: arbitrary compressed input either inflates to at most
//! `LIMIT` bytes or fails with 1007 (bad data) or 1009 (too big), and its buffer never grows
//! past `LIMIT + 1` bytes.
//!
//! The input is cut into two messages (at a point the first byte chooses, which also chooses
//! context takeover), inflated by a plain inflater and by a pooled one (the lean setting,
//! whose state comes from the thread's pool and is rebuilt from the history per message):
//! both must give the same messages, or fail with the same close code at the same message.
#![no_main]

use _core::deflate::Inflater;
use libfuzzer_sys::fuzz_target;

const LIMIT: usize = 64 * 1024;

/// Inflate each message in turn: its bytes, or the close code of the first failure.
fn inflate_messages(
    pooled: bool,
    no_context_takeover: bool,
    messages: [&[u8]; 2],
) -> Vec<Result<Vec<u8>, u16>> {
    let Ok(inflater) = Inflater::new(15, no_context_takeover) else {
        return Vec::new();
    };
    let mut inflater = inflater.pooled(pooled);
    let mut outcomes = Vec::new();
    for message in messages {
        let mut out = Vec::new();
        let result = inflater
            .decompress(message, &mut out, LIMIT)
            .and_then(|()| inflater.finish(&mut out, LIMIT));
        assert!(out.capacity() <= LIMIT + 1, "capacity {}", out.capacity());
        match result {
            Ok(()) => {
                assert!(out.len() <= LIMIT);
                outcomes.push(Ok(out));
            }
            Err(error) => {
                assert!(matches!(error.close_code(), 1007 | 1009), "{error:?}");
                outcomes.push(Err(error.close_code()));
                break;
            }
        }
    }
    outcomes
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, data)) = data.split_first() else {
        return;
    };
    let no_context_takeover = control & 1 != 0;
    // Anywhere in the data, in 128ths of its length.
    let (first, second) = data.split_at(usize::from(control >> 1) * data.len() / 128);
    let plain = inflate_messages(false, no_context_takeover, [first, second]);
    let pooled = inflate_messages(true, no_context_takeover, [first, second]);
    assert_eq!(plain, pooled);
});
