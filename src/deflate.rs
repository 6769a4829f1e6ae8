//! permessage-deflate codec (RFC 7692 §7) on zlib-rs: its zlib-compatible API (`libz-rs-sys`)
//! for inflating, which tells where blocks end, and `zlib_rs::Deflate` for deflating, which
//! `memLevel` needs.
//!
//! - Compressing: raw DEFLATE with a sync flush, then the `00 00 ff ff` tail that the flush
//!   leaves is removed (§7.2.1).
//! - Decompressing: the tail is put back after the last frame of a message (§7.2.2), and the
//!   output is bounded: [`Inflater::decompress`] never holds more than `limit + 1` bytes of
//!   output, so a tiny "decompression bomb" fails with 1009 without allocating past the limit.
//! - Context takeover: when a direction has `no_context_takeover`, its compressor or
//!   decompressor is reset after every message (§7.1.1).
//! - Window bits: 9 to 15. zlib (and so zlib-rs) cannot compress raw DEFLATE with a 256-byte
//!   window, so a requested 8 becomes 9 here. For the inflater a window larger than the
//!   peer's is always safe; for the deflater it is not, so the negotiation layer must not
//!   agree to compress with 8 bits.
//!
//! - Idle connections: with context takeover, both types keep the last window of data (the
//!   "history", at most `2^max_window_bits` bytes) besides the zlib state, and
//!   [`Deflater::compact`] / [`Inflater::compact`] free the state (about 300 KiB for a 15-bit
//!   compressor with zlib-rs, 40 KiB for a decompressor) while keeping only the history. The
//!   next message rebuilds the state and primes it with the history as a preset dictionary
//!   (`deflateSetDictionary` / `inflateSetDictionary` on a raw stream), so the peer's window and
//!   ours stay identical: the compressor may refer back into it exactly as before.
//!
//! - Busy connections: a zlib state that nothing needs between messages goes back to a
//!   per-thread [`pool`] when its message ends and the next message of any connection on the
//!   thread takes it (reset): always without context takeover, and with it for a "pooled"
//!   compressor or decompressor ([`Deflater::pooled`], [`Inflater::pooled`], the lean
//!   setting), which then rebuilds its state from the history at the start of every message,
//!   as after a compaction. Such a connection holds only its history between messages.
//!
//! Neither type shares state with the other: a connection has one [`Deflater`] for what it
//! sends and one [`Inflater`] for what it receives.

use std::collections::VecDeque;

pub mod pool;
mod stream;

use crate::error::{Error, Result};
use stream::RawInflate;

/// The tail of every sync flush, stripped by the sender and restored by the receiver.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Smallest step by which the output buffer of the inflater grows.
const MIN_GROWTH: usize = 16 * 1024;

/// The last `capacity` bytes of the uncompressed data of a DEFLATE stream: what the sliding
/// window of both ends holds between messages.
#[derive(Debug, Default)]
struct History {
    bytes: VecDeque<u8>,
    /// Window size in bytes.
    capacity: usize,
}

impl History {
    fn new(bits: u8) -> Self {
        Self {
            bytes: VecDeque::new(),
            capacity: 1 << bits,
        }
    }

    /// Append the data of a message, dropping the oldest bytes past the window size.
    fn push(&mut self, data: &[u8]) {
        let cap = self.capacity;
        if data.len() >= cap {
            self.bytes.clear();
            self.bytes.reserve_exact(cap);
            self.bytes.extend(&data[data.len() - cap..]);
            return;
        }
        let excess = (self.bytes.len() + data.len()).saturating_sub(cap);
        self.bytes.drain(..excess);
        let needed = self.bytes.len() + data.len();
        if self.bytes.capacity() < needed {
            // Grow by doubling, but never past the window size.
            let target = needed.max(self.bytes.capacity() * 2).min(cap);
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend(data);
    }

    /// Give back the memory beyond the bytes held.
    fn shrink(&mut self) {
        self.bytes.make_contiguous();
        self.bytes.shrink_to_fit();
    }

    fn clear(&mut self) {
        self.bytes = VecDeque::new();
    }

    fn as_slice(&mut self) -> &[u8] {
        self.bytes.make_contiguous()
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    fn heap_size(&self) -> usize {
        self.bytes.capacity()
    }
}

/// Check window bits and map 8 to 9.
fn window_bits(bits: u8) -> Result<u8> {
    match bits {
        8 => Ok(9),
        9..=15 => Ok(bits),
        _ => Err(Error::InvalidArgument(format!(
            "max_window_bits must be between 8 and 15, got {bits}"
        ))),
    }
}

/// The compressing half of permessage-deflate.
///
/// Built on `zlib_rs::Deflate` rather than `flate2::Compress`, which cannot set zlib's
/// `memLevel`: the memory level sizes the pending buffer (`4 << (mem_level + 6)` bytes), and
/// with the window it decides what an idle connection holds. The stream is allocated on the
/// first compressed message, so a connection that never compresses holds none of it.
pub struct Deflater {
    stream: Option<zlib_rs::Deflate>,
    settings: DeflateSettings,
    no_context_takeover: bool,
    /// Give the stream back to the thread's pool after every message (see
    /// [`pooled`](Self::pooled)).
    pooled: bool,
    /// What the peer's window holds (context takeover only), to rebuild a compacted stream.
    history: History,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("settings", &self.settings)
            .field("no_context_takeover", &self.no_context_takeover)
            .field("pooled", &self.pooled)
            .finish_non_exhaustive()
    }
}

/// zlib's default memory level.
pub const DEFAULT_MEM_LEVEL: u8 = 8;

/// What decides the output of a fresh compressor: zlib level, window bits and memory level.
/// Writers with equal settings compress a message that refers to nothing before it into the
/// same bytes, which [`Deflater::compress_alone`] computes once for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeflateSettings {
    level: u8,
    window_bits: u8,
    mem_level: u8,
}

