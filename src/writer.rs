//! Message encoding: a message in, the bytes of its frames out.
//!
//! [`Writer`] compresses (when permessage-deflate is on and the message is at least
//! `compress_threshold` bytes), fragments (when asked), masks (on the client side, with a new
//! key for every frame) and writes every frame of a message into one buffer, so a message is
//! one `transport.write`.
//!
//! A message can also be streamed: [`Writer::encode_fragment`] encodes one fragment at a time
//! (RFC 6455 §5.4), for a sender that does not have the whole message yet. With
//! permessage-deflate, the fragments of a compressed message carry consecutive pieces of one
//! DEFLATE stream, each flushed so the peer can inflate it at once (RFC 7692 §7.2.1). Whether
//! a streamed message is compressed is decided on its first fragment. While one is in
//! progress, no other data message may be encoded (control frames may).
//!
//! Any message may be sent uncompressed (`compress: false`) even when permessage-deflate is
//! on, which RFC 7692 §6 allows message by message: RSV1 clear, the compressor untouched.

use crate::config::{COMPRESSOR_STATE_SIZE, KEY_BATCH, MAX_KEPT_SEND_BUFFER};
use crate::deflate::{DeflateSettings, Deflater};
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

/// How a server's writer sends a message that many connections share (a broadcast): every
/// writer with the same encoding sends the very same unmasked frame, so it is encoded once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SharedEncoding {
    /// One uncompressed frame.
    Plain,
    /// One frame with RSV1, compressed as by a fresh compressor with these settings.
    Deflate(DeflateSettings),
}

impl SharedEncoding {
    /// Encode the unmasked frame of a data message with this encoding.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a control or continuation opcode.
    pub fn encode(self, opcode: Opcode, data: &[u8]) -> Result<Vec<u8>> {
        if !matches!(opcode, Opcode::Text | Opcode::Binary) {
            return Err(Error::InvalidArgument("not a data opcode".into()));
        }
        let mut out = Vec::new();
        match self {
            Self::Plain => encode_frame(&mut out, opcode, true, false, data, None),
            Self::Deflate(settings) => {
                let mut payload = Vec::new();
                Deflater::compress_alone(settings, data, &mut payload)?;
                encode_frame(&mut out, opcode, true, true, &payload, None);
            }
        }
        Ok(out)
    }
}

