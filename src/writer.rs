//! Message encoding: a message in, the bytes of its frames out.
//!
//! [`Writer`] compresses (when permessage-deflate is on and the message is at least
//! `compress_threshold` bytes), fragments (when asked), masks (on the client side, with a new
//! key for every frame) and writes every frame of a message into one buffer, so a message is
//! one `transport.write`.

use crate::config::{COMPRESSOR_STATE_SIZE, KEY_BATCH, MAX_KEPT_SEND_BUFFER};
use crate::deflate::Deflater;
use crate::error::{Error, Result};
use crate::frames::{
    build_close, encode_frame, frame_len, header_len, write_frame, write_header, Opcode,
    MAX_CONTROL_PAYLOAD,
};

/// A supply of masking keys from the operating system's CSPRNG.
#[derive(Debug)]
pub struct MaskKeys {
    batch: [u8; KEY_BATCH],
    used: usize,
}

impl Default for MaskKeys {
    fn default() -> Self {
        Self {
            batch: [0; KEY_BATCH],
            used: KEY_BATCH,
        }
    }
}

impl MaskKeys {
    /// A fresh, unpredictable 4-byte masking key.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if the operating system cannot provide random bytes.
    pub fn next_key(&mut self) -> Result<[u8; 4]> {
        if self.used == KEY_BATCH {
            getrandom::fill(&mut self.batch)
                .map_err(|e| Error::InvalidArgument(format!("no random bytes from the OS: {e}")))?;
            self.used = 0;
        }
        let key = [
            self.batch[self.used],
            self.batch[self.used + 1],
            self.batch[self.used + 2],
            self.batch[self.used + 3],
        ];
        // Each key is used once.
        self.batch[self.used..self.used + 4].fill(0);
        self.used += 4;
        Ok(key)
    }
}

/// The sending side of a connection.
#[derive(Debug)]
pub struct Writer {
    client: bool,
    deflater: Option<Deflater>,
    compress_threshold: usize,
    keys: MaskKeys,
}

impl Writer {
    /// A writer for a client (frames are masked) or a server (frames are not).
    ///
    /// With a `deflater`, data messages of at least `compress_threshold` bytes are compressed
    /// (RSV1 set); smaller ones are sent as they are, which RFC 7692 §6 allows message by
    /// message.
    #[must_use]
    pub fn new(client: bool, deflater: Option<Deflater>, compress_threshold: usize) -> Self {
        Self {
            client,
            deflater,
            compress_threshold,
            keys: MaskKeys::default(),
        }
    }

    /// Free the compression state of an idle connection, keeping only its history (see
    /// [`Deflater::compact`]). Returns whether a state was freed.
    pub fn compact(&mut self) -> bool {
        self.deflater.as_mut().is_some_and(Deflater::compact)
    }

    /// [`compact`](Self::compact), returning how many bytes it freed, at least: a compression
    /// state counts as [`COMPRESSOR_STATE_SIZE`].
    pub fn compact_bytes(&mut self) -> usize {
        if self.compact() {
            COMPRESSOR_STATE_SIZE
        } else {
            0
        }
    }

    /// Whether a buffer of `len` bytes that a message was encoded into is kept for the next
    /// message: up to [`MAX_KEPT_SEND_BUFFER`]; a larger one is freed after its message. (The
    /// caller reuses a kept buffer only once nothing else refers to it.)
    #[must_use]
    pub fn keeps_send_buffer(len: usize) -> bool {
        len <= MAX_KEPT_SEND_BUFFER
    }

    /// Whether the compression state is allocated.
    #[must_use]
    pub fn deflater_allocated(&self) -> bool {
        self.deflater.as_ref().is_some_and(Deflater::is_allocated)
    }

    /// Whether frames are masked (client side).
    #[must_use]
    pub fn is_client(&self) -> bool {
        self.client
    }

