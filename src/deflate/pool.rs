//! Per-thread pools of zlib-rs states, so that a connection holds no compressor or
//! decompressor between messages when it does not need one.
//!
//! A compressor that keeps nothing from one message to the next (no context takeover, or a
//! "pooled" one that rebuilds its context from the history of the window, see
//! [`Deflater::pooled`](super::Deflater::pooled)) takes a state from this thread's pool at
//! the start of a message and gives it back at its end. The states are reset when taken
//! (`deflateReset` / `inflateReset`), so whatever a state went through before (a message cut
//! short by an error, a connection dropped in the middle of a fragmented message) the next
//! user starts from a fresh stream, and no data of one connection can reach another.
//!
//! Reusing a state instead of allocating one per message saves the allocation and the zeroing
//! of the buffers that `deflateInit2` does (window, chains and hash table: 256 KiB for a
//! 15-bit compressor); `deflateReset` only clears the 128 KiB hash table.
//!
//! Each pool keeps at most [`POOL_SIZE`] idle states per thread, the least recently returned
//! dropped first; a thread uses one state at a time unless messages are sent or received in
//! fragments on several connections at once, which then hold one each. When the pool of the
//! thread is gone (the thread is exiting), states are simply allocated and freed.

use std::cell::RefCell;

use super::stream::RawInflate;
use super::DeflateSettings;

/// Idle states kept per thread, for each kind (compressors, decompressors).
pub const POOL_SIZE: usize = 4;

thread_local! {
    static DEFLATERS: RefCell<Vec<(DeflateSettings, zlib_rs::Deflate)>> =
        const { RefCell::new(Vec::new()) };
    static INFLATERS: RefCell<Vec<(u8, RawInflate)>> = const { RefCell::new(Vec::new()) };
}

/// Take the most recently returned state with `key` from `pool`, if any.
fn take<K: PartialEq, S>(pool: &RefCell<Vec<(K, S)>>, key: &K) -> Option<S> {
    let mut pool = pool.borrow_mut();
    let index = pool.iter().rposition(|(k, _)| k == key)?;
    Some(pool.remove(index).1)
}

/// Keep `state` in `pool`, dropping the oldest state when the pool is full.
fn give<K, S>(pool: &RefCell<Vec<(K, S)>>, key: K, state: S) {
    let mut pool = pool.borrow_mut();
    if pool.len() == POOL_SIZE {
        pool.remove(0);
    }
    pool.push((key, state));
}

/// A compressor for `settings` at the start of a stream: a pooled one, reset, or a new one.
pub fn take_deflate(settings: DeflateSettings) -> zlib_rs::Deflate {
    let pooled = DEFLATERS
        .try_with(|pool| take(pool, &settings))
        .ok()
        .flatten();
    match pooled {
        Some(mut stream) => {
            stream.reset();
            stream
        }
        None => zlib_rs::Deflate::new_with_config(settings.config()),
    }
}

/// Return a compressor taken with [`take_deflate`] (in whatever state it is).
pub fn give_deflate(settings: DeflateSettings, stream: zlib_rs::Deflate) {
    // Without the thread's pool (thread exit) the stream is dropped here.
    let _ = DEFLATERS.try_with(|pool| give(pool, settings, stream));
}

/// A raw decompressor with a `bits`-bit window at the start of a stream: a pooled one,
/// reset (keeping its window buffer), or a new one; `None` if zlib-rs cannot allocate.
pub fn take_inflate(bits: u8) -> Option<RawInflate> {
    let pooled = INFLATERS.try_with(|pool| take(pool, &bits)).ok().flatten();
    // A state zlib refuses to reset (it never does) is dropped for a new one.
    pooled
        .and_then(|mut stream| stream.reset().then_some(stream))
        .or_else(|| RawInflate::new(bits))
}

/// Return a decompressor taken with [`take_inflate`] (in whatever state it is).
pub fn give_inflate(bits: u8, stream: RawInflate) {
    let _ = INFLATERS.try_with(|pool| give(pool, bits, stream));
}