impl DeflateSettings {
    /// The zlib-rs configuration of a raw DEFLATE compressor with these settings.
    fn config(self) -> zlib_rs::DeflateConfig {
        zlib_rs::DeflateConfig {
            level: i32::from(self.level),
            method: zlib_rs::Method::Deflated,
            // Negative window bits: raw DEFLATE, no zlib header.
            window_bits: -i32::from(self.window_bits),
            mem_level: i32::from(self.mem_level),
            strategy: zlib_rs::Strategy::Default,
        }
    }
}

impl Deflater {
    /// A compressor with zlib `level` (0-9, default 6 in websockets) and `max_window_bits`
    /// (8-15); `no_context_takeover` resets it after every message. `mem_level` (1-9,
    /// default [`DEFAULT_MEM_LEVEL`]) trades memory for speed as in zlib's `deflateInit2`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a level, window size or memory level out of range.
    pub fn new(level: u32, max_window_bits: u8, no_context_takeover: bool) -> Result<Self> {
        Self::with_mem_level(
            level,
            max_window_bits,
            no_context_takeover,
            DEFAULT_MEM_LEVEL,
        )
    }

    /// As [`new`](Self::new), with zlib's memory level.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a level, window size or memory level out of range.
    pub fn with_mem_level(
        level: u32,
        max_window_bits: u8,
        no_context_takeover: bool,
        mem_level: u8,
    ) -> Result<Self> {
        if level > 9 {
            return Err(Error::InvalidArgument(format!(
                "compression level must be between 0 and 9, got {level}"
            )));
        }
        if !(1..=9).contains(&mem_level) {
            return Err(Error::InvalidArgument(format!(
                "memory level must be between 1 and 9, got {mem_level}"
            )));
        }
        let bits = window_bits(max_window_bits)?;
        Ok(Self {
            stream: None,
            settings: DeflateSettings {
                level: level as u8,
                window_bits: bits,
                mem_level,
            },
            no_context_takeover,
            pooled: false,
            history: History::new(bits),
        })
    }

    /// Keep no zlib state between messages, with context takeover too: the stream comes from
    /// the thread's [`pool`] at the start of each message and goes back at its end, and the
    /// next message primes a pooled stream with the history, as after
    /// [`compact`](Self::compact). The connection then holds only the history (at most
    /// `2^max_window_bits` bytes) between messages, for the price of rebuilding the hash
    /// chains of the window per message. Without context takeover a compressor always works
    /// this way (there is nothing to rebuild), so this changes nothing there.
    #[must_use]
    pub fn pooled(mut self, pooled: bool) -> Self {
        self.pooled = pooled;
        self
    }

    /// The settings of this compressor.
    #[must_use]
    pub fn settings(&self) -> DeflateSettings {
        self.settings
    }

    /// Give the stream, if any, back to the thread's pool.
    fn release(&mut self) -> bool {
        match self.stream.take() {
            Some(stream) => {
                pool::give_deflate(self.settings, stream);
                true
            }
            None => false,
        }
    }

    /// Compress one whole message as a fresh compressor with `settings` does, referring to
    /// nothing before it, and append it to `out` without the `00 00 ff ff` tail. Any peer
    /// that negotiated a window at least as large inflates it whatever its window holds; a
    /// [`Deflater`] that sends it records it with [`sent_elsewhere`](Self::sent_elsewhere).
    ///
    /// # Errors
    ///
    /// [`Error::BadCompressedData`] if zlib reports an error (it does not for valid state).
    pub fn compress_alone(settings: DeflateSettings, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        Self::with_mem_level(
            u32::from(settings.level),
            settings.window_bits,
            true,
            settings.mem_level,
        )?
        .compress(data, out)
    }

    /// Record that a message compressed by another compressor ([`compress_alone`](
    /// Self::compress_alone)) was sent in this compressor's place: the peer's window now ends
    /// with `data`, which this stream never saw. The stream is freed; with context takeover
    /// the next message rebuilds it from the history, which now ends with `data`, as after
    /// [`compact`](Self::compact), so the windows of both ends stay identical.
    ///
    pub fn sent_elsewhere(&mut self, data: &[u8]) {
        self.release();
        if !self.no_context_takeover {
            self.history.push(data);
        }
    }

    /// Compress one whole message and append it to `out`, without the `00 00 ff ff` tail.
    ///
    /// # Errors
    ///
    /// [`Error::BadCompressedData`] if zlib reports an error (it does not for valid state).
    pub fn compress(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        self.compress_fragment(data, true, out)
    }

