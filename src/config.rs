//! The size thresholds of the fast paths, named once, each with the measurement behind it.
//!
//! This module owns the numbers only: [`crate::reader`], [`crate::writer`] and the Python
//! glue (`src/py/`) apply them. The ones Python needs are also attributes of `wsrs._core`
//! (registered in `lib.rs`, declared in `python/wsrs/_core.pyi`), so the Python layer never
//! repeats a number that must agree with Rust.
//!
//! Not here: constants of the wire format (`frames::MAX_HEADER_LEN`,
//! `frames::MAX_CONTROL_PAYLOAD`) and tuning internal to one kernel (the AVX2 dispatch length
//! in `mask.rs`, the inflater's growth step in `deflate.rs`), which stay beside their code.

/// The size in bytes from which a message takes the large-message paths (64 KiB): a binary
/// message with at least this much payload still to come is received straight into its final
/// `bytes` ([`RECEIVE_IN_PLACE_MIN`]), and the Python layer encodes larger outgoing messages
/// into the reused send buffer (or writes a server's binary payload after its header without a
/// copy) and keeps the C heap warm for them. Exported as `wsrs._core.LARGE_MESSAGE_SIZE`.
pub const LARGE_MESSAGE_SIZE: usize = 64 * 1024;

/// Binary messages with at least this much payload still to come when the transport asks for
/// a buffer are received straight into their final `bytes` (see `Reader.receive_buffer`).
/// It is [`LARGE_MESSAGE_SIZE`], which the Python layer uses for the same decision on the
/// sending side.
pub const RECEIVE_IN_PLACE_MIN: usize = LARGE_MESSAGE_SIZE;

/// Buffers at least this large are masked, inflated or deflated with the GIL released, so other
/// Python threads run meanwhile. Below it, releasing and taking back the GIL (about 1 µs)
/// costs more than it gives: masking 64 KiB takes about 5 µs here. Exported as
/// `wsrs._core.GIL_RELEASE_THRESHOLD`.
pub const GIL_RELEASE_THRESHOLD: usize = 64 * 1024;

/// Send buffers up to this size are kept for the next message; a larger one is freed after
/// its message (the reader keeps its message buffer up to the same size,
/// [`MAX_RECYCLED_CAPACITY`]). Reusing the buffer of a large message avoids a new allocation
/// per message, whose pages glibc gives back and faults in again (measured: client page
/// faults per 1 MiB round trip 250 -> 4, rt-1MiB 645 -> ~1,360 msg/s). Exported as
/// `wsrs._core.MAX_KEPT_SEND_BUFFER`.
pub const MAX_KEPT_SEND_BUFFER: usize = 16 << 20;

/// Largest buffer kept by [`Reader::recycle`](crate::reader::Reader::recycle) for the next
/// message. Reusing the buffer saves a malloc/free pair per message, which glibc turns into
/// page faults (measured: 64 KiB echo round trips went from 7k/s to 12k/s; 1 MiB round trips
/// had ~230 page faults per message on the server with a 128 KiB cap, 7 with this one).
/// [`Reader::compact`](crate::reader::Reader::compact) frees the spare buffer of an idle
/// connection, and the buffer never exceeds `max_size` + 1.
pub const MAX_RECYCLED_CAPACITY: usize = 16 << 20;

/// With a pooled decompressor (the lean setting, [`Inflater::pooled`](
/// crate::deflate::Inflater::pooled)) the reader keeps message buffers up to this size only:
/// an inflated message's buffer starts at 16 KiB, and a busy connection kept one between
/// messages (measured: 15 KiB of the 31 KiB per busy connection with no context takeover,
/// 1 KiB messages). Allocating it per compressed message instead costs a `malloc` that the
/// heap serves from the buffer the last message freed.
pub const LEAN_RECYCLED_CAPACITY: usize = 4 << 10;

/// Largest amount reserved up front for one frame when there is no `max_size`; past that the
/// buffer grows as payload arrives, so a lying length cannot reserve memory by itself. The
/// same bound applies to a message received in place, whose `bytes` is allocated from the
/// header's length.
pub const MAX_UPFRONT_RESERVE: usize = 16 << 20;

/// What a freed compression state counts for in the bytes `Writer.compact` reports (256 KiB,
/// at least what it frees: zlib-rs allocates a fixed 128 KiB hash table per compressor, plus
/// its window and buffers; about 300 KiB at 15-bit windows).
pub const COMPRESSOR_STATE_SIZE: usize = 256 << 10;

/// What one read of the native transport takes at most (1 MiB), into a buffer per thread:
/// the size of the asyncio adapter's receive buffer (`RECEIVE_BUFFER_SIZE` in
/// `python/wsrs/asyncio/base.py`), so both transports read the same chunks and flow control
/// acts between the same reads.
pub const NATIVE_RECEIVE_SIZE: usize = 1 << 20;

/// Masking keys are drawn from the OS CSPRNG in batches of this many bytes: one `getrandom`
/// system call serves 64 frames. RFC 6455 §10.3: keys must not be predictable, so they come
/// from the operating system, never from a seeded PRNG or a counter.
pub const KEY_BATCH: usize = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_agree() {
        // Python splits its sends at LARGE_MESSAGE_SIZE and must agree with receiving in place.
        assert_eq!(RECEIVE_IN_PLACE_MIN, LARGE_MESSAGE_SIZE);
        assert_eq!(LARGE_MESSAGE_SIZE, 65536);
        assert_eq!(GIL_RELEASE_THRESHOLD, 65536);
        // The reader and the writer keep buffers up to the same size.
        assert_eq!(MAX_KEPT_SEND_BUFFER, MAX_RECYCLED_CAPACITY);
        // A large message can be received in place without a `max_size`.
        const { assert!(RECEIVE_IN_PLACE_MIN <= MAX_UPFRONT_RESERVE) };
        // A batch holds whole 4-byte keys.
        const { assert!(KEY_BATCH % 4 == 0 && KEY_BATCH >= 4) };
    }
}