    fn mask(&mut self) -> Result<Option<[u8; 4]>> {
        if self.client {
            self.keys.next_key().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Whether a data message of `len` bytes would be compressed.
    #[must_use]
    pub fn compresses(&self, len: usize) -> bool {
        self.deflater.is_some() && len >= self.compress_threshold
    }

    /// The length of the single frame that [`write_message_into`](Self::write_message_into)
    /// writes for a payload of `len` bytes.
    #[must_use]
    pub fn plain_frame_len(&self, len: usize) -> usize {
        frame_len(len, self.client)
    }

    /// The header of a data message of `len` bytes sent as one unmasked, uncompressed frame,
    /// for a server that writes the header and the caller's payload separately instead of
    /// copying a large payload into a new frame. `None` when that frame would be wrong: a
    /// client must mask the payload, and a message that [`compresses`](Self::compresses)
    /// must be compressed.
    #[must_use]
    pub fn plain_header(&self, opcode: Opcode, len: usize) -> Option<Vec<u8>> {
        if self.client || self.compresses(len) || !matches!(opcode, Opcode::Text | Opcode::Binary) {
            return None;
        }
        let mut header = vec![0; header_len(len, false)];
        write_header(&mut header, opcode, true, false, len, None);
        Some(header)
    }

    /// Write a data message that is not compressed, as one frame, into `buf` (exactly
    /// [`plain_frame_len`](Self::plain_frame_len) bytes). This is the path without a copy
    /// into an intermediate buffer, for callers that own the output allocation.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a control opcode, a wrong buffer size, or a message
    /// that [`compresses`](Self::compresses) says must be compressed.
    pub fn write_message_into(
        &mut self,
        buf: &mut [u8],
        opcode: Opcode,
        data: &[u8],
    ) -> Result<()> {
        if !matches!(opcode, Opcode::Text | Opcode::Binary) {
            return Err(Error::InvalidArgument("not a data opcode".into()));
        }
        if self.compresses(data.len()) || buf.len() != self.plain_frame_len(data.len()) {
            return Err(Error::InvalidArgument(
                "wrong output buffer for this message".into(),
            ));
        }
        let mask = self.mask()?;
        write_frame(buf, opcode, true, false, data, mask);
        Ok(())
    }

    /// Encode a data message (text or binary), compressing it if the writer compresses
    /// messages of its size and splitting it into frames of at most `fragment_size` payload
    /// bytes (0: a single frame). Appends every frame to `out`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a control or continuation opcode.
    pub fn encode_message(
        &mut self,
        opcode: Opcode,
        data: &[u8],
        fragment_size: usize,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        if !matches!(opcode, Opcode::Text | Opcode::Binary) {
            return Err(Error::InvalidArgument("not a data opcode".into()));
        }
        let compressed;
        let (payload, rsv1) = match self.deflater.as_mut() {
            Some(deflater) if data.len() >= self.compress_threshold => {
                let mut buf = Vec::new();
                deflater.compress(data, &mut buf)?;
                compressed = buf;
                (&compressed[..], true)
            }
            _ => (data, false),
        };
        if fragment_size == 0 || payload.len() <= fragment_size {
            out.reserve(frame_len(payload.len(), self.client));
            let mask = self.mask()?;
            encode_frame(out, opcode, true, rsv1, payload, mask);
            return Ok(());
        }
        let count = payload.len().div_ceil(fragment_size);
        out.reserve(count * frame_len(fragment_size, self.client));
        for (i, piece) in payload.chunks(fragment_size).enumerate() {
            // RFC 7692 §6.1: RSV1 on the first frame only; RFC 6455 §5.4: continuation frames
            // after the first, FIN on the last.
            let (op, rsv) = if i == 0 {
                (opcode, rsv1)
            } else {
                (Opcode::Continuation, false)
            };
            let mask = self.mask()?;
            encode_frame(out, op, i + 1 == count, rsv, piece, mask);
        }
        Ok(())
    }

    /// Encode one frame as given, for callers that fragment messages themselves. Never
    /// compresses; `rsv1` is written as given.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a control frame that breaks RFC 6455 §5.5.
    pub fn encode_frame(
        &mut self,
        opcode: Opcode,
        data: &[u8],
        fin: bool,
        rsv1: bool,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        if opcode.is_control() && (!fin || data.len() > MAX_CONTROL_PAYLOAD) {
            return Err(Error::InvalidArgument(
                "control frames must be final and carry at most 125 bytes".into(),
            ));
        }
        let mask = self.mask()?;
        encode_frame(out, opcode, fin, rsv1, data, mask);
        Ok(())
    }

    /// Encode a ping or pong (at most 125 bytes of application data).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for another opcode or more than 125 bytes.
    pub fn encode_control(&mut self, opcode: Opcode, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        if !matches!(opcode, Opcode::Ping | Opcode::Pong) {
            return Err(Error::InvalidArgument("not a ping or pong opcode".into()));
        }
        self.encode_frame(opcode, data, true, false, out)
    }

    /// Encode a close frame; `None` sends no status code.
    ///
    /// # Errors
    ///
    /// As [`build_close`].
    pub fn encode_close(
        &mut self,
        code: Option<u16>,
        reason: &str,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let payload = build_close(code, reason)?;
        self.encode_frame(Opcode::Close, &payload, true, false, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::{Event, Reader};

    fn read_all(client: bool, bytes: &[u8], deflate: bool) -> Vec<Event> {
        let inflater = deflate.then(|| crate::deflate::Inflater::new(15, false).unwrap());
        let mut reader = Reader::new(client, None, inflater);
        let mut events = Vec::new();
        reader.feed(bytes, &mut events).unwrap();
        events
    }

    #[test]
    fn compaction_and_accessors() {
        let mut plain = Writer::new(true, None, 0);
        assert!(plain.is_client());
        assert!(!plain.compact() && !plain.deflater_allocated());
        let mut w = Writer::new(false, Some(Deflater::new(6, 15, false).unwrap()), 0);
        assert!(!w.is_client() && !w.deflater_allocated());
        let mut out = Vec::new();
        w.encode_message(Opcode::Text, b"Hello", 0, &mut out)
            .unwrap();
        assert!(w.deflater_allocated());
        assert!(w.compact());
        assert!(!w.deflater_allocated() && !w.compact());
        // Context survives: the second "Hello" is the RFC 7692 §7.2.3.2 back-reference.
        out.clear();
        w.encode_message(Opcode::Text, b"Hello", 0, &mut out)
            .unwrap();
        assert_eq!(out, [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
    }

    #[test]
    fn compaction_counts_bytes() {
        assert_eq!(Writer::new(false, None, 0).compact_bytes(), 0);
        let mut w = Writer::new(false, Some(Deflater::new(6, 15, false).unwrap()), 0);
        assert_eq!(w.compact_bytes(), 0, "no state allocated yet");
        w.encode_message(Opcode::Text, b"Hello", 0, &mut Vec::new())
            .unwrap();
        assert_eq!(w.compact_bytes(), COMPRESSOR_STATE_SIZE);
        assert_eq!(w.compact_bytes(), 0, "freed already");
    }

    #[test]
    fn send_buffers_kept_up_to_16_mib() {
        assert!(Writer::keeps_send_buffer(0));
        assert!(Writer::keeps_send_buffer(16 << 20));
        assert!(!Writer::keeps_send_buffer((16 << 20) + 1));
        assert!(!Writer::keeps_send_buffer(usize::MAX));
    }

    #[test]
    fn only_data_opcodes_are_messages() {
        let mut w = Writer::new(false, None, 0);
        let mut buf = [0u8; 7];
        for opcode in [Opcode::Ping, Opcode::Close, Opcode::Continuation] {
            assert!(w.write_message_into(&mut buf, opcode, b"Hello").is_err());
            assert!(w
                .encode_message(opcode, b"Hello", 0, &mut Vec::new())
                .is_err());
        }
        w.write_message_into(&mut buf, Opcode::Text, b"Hello")
            .unwrap();
        assert_eq!(&buf[..2], [0x81, 0x05]);
    }

    #[test]
    fn plain_header_then_payload_is_the_frame() {
        let server = Writer::new(false, None, 0);
        for len in [0, 125, 126, 65535, 65536, 1 << 20] {
            let data = vec![7u8; len];
            let mut frame = Vec::new();
            Writer::new(false, None, 0)
                .encode_message(Opcode::Binary, &data, 0, &mut frame)
                .unwrap();
            let mut split = server.plain_header(Opcode::Binary, len).unwrap();
            split.extend_from_slice(&data);
            assert_eq!(split, frame, "{len}");
        }
        // A client masks; a compressing writer compresses; control frames are not messages.
        assert!(Writer::new(true, None, 0)
            .plain_header(Opcode::Binary, 10)
            .is_none());
        let deflating = Writer::new(false, Some(Deflater::new(6, 15, false).unwrap()), 100);
        assert!(deflating.plain_header(Opcode::Text, 100).is_none());
        assert!(deflating.plain_header(Opcode::Text, 99).is_some());
        assert!(server.plain_header(Opcode::Ping, 1).is_none());
    }

    #[test]
    fn keys_are_fresh() {
        let mut keys = MaskKeys::default();
        let all: Vec<[u8; 4]> = (0..1000).map(|_| keys.next_key().unwrap()).collect();
        let mut distinct = all.clone();
        distinct.sort_unstable();
        distinct.dedup();
        // 1000 draws from 2^32 values: a repeat has probability about 1e-4.
        assert!(distinct.len() >= 999);
        // Not a counter: consecutive keys do not differ by one.
        let steps = all
            .windows(2)
            .filter(|w| u32::from_be_bytes(w[1]).wrapping_sub(u32::from_be_bytes(w[0])) == 1)
            .count();
        assert!(steps < 3);
    }

    #[test]
    fn client_frames_are_masked_and_round_trip() {
        let mut w = Writer::new(true, None, 0);
        let mut out = Vec::new();
        w.encode_message(Opcode::Text, "héllo".as_bytes(), 0, &mut out)
            .unwrap();
        assert_eq!(out[1] & 0x80, 0x80);
        assert_eq!(
            read_all(false, &out, false),
            vec![Event::Text("héllo".into())]
        );
    }

    #[test]
    fn fragmented_and_compressed() {
        let data = b"abcdefghij".repeat(1000);
        for (compress, frag) in [
            (false, 0),
            (false, 7),
            (true, 0),
            (true, 5),
            (true, 100_000),
        ] {
            let deflater = compress.then(|| Deflater::new(6, 15, false).unwrap());
            let mut w = Writer::new(false, deflater, 0);
            let mut out = Vec::new();
            w.encode_message(Opcode::Binary, &data, frag, &mut out)
                .unwrap();
            assert_eq!(out[0] & 0x40 != 0, compress, "RSV1");
            assert_eq!(
                read_all(true, &out, compress),
                vec![Event::Binary(data.clone())]
            );
        }
    }

    #[test]
    fn threshold_leaves_small_messages_alone() {
        let mut w = Writer::new(false, Some(Deflater::new(6, 15, false).unwrap()), 100);
        assert!(!w.compresses(99));
        assert!(w.compresses(100));
        let mut out = Vec::new();
        w.encode_message(Opcode::Binary, &[1; 99], 0, &mut out)
            .unwrap();
        assert_eq!(out[0], 0x82);
        let mut buf = vec![0; w.plain_frame_len(99)];
        w.write_message_into(&mut buf, Opcode::Binary, &[1; 99])
            .unwrap();
        assert_eq!(buf, out);
        let mut buf = vec![0; w.plain_frame_len(100)];
        assert!(w
            .write_message_into(&mut buf, Opcode::Binary, &[1; 100])
            .is_err());
    }

    #[test]
    fn control_frames() {
        let mut w = Writer::new(true, None, 0);
        let mut out = Vec::new();
        w.encode_control(Opcode::Ping, b"x", &mut out).unwrap();
        w.encode_control(Opcode::Pong, &[0; 125], &mut out).unwrap();
        w.encode_close(Some(1001), "bye", &mut out).unwrap();
        assert!(w.encode_control(Opcode::Ping, &[0; 126], &mut out).is_err());
        assert!(w.encode_control(Opcode::Text, b"", &mut out).is_err());
        assert!(w.encode_close(Some(1006), "", &mut out).is_err());
        assert!(w
            .encode_frame(Opcode::Ping, b"", false, false, &mut out)
            .is_err());
        assert!(w.encode_message(Opcode::Ping, b"", 0, &mut out).is_err());
        let events = read_all(false, &out, false);
        assert_eq!(
            events,
            vec![
                Event::Ping(b"x".to_vec()),
                Event::Pong(vec![0; 125]),
                Event::Close {
                    code: 1001,
                    reason: "bye".into()
                },
            ]
        );
    }
}