    /// Compress the next fragment of a message sent in fragments and append it to `out`: the
    /// fragments of one message are consecutive pieces of one DEFLATE stream, each ending
    /// with a sync flush, so the peer can inflate each fragment as it comes (RFC 7692 §7.2.1
    /// for a fragmented message). The `00 00 ff ff` tail is removed only from the last
    /// fragment (`fin`), which also ends the message for context takeover: without it the
    /// compressor is reset there. A fragment that is not the last may come out empty (no
    /// new data right after a flush).
    ///
    /// Compacting between fragments is safe: the rebuilt compressor starts on the byte
    /// boundary the flush left, primed with the history (or, without context takeover,
    /// referring to nothing before it).
    ///
    /// # Errors
    ///
    /// [`Error::BadCompressedData`] if zlib reports an error (it does not for valid state).
    pub fn compress_fragment(&mut self, data: &[u8], fin: bool, out: &mut Vec<u8>) -> Result<()> {
        let stream = match self.stream.as_mut() {
            Some(stream) => stream,
            None => {
                let mut stream = pool::take_deflate(self.settings);
                if self.history.len() > 0 {
                    // A compacted stream: the peer's window still holds the history.
                    stream
                        .set_dictionary(self.history.as_slice())
                        .map_err(|e| Error::BadCompressedData(e.as_str().to_owned()))?;
                }
                self.stream.insert(stream)
            }
        };
        let start = out.len();
        // DEFLATE expands incompressible input by 5 bytes per 16 KiB stored block at most;
        // the sync flush adds a few bytes more.
        out.reserve(data.len() + data.len() / 1024 + 64);
        let mut input = data;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(input.len() + 1024);
            }
            let (filled, room) = (out.len(), out.capacity());
            // Zeroing the spare capacity keeps this safe; it costs far less than deflating.
            out.resize(room, 0);
            let (in_before, out_before) = (stream.total_in(), stream.total_out());
            let status = stream
                .compress(input, &mut out[filled..], zlib_rs::DeflateFlush::SyncFlush)
                .map_err(|e| Error::BadCompressedData(e.as_str().to_owned()))?;
            let produced = usize::try_from(stream.total_out() - out_before).unwrap_or(0);
            let consumed = usize::try_from(stream.total_in() - in_before).unwrap_or(usize::MAX);
            out.truncate(filled + produced);
            input = &input[consumed.min(input.len())..];
            // zlib: a flush is complete when it returns with output space left; BufError means
            // there was nothing left to do.
            if input.is_empty() && (filled + produced < room || status == zlib_rs::Status::BufError)
            {
                break;
            }
        }
        if !fin {
            // Not the end of the message: the tail stays, and nothing is reset. With no new
            // data right after a flush zlib writes nothing, an empty fragment the peer skips.
            if !self.no_context_takeover {
                self.history.push(data);
            }
            return Ok(());
        }
        if out.len() == start {
            // zlib writes nothing for a sync flush without new input right after another
            // flush. The stream is byte-aligned there, so an empty stored block without its
            // tail, the single byte 0x00, is the empty message (RFC 7692 §7.2.3.6), or the
            // empty end of a message sent in fragments.
            out.push(0x00);
        } else if out.len() >= start + 4 && out[out.len() - 4..] == TAIL {
            // RFC 7692 §7.2.1: "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the tail
            // end."
            out.truncate(out.len() - 4);
        } else {
            return Err(Error::BadCompressedData(
                "sync flush without its tail".into(),
            ));
        }
        if self.no_context_takeover {
            // Without context takeover nothing carries over to the next message: give the
            // state (about 370 KiB with zlib-rs at 15 bits) back to the thread's pool rather
            // than keep it while idle, as websockets drops its compressobj per message.
            self.release();
        } else {
            self.history.push(data);
            if self.pooled {
                self.release();
            }
        }
        Ok(())
    }

    /// Free the compression state between messages, keeping only the history (at most the
    /// window size) from which the next message rebuilds it. For idle connections: rebuilding
    /// costs about as much as compressing the window once.
    /// Returns whether a state was freed.
    pub fn compact(&mut self) -> bool {
        self.history.shrink();
        self.release()
    }

    /// Whether the compression state is allocated (it is from the first message on, until
    /// [`compact`](Self::compact)).
    #[must_use]
    pub fn is_allocated(&self) -> bool {
        self.stream.is_some()
    }

    /// Bytes of history kept for context takeover.
    #[must_use]
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// Heap bytes held by the history buffer.
    #[must_use]
    pub fn history_capacity(&self) -> usize {
        self.history.heap_size()
    }
}

impl Drop for Deflater {
    fn drop(&mut self) {
        // A closed connection's compressor serves the next one.
        self.release();
    }
}

/// The decompressing half of permessage-deflate.
pub struct Inflater {
    /// Allocated on the first compressed message.
    stream: Option<RawInflate>,
    bits: u8,
    no_context_takeover: bool,
    /// Give the stream back to the thread's pool after every message (see
    /// [`pooled`](Self::pooled)).
    pooled: bool,
    /// Set when the peer ended the DEFLATE stream (a block with BFINAL): the rest of the
    /// message is ignored and the stream restarts with the next message.
    ended: bool,
    /// What the peer's compressor can refer back to (context takeover only), to rebuild a
    /// compacted stream.
    history: History,
    /// Compressed bytes of the message in progress so far, and the last four of them.
    message_len: usize,
    message_end: u32,
    /// Whether the last call that made progress stopped on a block boundary.
    boundary: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("no_context_takeover", &self.no_context_takeover)
            .field("pooled", &self.pooled)
            .finish_non_exhaustive()
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        self.release();
    }
}

impl Inflater {
    /// A decompressor for a peer that compresses with at most `max_window_bits` (8-15);
    /// `no_context_takeover` resets it after every message.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a window size out of range.
    pub fn new(max_window_bits: u8, no_context_takeover: bool) -> Result<Self> {
        let bits = window_bits(max_window_bits)?;
        Ok(Self {
            stream: None,
            bits,
            no_context_takeover,
            pooled: false,
            ended: false,
            history: History::new(bits),
            message_len: 0,
            message_end: 0,
            boundary: false,
        })
    }

    /// Keep no zlib state between messages, with context takeover too: as
    /// [`Deflater::pooled`], the stream comes from the thread's [`pool`] per message and, with
    /// context takeover, is primed with the history (a copy into the window). Without context
    /// takeover a decompressor always works this way.
    #[must_use]
    pub fn pooled(mut self, pooled: bool) -> Self {
        self.pooled = pooled;
        self
    }

    /// Whether the decompressor is [`pooled`](Self::pooled).
    #[must_use]
    pub fn is_pooled(&self) -> bool {
        self.pooled
    }

    /// Give the stream, if any, back to the thread's pool.
    fn release(&mut self) -> bool {
        match self.stream.take() {
            Some(stream) => {
                pool::give_inflate(self.bits, stream);
                true
            }
            None => false,
        }
    }