/// Idle compressors and decompressors in this thread's pools.
#[must_use]
pub fn idle_states() -> (usize, usize) {
    (
        DEFLATERS.try_with(|p| p.borrow().len()).unwrap_or(0),
        INFLATERS.try_with(|p| p.borrow().len()).unwrap_or(0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deflate::Deflater;

    fn settings(bits: u8) -> DeflateSettings {
        Deflater::new(6, bits, true).unwrap().settings()
    }

    #[test]
    fn states_are_reused_per_key_and_bounded() {
        std::thread::spawn(|| {
            assert_eq!(idle_states(), (0, 0));
            let a = take_deflate(settings(15));
            give_deflate(settings(15), a);
            assert_eq!(idle_states(), (1, 0));
            // Another key does not match; the same key takes it back.
            let b = take_deflate(settings(10));
            assert_eq!(idle_states(), (1, 0));
            let a = take_deflate(settings(15));
            assert_eq!(idle_states(), (0, 0));
            give_deflate(settings(15), a);
            give_deflate(settings(10), b);
            for _ in 0..POOL_SIZE + 3 {
                give_deflate(settings(12), take_deflate(settings(9)));
            }
            assert_eq!(idle_states(), (POOL_SIZE, 0));
            // The oldest went first: the 15-bit and 10-bit states are gone.
            let pool: Vec<u8> =
                DEFLATERS.with(|p| p.borrow().iter().map(|(s, _)| s.window_bits).collect());
            assert_eq!(pool, vec![12; POOL_SIZE]);

            let inflate = take_inflate(15).unwrap();
            give_inflate(15, inflate);
            assert_eq!(idle_states(), (POOL_SIZE, 1));
            assert!(take_inflate(12).is_some());
            assert_eq!(idle_states().1, 1);
            assert!(take_inflate(15).is_some());
            assert_eq!(idle_states().1, 0);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn pools_are_per_thread() {
        std::thread::spawn(|| {
            give_deflate(settings(15), take_deflate(settings(15)));
            give_inflate(15, take_inflate(15).unwrap());
            assert_eq!(idle_states(), (1, 1));
            std::thread::spawn(|| assert_eq!(idle_states(), (0, 0)))
                .join()
                .unwrap();
            assert_eq!(idle_states(), (1, 1));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_dirty_state_is_reset_when_taken() {
        std::thread::spawn(|| {
            // A compressor left in the middle of a stream (no flush, history in its window).
            let mut stream = take_deflate(settings(15));
            let mut out = [0u8; 64];
            stream
                .compress(b"secret secret", &mut out, zlib_rs::DeflateFlush::NoFlush)
                .unwrap();
            give_deflate(settings(15), stream);
            let mut fresh = Deflater::new(6, 15, true).unwrap();
            let mut compressed = Vec::new();
            fresh.compress(b"Hello", &mut compressed).unwrap();
            // RFC 7692 §7.2.3.1: exactly what a fresh compressor writes.
            assert_eq!(compressed, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);

            // A decompressor left in an error state, then in the middle of a block.
            let mut bad = take_inflate(15).unwrap();
            let mut out = Vec::with_capacity(64);
            assert!(bad.inflate(&[0xff; 8], &mut out).is_err());
            give_inflate(15, bad);
            let mut again = take_inflate(15).unwrap();
            let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
            again.inflate(&hello, &mut out).unwrap();
            assert_eq!(out, b"Hello");
            give_inflate(15, again);
            let mut third = take_inflate(15).unwrap();
            let mut out = Vec::with_capacity(64);
            // A back-reference into the "Hello" of the previous user must fail.
            let back_reference = [0xf2, 0x00, 0x11, 0x00, 0x00, 0x00, 0xff, 0xff];
            assert!(third.inflate(&back_reference, &mut out).is_err());
        })
        .join()
        .unwrap();
    }
}