/// The sending side of a connection.
#[derive(Debug)]
pub struct Writer {
    client: bool,
    deflater: Option<Deflater>,
    compress_threshold: usize,
    keys: MaskKeys,
    /// While a message is being sent in fragments: whether it is compressed.
    fragmented: Option<bool>,
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
            fragmented: None,
        }
    }

    /// Whether a message sent with [`encode_fragment`](Self::encode_fragment) has started
    /// and not ended.
    #[must_use]
    pub fn in_fragmented_message(&self) -> bool {
        self.fragmented.is_some()
    }

    fn check_not_fragmenting(&self) -> Result<()> {
        if self.fragmented.is_some() {
            return Err(Error::InvalidArgument(
                "a fragmented message is in progress, expected its next fragment".into(),
            ));
        }
        Ok(())
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

    /// Whether a data message of `len` bytes would be compressed (unless sent with
    /// `compress: false`).
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
    /// must be compressed (and `compress` is true), or while a fragmented message is in
    /// progress.
    #[must_use]
    pub fn plain_header(&self, opcode: Opcode, len: usize, compress: bool) -> Option<Vec<u8>> {
        if self.client
            || (compress && self.compresses(len))
            || self.fragmented.is_some()
            || !matches!(opcode, Opcode::Text | Opcode::Binary)
        {
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
    /// [`Error::InvalidArgument`] for a control opcode, a wrong buffer size, a message that
    /// [`compresses`](Self::compresses) says must be compressed unless `compress` is false,
    /// or while a fragmented message is in progress.
    pub fn write_message_into(
        &mut self,
        buf: &mut [u8],
        opcode: Opcode,
        data: &[u8],
        compress: bool,
    ) -> Result<()> {
        if !matches!(opcode, Opcode::Text | Opcode::Binary) {
            return Err(Error::InvalidArgument("not a data opcode".into()));
        }
        self.check_not_fragmenting()?;
        if (compress && self.compresses(data.len()))
            || buf.len() != self.plain_frame_len(data.len())
        {
            return Err(Error::InvalidArgument(
                "wrong output buffer for this message".into(),
            ));
        }
        let mask = self.mask()?;
        write_frame(buf, opcode, true, false, data, mask);
        Ok(())
    }

    /// Encode a data message (text or binary), compressing it if `compress` is true and the
    /// writer compresses messages of its size, and splitting it into frames of at most
    /// `fragment_size` payload bytes (0: a single frame). Appends every frame to `out`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a control or continuation opcode, or while a
    /// fragmented message is in progress.
    pub fn encode_message(
        &mut self,
        opcode: Opcode,
        data: &[u8],
        fragment_size: usize,
        compress: bool,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        if !matches!(opcode, Opcode::Text | Opcode::Binary) {
            return Err(Error::InvalidArgument("not a data opcode".into()));
        }
        self.check_not_fragmenting()?;
        let compressed;
        let (payload, rsv1) = match self.deflater.as_mut() {
            Some(deflater) if compress && data.len() >= self.compress_threshold => {
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

    /// Encode one fragment of a message sent in fragments and append its frame to `out`.
    ///
    /// `opcode` is [`Opcode::Text`] or [`Opcode::Binary`] for the first fragment, which
    /// starts the message, and [`Opcode::Continuation`] for every later one; `fin` ends the
    /// message. Each frame is masked with a new key on the client side. Any fragment may be
    /// empty.
    ///
    /// Compression is decided on the first fragment: the message is compressed when the
    /// writer has a deflater, `compress` is true and either more fragments follow (the size
    /// of the message is unknown, so `compress_threshold` does not apply) or the fragment is
    /// also the last and at least `compress_threshold` bytes long (a whole message, as
    /// [`encode_message`](Self::encode_message) would decide). `compress` is ignored on
    /// later fragments. A compressed message has RSV1 on its first frame only (RFC 7692
    /// §6.1) and its fragments carry the parts of one DEFLATE stream
    /// ([`Deflater::compress_fragment`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a control opcode, a first fragment while a message is
    /// in progress, or a continuation without one. The writer is unchanged then. After a
    /// compression error the message cannot be completed.
    pub fn encode_fragment(
        &mut self,
        opcode: Opcode,
        data: &[u8],
        fin: bool,
        compress: bool,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let compressed = match (opcode, self.fragmented) {
            (Opcode::Text | Opcode::Binary, None) => {
                compress
                    && self.deflater.is_some()
                    && (!fin || data.len() >= self.compress_threshold)
            }
            (Opcode::Continuation, Some(compressed)) => compressed,
            (Opcode::Text | Opcode::Binary, Some(_)) => return self.check_not_fragmenting(),
            (Opcode::Continuation, None) => {
                return Err(Error::InvalidArgument(
                    "no fragmented message is in progress, expected a first fragment".into(),
                ))
            }
            _ => return Err(Error::InvalidArgument("not a data opcode".into())),
        };
        // The key first: once the compressor has taken the data, nothing may fail.
        let mask = self.mask()?;
        let deflater = if compressed {
            self.deflater.as_mut()
        } else {
            None
        };
        let mut buf = Vec::new();
        let payload = match deflater {
            Some(deflater) => {
                deflater.compress_fragment(data, fin, &mut buf)?;
                &buf[..]
            }
            None => data,
        };
        // RFC 7692 §6.1: RSV1, the "Per-Message Compressed" bit, on the first frame of a
        // compressed message only, never on its continuation frames.
        let rsv1 = compressed && opcode != Opcode::Continuation;
        out.reserve(frame_len(payload.len(), self.client));
        encode_frame(out, opcode, fin, rsv1, payload, mask);
        self.fragmented = if fin { None } else { Some(compressed) };
        Ok(())
    }

    /// The encoding with which this writer sends a data message of `len` bytes shared with
    /// other connections ([`SharedEncoding`]), or `None` when it cannot send a shared frame:
    /// on the client side (each frame is masked with its own key) or while a fragmented
    /// message is in progress. `compress: false` asks for the uncompressed frame.
    #[must_use]
    pub fn shared_encoding(&self, len: usize, compress: bool) -> Option<SharedEncoding> {
        if self.client || self.fragmented.is_some() {
            return None;
        }
        match &self.deflater {
            Some(deflater) if compress && len >= self.compress_threshold => {
                Some(SharedEncoding::Deflate(deflater.settings()))
            }
            _ => Some(SharedEncoding::Plain),
        }
    }

    /// Record that this writer's connection was sent the shared frame of `data` with
    /// `encoding`, which must be what [`shared_encoding`](Self::shared_encoding) returned: a
    /// compressed one updates the compressor with [`Deflater::sent_elsewhere`].
    pub fn sent_shared(&mut self, encoding: SharedEncoding, data: &[u8]) {
        if let (SharedEncoding::Deflate(_), Some(deflater)) = (encoding, self.deflater.as_mut()) {
            deflater.sent_elsewhere(data);
        }
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
        w.encode_message(Opcode::Text, b"Hello", 0, true, &mut out)
            .unwrap();
        assert!(w.deflater_allocated());
        assert!(w.compact());
        assert!(!w.deflater_allocated() && !w.compact());
        // Context survives: the second "Hello" is the RFC 7692 §7.2.3.2 back-reference.
        out.clear();
        w.encode_message(Opcode::Text, b"Hello", 0, true, &mut out)
            .unwrap();
        assert_eq!(out, [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00]);
    }

    #[test]
    fn compaction_counts_bytes() {
        assert_eq!(Writer::new(false, None, 0).compact_bytes(), 0);
        let mut w = Writer::new(false, Some(Deflater::new(6, 15, false).unwrap()), 0);
        assert_eq!(w.compact_bytes(), 0, "no state allocated yet");
        w.encode_message(Opcode::Text, b"Hello", 0, true, &mut Vec::new())
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
            assert!(w
                .write_message_into(&mut buf, opcode, b"Hello", true)
                .is_err());
            assert!(w
                .encode_message(opcode, b"Hello", 0, true, &mut Vec::new())
                .is_err());
        }
        w.write_message_into(&mut buf, Opcode::Text, b"Hello", true)
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
                .encode_message(Opcode::Binary, &data, 0, true, &mut frame)
                .unwrap();
            let mut split = server.plain_header(Opcode::Binary, len, true).unwrap();
            split.extend_from_slice(&data);
            assert_eq!(split, frame, "{len}");
        }
        // A client masks; a compressing writer compresses; control frames are not messages.
        assert!(Writer::new(true, None, 0)
            .plain_header(Opcode::Binary, 10, true)
            .is_none());
        let deflating = Writer::new(false, Some(Deflater::new(6, 15, false).unwrap()), 100);
        assert!(deflating.plain_header(Opcode::Text, 100, true).is_none());
        assert!(deflating.plain_header(Opcode::Text, 99, true).is_some());
        assert!(server.plain_header(Opcode::Ping, 1, true).is_none());
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
        w.encode_message(Opcode::Text, "héllo".as_bytes(), 0, true, &mut out)
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
            w.encode_message(Opcode::Binary, &data, frag, true, &mut out)
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
        w.encode_message(Opcode::Binary, &[1; 99], 0, true, &mut out)
            .unwrap();
        assert_eq!(out[0], 0x82);
        let mut buf = vec![0; w.plain_frame_len(99)];
        w.write_message_into(&mut buf, Opcode::Binary, &[1; 99], true)
            .unwrap();
        assert_eq!(buf, out);
        let mut buf = vec![0; w.plain_frame_len(100)];
        assert!(w
            .write_message_into(&mut buf, Opcode::Binary, &[1; 100], true)
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
        assert!(w
            .encode_message(Opcode::Ping, b"", 0, true, &mut out)
            .is_err());
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

    /// The frames in `bytes`, each as its header and unmasked payload.
    fn frames(bytes: &[u8]) -> Vec<(crate::frames::FrameHeader, Vec<u8>)> {
        let mut frames = Vec::new();
        let mut rest = bytes;
        while !rest.is_empty() {
            let (header, len) = crate::frames::parse_header(rest).unwrap().unwrap();
            let end = len + usize::try_from(header.payload_len).unwrap();
            let mut payload = rest[len..end].to_vec();
            if let Some(key) = header.mask {
                crate::mask::apply_mask(&mut payload, key, 0);
            }
            frames.push((header, payload));
            rest = &rest[end..];
        }
        frames
    }

    fn writer(client: bool, deflate: Option<bool>, threshold: usize) -> Writer {
        let deflater = deflate.map(|nct| Deflater::new(6, 15, nct).unwrap());
        Writer::new(client, deflater, threshold)
    }

    fn reader(client: bool, deflate: Option<bool>) -> Reader {
        let inflater = deflate.map(|nct| crate::deflate::Inflater::new(15, nct).unwrap());
        Reader::new(client, None, inflater)
    }

    /// Stream `pieces` as one message: first fragment, continuations, FIN on the last.
    fn stream(w: &mut Writer, opcode: Opcode, pieces: &[&[u8]], compress: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let op = if i == 0 { opcode } else { Opcode::Continuation };
            w.encode_fragment(op, piece, i + 1 == pieces.len(), compress, &mut out)
                .unwrap();
        }
        out
    }

    #[test]
    fn fragments_round_trip_both_roles_with_and_without_deflate() {
        let long = b"abcdefghij".repeat(500);
        // As websockets 17 sends an iterable: the pieces, then an empty final continuation.
        let messages: [&[&[u8]]; 5] = [
            &[b"Hello", b", ", b"world", b""],
            &[b"", b"", b""],
            &[&long, &long, b"", &long[..7], b""],
            &[b"single"],
            &[b""],
        ];
        for client in [true, false] {
            for deflate in [None, Some(false), Some(true)] {
                let mut w = writer(client, deflate, 0);
                let mut r = reader(!client, deflate);
                for _ in 0..2 {
                    for pieces in messages {
                        assert!(!w.in_fragmented_message());
                        let mut out = stream(&mut w, Opcode::Binary, pieces, true);
                        let frames = frames(&out);
                        assert_eq!(frames.len(), pieces.len());
                        for (i, (header, _)) in frames.iter().enumerate() {
                            let first = i == 0;
                            let op = if first {
                                Opcode::Binary
                            } else {
                                Opcode::Continuation
                            };
                            assert_eq!(header.opcode, op);
                            assert_eq!(header.fin, i + 1 == pieces.len());
                            assert_eq!(header.rsv1, first && deflate.is_some());
                            assert_eq!(header.mask.is_some(), client);
                        }
                        let mut events = Vec::new();
                        r.feed(&out, &mut events).unwrap();
                        assert_eq!(events, vec![Event::Binary(pieces.concat())]);
                        // Whole messages between streamed ones share the same stream.
                        out.clear();
                        w.encode_message(Opcode::Text, b"between", 0, true, &mut out)
                            .unwrap();
                        events.clear();
                        r.feed(&out, &mut events).unwrap();
                        assert_eq!(events, vec![Event::Text("between".into())]);
                    }
                }
            }
        }
    }

    #[test]
    fn text_split_inside_a_code_point() {
        let text = "héllo €𝄞";
        let bytes = text.as_bytes();
        for deflate in [None, Some(false), Some(true)] {
            let mut w = writer(true, deflate, 0);
            let mut r = reader(false, deflate);
            for cut in 0..=bytes.len() {
                let out = stream(
                    &mut w,
                    Opcode::Text,
                    &[&bytes[..cut], &bytes[cut..], b""],
                    true,
                );
                let mut events = Vec::new();
                r.feed(&out, &mut events).unwrap();
                assert_eq!(events, vec![Event::Text(text.into())], "{cut}");
            }
        }
    }

    #[test]
    fn compression_of_a_stream_is_decided_on_its_first_fragment() {
        let mut w = writer(false, Some(false), 100);
        // A first fragment that is also the last is a whole message: the threshold applies.
        let small = stream(&mut w, Opcode::Binary, &[b"tiny"], true);
        assert_eq!(small, [0x82, 0x04, b't', b'i', b'n', b'y']);
        let big = stream(&mut w, Opcode::Binary, &[&[b'x'; 100]], true);
        assert_eq!(big[0], 0xc2);
        // More fragments to come: the size is unknown, so the message is compressed.
        let streamed = frames(&stream(&mut w, Opcode::Binary, &[b"a", b"b", b""], true));
        assert!(streamed[0].0.rsv1);
        // compress=false on the first fragment: none is compressed, whatever comes later.
        let mut out = Vec::new();
        w.encode_fragment(Opcode::Binary, &[1; 200], false, false, &mut out)
            .unwrap();
        w.encode_fragment(Opcode::Continuation, &[2; 200], true, true, &mut out)
            .unwrap();
        let frames = frames(&out);
        assert!(!frames[0].0.rsv1 && !frames[1].0.rsv1);
        assert_eq!(frames[1].1, [2; 200]);
        // Without a deflater nothing is compressed.
        let plain = stream(
            &mut writer(false, None, 0),
            Opcode::Binary,
            &[b"a", b""],
            true,
        );
        assert_eq!(plain, [0x02, 0x01, b'a', 0x80, 0x00]);
    }

    #[test]
    fn uncompressed_messages_leave_the_compressor_alone() {
        for nct in [false, true] {
            // The same compressed messages with and without uncompressed ones between: the
            // compressed bytes are identical, so the compressor never saw the others.
            let mut with = writer(true, Some(nct), 0);
            let mut without = writer(true, Some(nct), 0);
            let mut r = reader(false, Some(nct));
            for round in 0..3 {
                let data = format!("message {round} message {round}");
                let a = stream(&mut with, Opcode::Text, &[data.as_bytes(), b"!", b""], true);
                let b = stream(
                    &mut without,
                    Opcode::Text,
                    &[data.as_bytes(), b"!", b""],
                    true,
                );
                let payloads = |bytes: &[u8]| -> Vec<Vec<u8>> {
                    frames(bytes).into_iter().map(|(_, p)| p).collect()
                };
                assert_eq!(payloads(&a), payloads(&b));
                let mut events = Vec::new();
                r.feed(&a, &mut events).unwrap();
                let mut plain = Vec::new();
                with.encode_message(Opcode::Text, data.as_bytes(), 0, false, &mut plain)
                    .unwrap();
                with.encode_message(Opcode::Binary, &[7; 300], 100, false, &mut plain)
                    .unwrap();
                let mut buf = vec![0; with.plain_frame_len(5)];
                with.write_message_into(&mut buf, Opcode::Binary, b"bytes", false)
                    .unwrap();
                plain.extend_from_slice(&buf);
                plain.extend(stream(&mut with, Opcode::Binary, &[b"x", b""], false));
                assert!(frames(&plain).iter().all(|(h, _)| !h.rsv1));
                r.feed(&plain, &mut events).unwrap();
                assert_eq!(
                    events,
                    vec![
                        Event::Text(format!("{data}!")),
                        Event::Text(data.clone()),
                        Event::Binary(vec![7; 300]),
                        Event::Binary(b"bytes".to_vec()),
                        Event::Binary(b"x".to_vec()),
                    ]
                );
            }
        }
        let deflating = writer(false, Some(false), 0);
        assert!(deflating.plain_header(Opcode::Binary, 10, true).is_none());
        assert!(deflating.plain_header(Opcode::Binary, 10, false).is_some());
    }

    #[test]
    fn fragments_in_the_wrong_order_are_refused() {
        let mut w = writer(false, Some(false), 0);
        let mut out = Vec::new();
        assert!(w
            .encode_fragment(Opcode::Continuation, b"x", true, true, &mut out)
            .is_err());
        assert!(w
            .encode_fragment(Opcode::Ping, b"x", true, true, &mut out)
            .is_err());
        w.encode_fragment(Opcode::Text, b"x", false, true, &mut out)
            .unwrap();
        assert!(w.in_fragmented_message());
        let before = out.len();
        assert!(w
            .encode_fragment(Opcode::Binary, b"y", true, true, &mut out)
            .is_err());
        assert!(w
            .encode_message(Opcode::Binary, b"y", 0, true, &mut out)
            .is_err());
        let mut buf = vec![0; w.plain_frame_len(1)];
        assert!(w
            .write_message_into(&mut buf, Opcode::Binary, b"y", false)
            .is_err());
        assert!(w.plain_header(Opcode::Binary, 1, false).is_none());
        assert_eq!(out.len(), before, "nothing written");
        // Control frames may come between fragments (RFC 6455 §5.4).
        w.encode_control(Opcode::Ping, b"p", &mut out).unwrap();
        // Compacting between fragments is safe.
        assert!(w.compact());
        w.encode_fragment(Opcode::Continuation, b"x", true, true, &mut out)
            .unwrap();
        assert!(!w.in_fragmented_message());
        assert_eq!(
            read_all(true, &out, true),
            vec![Event::Ping(b"p".to_vec()), Event::Text("xx".into())]
        );
    }

    mod reference {
        use super::*;
        use flate2::{Decompress, FlushDecompress};
        use proptest::prelude::*;

        /// Inflate `input` with flate2 to the end of what it holds.
        fn inflate(d: &mut Decompress, input: &[u8]) -> Vec<u8> {
            let mut out = Vec::with_capacity(input.len() * 4 + 1024);
            let mut rest = input;
            loop {
                out.reserve(1 << 16);
                let before = d.total_in();
                d.decompress_vec(rest, &mut out, FlushDecompress::Sync)
                    .unwrap();
                let used = usize::try_from(d.total_in() - before).unwrap();
                rest = &rest[used..];
                if rest.is_empty() && out.len() < out.capacity() {
                    return out;
                }
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]

            /// Messages streamed in random fragments: the payloads are one raw DEFLATE stream
            /// per message (continuing across messages with context takeover) that flate2
            /// inflates fragment by fragment, each fragment giving all of its data at once.
            #[test]
            fn fragments_are_one_flushed_deflate_stream(
                client in any::<bool>(),
                no_context_takeover in any::<bool>(),
                messages in prop::collection::vec(
                    prop::collection::vec(
                        prop::collection::vec(prop::sample::select(b"ab \x00\xff".to_vec()), 0..600),
                        1..6,
                    ),
                    1..5,
                ),
            ) {
                let mut w = writer(client, Some(no_context_takeover), 0);
                let mut d = Decompress::new_with_window_bits(false, 15);
                for pieces in &messages {
                    let pieces: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
                    let out = stream(&mut w, Opcode::Binary, &pieces, true);
                    if no_context_takeover {
                        d.reset(false);
                    }
                    let frames = frames(&out);
                    prop_assert_eq!(frames.len(), pieces.len());
                    for (i, ((header, payload), data)) in frames.iter().zip(&pieces).enumerate() {
                        prop_assert_eq!(header.rsv1, i == 0);
                        let mut payload = payload.clone();
                        if header.fin {
                            payload.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
                        } else {
                            prop_assert!(payload.is_empty() || payload.ends_with(&[0x00, 0x00, 0xff, 0xff]));
                        }
                        prop_assert_eq!(&inflate(&mut d, &payload), data);
                    }
                }
            }
        }
    }

    #[test]
    fn shared_encodings_follow_the_writer() {
        let plain = writer(false, None, 0);
        assert_eq!(plain.shared_encoding(10, true), Some(SharedEncoding::Plain));
        assert_eq!(writer(true, Some(false), 0).shared_encoding(10, true), None);
        let w = writer(false, Some(false), 100);
        assert_eq!(w.shared_encoding(99, true), Some(SharedEncoding::Plain));
        assert_eq!(w.shared_encoding(100, false), Some(SharedEncoding::Plain));
        let settings = Deflater::new(6, 15, false).unwrap().settings();
        assert_eq!(
            w.shared_encoding(100, true),
            Some(SharedEncoding::Deflate(settings))
        );
        // Context takeover does not change what a fresh compressor writes; window, level
        // and memory level do.
        assert_eq!(Deflater::new(6, 15, true).unwrap().settings(), settings);
        assert_ne!(Deflater::new(6, 10, false).unwrap().settings(), settings);
        assert_ne!(Deflater::new(1, 15, false).unwrap().settings(), settings);
        assert_ne!(
            Deflater::with_mem_level(6, 15, false, 9)
                .unwrap()
                .settings(),
            settings
        );
        let mut f = writer(false, Some(false), 0);
        f.encode_fragment(Opcode::Text, b"a", false, true, &mut Vec::new())
            .unwrap();
        assert_eq!(f.shared_encoding(10, true), None);
        assert!(SharedEncoding::Plain.encode(Opcode::Ping, b"").is_err());
    }

    #[test]
    fn shared_frames_interleave_with_each_writers_own_messages() {
        // Each connection's own messages refer back into its window; the broadcast ones
        // were compressed once, for all, referring to nothing. Every peer must read both.
        let text = b"the quick brown fox jumps over the lazy dog, again and again. ".repeat(20);
        for no_context_takeover in [false, true] {
            let mut writers: Vec<Writer> = (0..3)
                .map(|_| writer(false, Some(no_context_takeover), 0))
                .collect();
            let mut readers: Vec<Reader> = (0..3)
                .map(|_| reader(true, Some(no_context_takeover)))
                .collect();
            for round in 0..6u8 {
                let shared = [&text[..], &[round; 3]].concat();
                let encoding = writers[0].shared_encoding(shared.len(), true).unwrap();
                let frame = encoding.encode(Opcode::Binary, &shared).unwrap();
                assert!(frame.len() < shared.len() / 4);
                for (i, (w, r)) in writers.iter_mut().zip(&mut readers).enumerate() {
                    assert_eq!(w.shared_encoding(shared.len(), true), Some(encoding));
                    w.sent_shared(encoding, &shared);
                    let own = [&text[round as usize..], &[u8::try_from(i).unwrap(); 5]].concat();
                    let mut bytes = frame.clone();
                    w.encode_message(Opcode::Binary, &own, 0, true, &mut bytes)
                        .unwrap();
                    let mut events = Vec::new();
                    r.feed(&bytes, &mut events).unwrap();
                    assert_eq!(
                        events,
                        vec![Event::Binary(shared.clone()), Event::Binary(own)]
                    );
                }
            }
            // The own messages after the first round took the shared ones into account:
            // with context takeover they refer back to them and stay tiny.
            let mut out = Vec::new();
            writers[0]
                .encode_message(Opcode::Binary, &text, 0, true, &mut out)
                .unwrap();
            if no_context_takeover {
                assert!(out.len() > 40);
            } else {
                assert!(out.len() < 30, "{}", out.len());
            }
        }
    }

    #[test]
    fn plain_shared_frames_leave_the_compressor_alone() {
        let mut w = writer(false, Some(false), 0);
        let mut out = Vec::new();
        w.encode_message(Opcode::Text, b"hello", 0, true, &mut out)
            .unwrap();
        assert!(w.deflater_allocated());
        let frame = SharedEncoding::Plain.encode(Opcode::Text, b"hi").unwrap();
        assert_eq!(frame, b"\x81\x02hi");
        w.sent_shared(SharedEncoding::Plain, b"hi");
        assert!(w.deflater_allocated());
    }
}