    /// Decompress the next piece of a message's payload, appending to `out`.
    ///
    /// `limit` bounds `out.len()`; the buffer never grows past `limit + 1` bytes.
    ///
    /// # Errors
    ///
    /// [`Error::TooBig`] when the output would exceed `limit`;
    /// [`Error::BadCompressedData`] when the input is not valid DEFLATE data.
    pub fn decompress(&mut self, data: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        self.message_len = self.message_len.saturating_add(data.len());
        for &byte in &data[data.len().saturating_sub(4)..] {
            self.message_end = (self.message_end << 8) | u32::from(byte);
        }
        // Block by block, so that `finish` knows whether the data ended on a boundary.
        self.inflate(data, out, limit).map(|_| ())
    }

    /// Inflate `data` into `out` (at most `limit` bytes); return how many bytes of `data`
    /// were left unused: none unless the stream ended, or the data goes on past a block
    /// boundary with no progress (the tail of a message that ended before it).
    fn inflate(&mut self, data: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<usize> {
        let stream = match self.stream.as_mut() {
            Some(stream) => stream,
            None => {
                let mut stream = pool::take_inflate(self.bits)
                    .ok_or_else(|| Error::BadCompressedData("cannot allocate".into()))?;
                if self.history.len() > 0 {
                    // A compacted stream: the peer may refer back into the history.
                    stream
                        .set_dictionary(self.history.as_slice())
                        .map_err(Error::BadCompressedData)?;
                }
                self.stream.insert(stream)
            }
        };
        let mut input = data;
        while !self.ended {
            if out.len() == out.capacity() {
                // One byte past the limit is enough to know the message is too big.
                let room = limit.saturating_add(1).saturating_sub(out.len());
                if room == 0 {
                    return Err(Error::TooBig { limit });
                }
                let grow = out.len().max(MIN_GROWTH).min(room);
                out.try_reserve_exact(grow)
                    .map_err(|_| Error::TooBig { limit })?;
            }
            let progress = stream
                .inflate(input, out)
                .map_err(Error::BadCompressedData)?;
            if out.len() > limit {
                return Err(Error::TooBig { limit });
            }
            input = &input[progress.consumed.min(input.len())..];
            if progress.consumed > 0 || progress.produced > 0 {
                self.boundary = progress.boundary;
            }
            if progress.stream_end {
                self.ended = true;
            } else if progress.consumed == 0 && progress.produced == 0 && out.len() < out.capacity()
            {
                // No progress with output space left: zlib wants input that is not there.
                break;
            }
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        Ok(input.len())
    }

    /// End a message: feed the stripped `00 00 ff ff` tail, then free the stream if context
    /// takeover is off, or reset it if the peer ended the stream.
    ///
    /// `out` must hold the whole message, or what followed the last
    /// [`keep_history`](Self::keep_history): with context takeover its end becomes the history.
    ///
    /// # Errors
    ///
    /// As [`decompress`](Self::decompress).
    pub fn finish(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<()> {
        let (len, end) = (self.message_len, self.message_end);
        (self.message_len, self.message_end) = (0, 0);
        if len == 0 {
            // No compressed byte at all: not even the 0x00 of an empty flushed block
            // (RFC 7692 §7.2.3.6), but plainly an empty message. Taken as such, without
            // feeding the tail to the stream, which would leave it inside a block header.
            if self.no_context_takeover {
                self.release();
            }
            return Ok(());
        }
        let mut result = if len >= 4 && end == u32::from_be_bytes(TAIL) && self.boundary {
            // The sender left the tail in place (a compliant payload never ends in 0xff:
            // its last bits are the zero header and padding of the flush block), and the
            // data already ends on a boundary: another tail would open a block it never ends.
            Ok(0)
        } else {
            self.inflate(&TAIL, out, limit)
        };
        if result
            .as_ref()
            .is_ok_and(|&unused| !self.ended && (unused > 0 || !self.boundary))
        {
            // RFC 7692 §7.2.1: the sender flushes at the end of each message, so with the
            // tail restored the data ends on a block boundary. Anything else is not a
            // message but a stream cut short, and what follows would decode from a state
            // that is neither the window nor a fresh stream.
            result = Err(Error::BadCompressedData(
                "the message does not end on a flush boundary".into(),
            ));
        }
        let result = result.map(|_| ());
        if self.no_context_takeover {
            // Nothing carries over to the next message: give the state back to the thread's
            // pool rather than keep it while idle.
            self.release();
            self.ended = false;
        } else if self.ended {
            self.reset();
        } else if result.is_ok() {
            self.history.push(out);
            if self.pooled {
                self.release();
            }
        }
        result
    }

    /// Note the output of a frame delivered before the message ends (a message streamed
    /// fragment by fragment, whose buffer then no longer holds the whole message when
    /// [`finish`](Self::finish) runs): with context takeover it becomes part of the history.
    pub fn keep_history(&mut self, out: &[u8]) {
        if !self.no_context_takeover {
            self.history.push(out);
        }
    }

    /// Forget the context and start a new DEFLATE stream.
    pub fn reset(&mut self) {
        self.release();
        self.boundary = false;
        self.history.clear();
        self.ended = false;
    }

    /// Free the decompression state between messages, keeping only the history (at most the
    /// window size) from which the next compressed message rebuilds it.
    /// Returns whether a state was freed.
    pub fn compact(&mut self) -> bool {
        self.history.shrink();
        self.release()
    }

    /// Whether the decompression state is allocated (it is from the first compressed message
    /// until [`compact`](Self::compact)).
    #[must_use]
    pub fn is_allocated(&self) -> bool {
        self.stream.is_some()
    }

    /// Bytes of history kept for context takeover.
    #[must_use]
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// The size of the sliding window in bytes.
    #[must_use]
    pub fn window_size(&self) -> usize {
        self.history.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(inf: &mut Inflater, data: &[u8], limit: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        inf.decompress(data, &mut out, limit)?;
        inf.finish(&mut out, limit)?;
        Ok(out)
    }

    #[test]
    fn rfc7692_hello_with_context_takeover() {
        // RFC 7692 §7.2.3.1 and §7.2.3.2.
        let mut def = Deflater::new(6, 15, false).unwrap();
        let mut out = Vec::new();
        def.compress(b"Hello", &mut out).unwrap();
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        let mut out2 = Vec::new();
        def.compress(b"Hello", &mut out2).unwrap();
        assert_eq!(out2, [0xf2, 0x00, 0x11, 0x00, 0x00]);

        let mut inf = Inflater::new(15, false).unwrap();
        assert_eq!(inflate_all(&mut inf, &out, 100).unwrap(), b"Hello");
        assert_eq!(inflate_all(&mut inf, &out2, 100).unwrap(), b"Hello");
    }

    #[test]
    fn rfc7692_no_context_takeover() {
        let mut def = Deflater::new(6, 15, true).unwrap();
        for _ in 0..3 {
            let mut out = Vec::new();
            def.compress(b"Hello", &mut out).unwrap();
            assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        }
        let mut inf = Inflater::new(15, true).unwrap();
        for _ in 0..3 {
            let data = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
            assert_eq!(inflate_all(&mut inf, &data, 100).unwrap(), b"Hello");
        }
    }

    #[test]
    fn rfc7692_examples_inflate() {
        // §7.2.3.3: "Hello" in a stored (uncompressed) block.
        let mut inf = Inflater::new(15, false).unwrap();
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(inflate_all(&mut inf, &stored, 100).unwrap(), b"Hello");
        // §7.2.3.4: two DEFLATE blocks in one message.
        let mut inf = Inflater::new(15, false).unwrap();
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(inflate_all(&mut inf, &two, 100).unwrap(), b"Hello");
        // §7.2.3.5: a block with BFINAL set.
        let mut inf = Inflater::new(15, false).unwrap();
        let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate_all(&mut inf, &fin, 100).unwrap(), b"Hello");
        // The stream restarts after BFINAL.
        let data = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_all(&mut inf, &data, 100).unwrap(), b"Hello");
        // §7.2.3.6: an empty uncompressed block.
        let mut inf = Inflater::new(15, false).unwrap();
        assert_eq!(inflate_all(&mut inf, &[0x00], 100).unwrap(), b"");
    }

    #[test]
    fn fragmented_input() {
        let text = b"The quick brown fox jumps over the lazy dog. ".repeat(200);
        let mut def = Deflater::new(6, 15, false).unwrap();
        let mut compressed = Vec::new();
        def.compress(&text, &mut compressed).unwrap();
        for piece in [1, 7, 100] {
            let mut inf = Inflater::new(15, false).unwrap();
            let mut out = Vec::new();
            for chunk in compressed.chunks(piece) {
                inf.decompress(chunk, &mut out, text.len()).unwrap();
            }
            inf.finish(&mut out, text.len()).unwrap();
            assert_eq!(out, text);
        }
    }

    #[test]
    fn bomb_is_bounded() {
        // 10 MiB of zeros compresses to about 10 KiB.
        let zeros = vec![0u8; 10 << 20];
        let mut def = Deflater::new(9, 15, false).unwrap();
        let mut compressed = Vec::new();
        def.compress(&zeros, &mut compressed).unwrap();
        assert!(compressed.len() < 20_000);
        let limit = 1 << 20;
        let mut inf = Inflater::new(15, false).unwrap();
        let mut out = Vec::new();
        let err = inf.decompress(&compressed, &mut out, limit).unwrap_err();
        assert_eq!(err, Error::TooBig { limit });
        assert!(out.capacity() <= limit + 1, "capacity {}", out.capacity());
        // Exactly at the limit is fine.
        let mut inf = Inflater::new(15, false).unwrap();
        assert_eq!(
            inflate_all(&mut inf, &compressed, zeros.len())
                .unwrap()
                .len(),
            zeros.len()
        );
    }

    #[test]
    fn window_bits_and_levels() {
        for bits in 8..=15 {
            let mut def = Deflater::new(6, bits, false).unwrap();
            let mut inf = Inflater::new(bits, false).unwrap();
            let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
            let mut c = Vec::new();
            def.compress(&data, &mut c).unwrap();
            assert_eq!(inflate_all(&mut inf, &c, 1 << 20).unwrap(), data);
        }
        assert!(Deflater::new(6, 7, false).is_err());
        assert!(Deflater::new(6, 16, false).is_err());
        assert!(Deflater::new(10, 15, false).is_err());
        assert!(Inflater::new(16, false).is_err());
        for level in 0..=9 {
            let mut def = Deflater::new(level, 15, false).unwrap();
            let mut c = Vec::new();
            def.compress(b"level test level test", &mut c).unwrap();
            let mut inf = Inflater::new(15, false).unwrap();
            assert_eq!(
                inflate_all(&mut inf, &c, 100).unwrap(),
                b"level test level test"
            );
        }
    }

    #[test]
    fn empty_message() {
        let mut def = Deflater::new(6, 15, false).unwrap();
        let mut c = Vec::new();
        def.compress(b"", &mut c).unwrap();
        assert_eq!(c, [0x00]);
        let mut inf = Inflater::new(15, false).unwrap();
        assert_eq!(inflate_all(&mut inf, &c, 0).unwrap(), b"");
    }

    #[test]
    fn empty_message_after_another_with_context_takeover() {
        let mut def = Deflater::new(6, 15, false).unwrap();
        let mut inf = Inflater::new(15, false).unwrap();
        for message in [&b"a"[..], b"", b"", b"abc", b""] {
            let mut c = Vec::new();
            def.compress(message, &mut c).unwrap();
            assert_eq!(inflate_all(&mut inf, &c, 100).unwrap(), message);
        }
    }

    #[test]
    fn state_is_allocated_on_first_use() {
        let mut def = Deflater::new(6, 15, false).unwrap();
        let mut inf = Inflater::new(15, false).unwrap();
        assert!(!def.is_allocated() && !inf.is_allocated());
        let mut c = Vec::new();
        def.compress(b"Hello", &mut c).unwrap();
        assert!(def.is_allocated());
        inf.reset();
        assert!(!inf.is_allocated());
        assert_eq!(inflate_all(&mut inf, &c, 100).unwrap(), b"Hello");
        assert!(inf.is_allocated());
        // Without context takeover, the state is freed after each message.
        let mut def = Deflater::new(6, 15, true).unwrap();
        let mut inf = Inflater::new(15, true).unwrap();
        let mut c = Vec::new();
        def.compress(b"Hello", &mut c).unwrap();
        assert!(!def.is_allocated());
        assert_eq!(inflate_all(&mut inf, &c, 100).unwrap(), b"Hello");
        assert!(!inf.is_allocated());
    }

    #[test]
    fn memory_levels() {
        let data = b"The quick brown fox jumps over the lazy dog. ".repeat(100);
        for mem_level in 1..=9 {
            let mut def = Deflater::with_mem_level(6, 12, false, mem_level).unwrap();
            let mut c = Vec::new();
            def.compress(&data, &mut c).unwrap();
            assert!(c.len() < data.len() / 10);
            let mut inf = Inflater::new(12, false).unwrap();
            assert_eq!(inflate_all(&mut inf, &c, data.len()).unwrap(), data);
        }
        assert!(Deflater::with_mem_level(6, 15, false, 0).is_err());
        assert!(Deflater::with_mem_level(6, 15, false, 10).is_err());
    }

    #[test]
    fn garbage_is_an_error() {
        let mut inf = Inflater::new(15, false).unwrap();
        let err = inflate_all(&mut inf, &[0xff; 32], 1000).unwrap_err();
        assert_eq!(err.close_code(), 1007);
    }

    #[test]
    fn incompressible_data_round_trips() {
        let mut state = 0x1234_5678_u32;
        let data: Vec<u8> = (0..100_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            })
            .collect();
        let mut def = Deflater::new(6, 15, false).unwrap();
        let mut c = Vec::new();
        def.compress(&data, &mut c).unwrap();
        let mut inf = Inflater::new(15, false).unwrap();
        assert_eq!(inflate_all(&mut inf, &c, data.len()).unwrap(), data);
    }

    #[test]
    fn compacted_deflater_keeps_the_context() {
        // RFC 7692 §7.2.3.2: the second "Hello" is a back-reference into the first. After a
        // compaction the rebuilt compressor must still find it.
        let mut def = Deflater::new(6, 15, false).unwrap();
        let mut first = Vec::new();
        def.compress(b"Hello", &mut first).unwrap();
        assert!(def.compact());
        assert!(!def.compact());
        assert!(!def.is_allocated());
        assert_eq!(def.history_len(), 5);
        assert_eq!(def.history_capacity(), 5);
        let mut second = Vec::new();
        def.compress(b"Hello", &mut second).unwrap();
        assert_eq!(second, [0xf2, 0x00, 0x11, 0x00, 0x00]);
        assert!(def.is_allocated());
    }

    #[test]
    fn compacted_inflater_keeps_the_context() {
        let mut inf = Inflater::new(15, false).unwrap();
        let first = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(inflate_all(&mut inf, &first, 100).unwrap(), b"Hello");
        assert!(inf.compact());
        assert_eq!(inf.window_size(), 1 << 15);
        assert!(!inf.is_allocated());
        assert_eq!(inf.history_len(), 5);
        // A back-reference 5 bytes back, into the previous message.
        let second = [0xf2, 0x00, 0x11, 0x00, 0x00];
        assert_eq!(inflate_all(&mut inf, &second, 100).unwrap(), b"Hello");
    }

    #[test]
    fn history_keeps_the_last_window() {
        let mut h = History::new(9);
        h.push(&[1; 300]);
        assert_eq!(h.len(), 300);
        h.push(&[2; 300]);
        assert_eq!(h.len(), 512);
        let expected: Vec<u8> = [vec![1; 212], vec![2; 300]].concat();
        assert_eq!(h.as_slice(), &expected[..]);
        assert!(h.heap_size() <= 512 + 16);
        h.push(&[3; 1000]);
        assert_eq!(h.as_slice(), &[3; 512][..]);
        h.shrink();
        assert_eq!(h.len(), 512);
        h.clear();
        assert_eq!((h.len(), h.heap_size()), (0, 0));
    }

    #[test]
    fn stream_end_forgets_the_history() {
        // §7.2.3.5: "Hello" in a final block; the next message starts a new stream, so a
        // back-reference into "Hello" must fail rather than decode from a stale history.
        let mut inf = Inflater::new(15, false).unwrap();
        let fin = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(inflate_all(&mut inf, &fin, 100).unwrap(), b"Hello");
        assert_eq!(inf.history_len(), 0);
        inf.compact();
        let back_reference = [0xf2, 0x00, 0x11, 0x00, 0x00];
        assert_eq!(
            inflate_all(&mut inf, &back_reference, 100)
                .unwrap_err()
                .close_code(),
            1007
        );
    }

    mod reference {
        use super::*;
        use flate2::{Decompress, FlushDecompress};
        use proptest::prelude::*;

        /// flate2's inflate of a whole permessage-deflate message: the independent path.
        fn flate2_inflate(d: &mut Decompress, payload: &[u8]) -> Vec<u8> {
            let mut input = payload.to_vec();
            input.extend_from_slice(&TAIL);
            let mut out = Vec::with_capacity(1 << 16);
            let mut rest = &input[..];
            while !rest.is_empty() {
                out.reserve(1 << 16);
                let before = d.total_in();
                d.decompress_vec(rest, &mut out, FlushDecompress::Sync)
                    .unwrap();
                let used = usize::try_from(d.total_in() - before).unwrap();
                rest = &rest[used..];
            }
            out
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Streams of messages from the deflater, at any window size, with and without
            /// context takeover: the inflater gives what flate2 gives, and the originals.
            #[test]
            fn agrees_with_flate2(
                bits in 9u8..=15,
                no_context_takeover in any::<bool>(),
                msgs in prop::collection::vec(
                    prop::collection::vec(prop::sample::select(b"ab \x00\xff".to_vec()), 0..5000),
                    1..8,
                ),
            ) {
                let mut def = Deflater::new(6, bits, no_context_takeover).unwrap();
                let mut inf = Inflater::new(bits, no_context_takeover).unwrap();
                let mut reference = Decompress::new_with_window_bits(false, bits);
                for data in &msgs {
                    let mut c = Vec::new();
                    def.compress(data, &mut c).unwrap();
                    let ours = inflate_all(&mut inf, &c, data.len()).unwrap();
                    if no_context_takeover {
                        reference.reset(false);
                    }
                    prop_assert_eq!(&flate2_inflate(&mut reference, &c), &ours);
                    prop_assert_eq!(&ours, data);
                }
            }
        }
    }

    mod pooled {
        use super::*;
        use proptest::prelude::*;

        fn message() -> impl Strategy<Value = Vec<u8>> {
            prop::collection::vec(prop::sample::select(b"abcd {}\":,".to_vec()), 0..3000)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            /// Pooled compressors and decompressors, with and without context takeover,
            /// talk to plain ones in both directions: the peer cannot tell the difference.
            #[test]
            fn round_trips_against_plain_peers(
                bits in 9u8..=15,
                no_context_takeover in any::<bool>(),
                msgs in prop::collection::vec(message(), 1..10),
            ) {
                let mut pooled_def = Deflater::new(6, bits, no_context_takeover)
                    .unwrap()
                    .pooled(true);
                let mut plain_inf = Inflater::new(bits, no_context_takeover).unwrap();
                let mut plain_def = Deflater::new(6, bits, no_context_takeover).unwrap();
                let mut pooled_inf = Inflater::new(bits, no_context_takeover)
                    .unwrap()
                    .pooled(true);
                // A second connection on the same thread, sharing the pools in between.
                let mut other_def = Deflater::new(6, bits, true).unwrap().pooled(true);
                let mut other_inf = Inflater::new(bits, true).unwrap().pooled(true);
                for data in &msgs {
                    let mut c = Vec::new();
                    pooled_def.compress(data, &mut c).unwrap();
                    prop_assert!(!pooled_def.is_allocated());
                    prop_assert_eq!(&inflate_all(&mut plain_inf, &c, data.len()).unwrap(), data);
                    let mut c = Vec::new();
                    plain_def.compress(data, &mut c).unwrap();
                    prop_assert_eq!(&inflate_all(&mut pooled_inf, &c, data.len()).unwrap(), data);
                    prop_assert!(!pooled_inf.is_allocated());
                    let mut c = Vec::new();
                    other_def.compress(b"other connection", &mut c).unwrap();
                    prop_assert_eq!(
                        inflate_all(&mut other_inf, &c, 100).unwrap(),
                        b"other connection"
                    );
                }
            }
        }

        #[test]
        fn pooled_context_takeover_keeps_back_references() {
            // RFC 7692 §7.2.3.2 with a pooled compressor: the second "Hello" still refers
            // back into the first, though no stream was kept in between.
            let mut def = Deflater::new(6, 15, false).unwrap().pooled(true);
            let mut first = Vec::new();
            def.compress(b"Hello", &mut first).unwrap();
            assert!(!def.is_allocated());
            assert_eq!(def.history_len(), 5);
            let mut second = Vec::new();
            def.compress(b"Hello", &mut second).unwrap();
            assert_eq!(second, [0xf2, 0x00, 0x11, 0x00, 0x00]);
            assert!(!def.compact(), "nothing to free");
            let mut inf = Inflater::new(15, false).unwrap().pooled(true);
            assert_eq!(inflate_all(&mut inf, &first, 100).unwrap(), b"Hello");
            assert!(!inf.is_allocated());
            assert_eq!(inflate_all(&mut inf, &second, 100).unwrap(), b"Hello");
            assert!(!inf.compact());
            assert!(format!("{def:?}").contains("pooled: true"));
        }

        #[test]
        fn fragments_hold_the_stream_until_the_message_ends() {
            let mut def = Deflater::new(6, 15, true).unwrap();
            let mut c = Vec::new();
            def.compress_fragment(b"Hel", false, &mut c).unwrap();
            assert!(def.is_allocated());
            def.compress_fragment(b"lo", true, &mut c).unwrap();
            assert!(!def.is_allocated());
            let mut inf = Inflater::new(15, true).unwrap();
            let mut out = Vec::new();
            inf.decompress(&c[..3], &mut out, 100).unwrap();
            assert!(inf.is_allocated());
            inf.decompress(&c[3..], &mut out, 100).unwrap();
            inf.finish(&mut out, 100).unwrap();
            assert!(!inf.is_allocated());
            assert_eq!(out, b"Hello");
        }

        #[test]
        fn states_go_back_to_the_pool_and_are_reused() {
            std::thread::spawn(|| {
                let mut def = Deflater::new(6, 15, true).unwrap();
                let mut inf = Inflater::new(15, true).unwrap();
                for _ in 0..3 {
                    let mut c = Vec::new();
                    def.compress(b"Hello", &mut c).unwrap();
                    assert_eq!(c, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
                    assert_eq!(inflate_all(&mut inf, &c, 100).unwrap(), b"Hello");
                    // One state of each kind serves every message of the thread.
                    assert_eq!(pool::idle_states(), (1, 1));
                }
                // A connection dropped with a state (context takeover keeps it) gives it back.
                let mut kept = Deflater::new(6, 15, false).unwrap();
                let mut c = Vec::new();
                kept.compress(b"Hello", &mut c).unwrap();
                assert_eq!(pool::idle_states(), (0, 1));
                drop(kept);
                let mut kept = Inflater::new(15, false).unwrap();
                inflate_all(&mut kept, &c, 100).unwrap();
                assert_eq!(pool::idle_states(), (1, 0));
                drop(kept);
                assert_eq!(pool::idle_states(), (1, 1));
                // Shared frames compress with a pooled state too.
                let mut shared = Vec::new();
                Deflater::compress_alone(def.settings(), b"Hello", &mut shared).unwrap();
                assert_eq!(shared, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
                assert_eq!(pool::idle_states(), (1, 1));
            })
            .join()
            .unwrap();
        }
    }

    mod compaction {
        use super::*;
        use proptest::prelude::*;

        fn message() -> impl Strategy<Value = Vec<u8>> {
            // A small alphabet: long matches across messages, so the context matters.
            prop::collection::vec(prop::sample::select(b"abcd ".to_vec()), 0..3000)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Any schedule of compactions on either side decodes to the same messages as
            /// a pair that never compacts, and produces the same compressed bytes as far
            /// as the peer can tell (it decodes them with its own, uncompacted, window).
            #[test]
            fn any_schedule_round_trips(
                bits in 9u8..=15,
                msgs in prop::collection::vec((message(), any::<bool>(), any::<bool>()), 1..12),
            ) {
                let mut def = Deflater::new(6, bits, false).unwrap();
                let mut inf = Inflater::new(bits, false).unwrap();
                let mut plain_inf = Inflater::new(bits, false).unwrap();
                for (data, compact_def, compact_inf) in &msgs {
                    if *compact_def {
                        def.compact();
                    }
                    if *compact_inf {
                        inf.compact();
                    }
                    let mut c = Vec::new();
                    def.compress(data, &mut c).unwrap();
                    prop_assert_eq!(&inflate_all(&mut inf, &c, data.len()).unwrap(), data);
                    prop_assert_eq!(&inflate_all(&mut plain_inf, &c, data.len()).unwrap(), data);
                    prop_assert!(def.history_len() <= 1 << bits);
                    prop_assert!(inf.history_len() <= 1 << bits);
                }
            }
        }
    }

    #[test]
    fn debug_shows_the_settings() {
        let def = Deflater::new(6, 12, true).unwrap();
        let text = format!("{def:?}");
        assert!(text.contains("Deflater") && text.contains("no_context_takeover: true"));
        let inf = Inflater::new(12, false).unwrap();
        assert!(format!("{inf:?}").contains("no_context_takeover: false"));
    }

    #[test]
    fn truncated_stream_waits_for_more_input() {
        // Half a message: the inflater keeps what it has and asks for more, without error.
        let text = b"The quick brown fox jumps over the lazy dog. ".repeat(50);
        let mut def = Deflater::new(6, 15, false).unwrap();
        let mut c = Vec::new();
        def.compress(&text, &mut c).unwrap();
        let mut inf = Inflater::new(15, false).unwrap();
        let mut out = Vec::new();
        inf.decompress(&c[..c.len() / 2], &mut out, text.len())
            .unwrap();
        inf.decompress(&[], &mut out, text.len()).unwrap();
        inf.decompress(&c[c.len() / 2..], &mut out, text.len())
            .unwrap();
        inf.finish(&mut out, text.len()).unwrap();
        assert_eq!(out, text);
    }

    #[test]
    fn message_must_end_on_a_flush_boundary() {
        // "Hello" cut inside its Huffman block, and a stored block cut inside its data: with
        // the tail restored, neither ends where a sender's flush would.
        for cut in [&[0xf2, 0x48][..], &[0x00, 0x05, 0x00, 0xfa, 0xff][..]] {
            let mut inf = Inflater::new(15, false).unwrap();
            let err = inflate_all(&mut inf, cut, 100).unwrap_err();
            assert_eq!(err.close_code(), 1007, "{cut:02x?}");
        }
    }

    #[test]
    fn empty_payload_is_an_empty_message() {
        // No compressed byte at all: an empty message, and the stream is left as it was.
        let mut def = Deflater::new(6, 15, false).unwrap();
        let mut inf = Inflater::new(15, false).unwrap();
        let mut first = Vec::new();
        def.compress(b"Hello", &mut first).unwrap();
        assert_eq!(inflate_all(&mut inf, &first, 100).unwrap(), b"Hello");
        assert_eq!(inflate_all(&mut inf, &[], 100).unwrap(), b"");
        let mut second = Vec::new();
        def.compress(b"Hello", &mut second).unwrap();
        assert_eq!(inflate_all(&mut inf, &second, 100).unwrap(), b"Hello");
        // Also as the very first message, and without context takeover.
        let mut inf = Inflater::new(15, true).unwrap();
        assert_eq!(inflate_all(&mut inf, &[], 100).unwrap(), b"");
        assert!(!inf.is_allocated());
    }

    #[test]
    fn final_block_ends_the_stream_at_once() {
        // An empty final stored block: the stream is over with this message, so the next
        // message starts a new stream whether or not the inflater was compacted between.
        let outcome = |compact: bool| {
            let mut inf = Inflater::new(15, false).unwrap();
            let first = inflate_all(&mut inf, &[0x01], 100);
            if compact {
                inf.compact();
            }
            (
                first,
                inflate_all(&mut inf, &[0x5a], 100).map_err(|e| e.close_code()),
            )
        };
        assert_eq!(outcome(false), outcome(true));
        assert_eq!(outcome(false).0, Ok(Vec::new()));
    }
}
