//! Message assembly: bytes from the network in, events out.
//!
//! [`Reader`] is an incremental state machine fed whatever chunks the transport delivers. It
//! parses frame headers (keeping at most [`MAX_HEADER_LEN`] bytes of an incomplete header),
//! then streams each payload straight to its destination, unmasking on the way:
//!
//! - data frames go into the message buffer (through the inflater when RSV1 is set), and text
//!   is validated as it arrives, so invalid UTF-8 fails the connection at the first chunk
//!   that contains it;
//! - control frames go into a small buffer (at most 125 bytes) and are delivered as soon as
//!   they end, even between the fragments of a message (RFC 6455 §5.4).
//!
//! A message comes as one event ([`Event::Text`], [`Event::Binary`]) unless the reader streams
//! fragments ([`Reader::stream_fragments`]) and its first frame has FIN clear: it then comes
//! as one [`Event::Fragment`] per frame, as each frame ends. Unfragmented messages take the
//! same path either way.
//!
//! Invariants:
//! - Memory is bounded by `max_size` (plus one byte for the inflater's overflow check): the
//!   size of an uncompressed message is checked against `max_size` from each frame header,
//!   before any of its payload is stored; compressed messages are bounded while inflating.
//!   A streamed message counts the fragments already delivered against `max_size` too.
//! - `max_fragment_size` bounds each data frame the same way: its payload length from the
//!   header, before any of it is stored, and what it inflates to.
//! - After an error the reader is failed: it drops its buffers and ignores further input. The
//!   caller sends a close frame with [`Error::close_code`].
//! - After a close frame the reader ignores further input (RFC 6455 §5.5.1: the peer "MUST
//!   NOT send any more data frames after sending a Close frame").

use std::ops::Range;

use crate::config::{LEAN_RECYCLED_CAPACITY, MAX_RECYCLED_CAPACITY, MAX_UPFRONT_RESERVE};
use crate::deflate::Inflater;
use crate::error::{Error, Result};
use crate::frames::{parse_close, parse_header, FrameHeader, Opcode, MAX_HEADER_LEN};
use crate::mask::extend_masked;
use crate::utf8::Utf8Validator;

/// What the peer sent, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A complete text message.
    Text(String),
    /// A complete binary message.
    Binary(Vec<u8>),
    /// A ping with its application data.
    Ping(Vec<u8>),
    /// A pong with its application data.
    Pong(Vec<u8>),
    /// One frame of a fragmented message, when the reader streams fragments: its payload
    /// (after decompression). Text is validated as UTF-8 across the fragments, and a piece
    /// may end inside a character that the next piece completes.
    Fragment {
        /// The payload of the frame.
        data: Vec<u8>,
        /// Whether the message is text (else binary).
        text: bool,
        /// Whether this frame ends the message.
        fin: bool,
    },
    /// A close frame: code 1005 and an empty reason when it had no payload.
    Close {
        /// The close code (RFC 6455 §7.4).
        code: u16,
        /// The close reason.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Waiting for (the rest of) a frame header.
    Header,
    /// Inside the payload of `header`, `offset` bytes in.
    Payload { header: FrameHeader, offset: u64 },
    /// Inside the payload of `header`, `offset` bytes in, which the caller receives into its
    /// own buffer (see [`Reader::begin_direct`]).
    Direct { header: FrameHeader, offset: u64 },
    /// A close frame was received: input is ignored.
    Closed,
    /// The peer broke the protocol: input is ignored.
    Failed,
}

/// A data message being assembled.
#[derive(Debug)]
struct Message {
    text: bool,
    compressed: bool,
    /// Delivered frame by frame ([`Event::Fragment`]): `data` holds the current frame only.
    stream: bool,
    /// Bytes of the message delivered in earlier fragments.
    delivered: usize,
    /// Where the current frame's decompressed payload starts in `data` (compressed
    /// messages only).
    frame_start: usize,
    /// The most `data` may hold while the current frame is inflated: the limits of the
    /// message and of the frame (compressed messages only; an uncompressed frame is
    /// checked from its header).
    limit: usize,
    data: Vec<u8>,
    utf8: Utf8Validator,
}

impl Message {
    /// The error for an inflater that went past `limit`: the frame's limit if the current
    /// frame went past it, else the message's.
    fn size_error(&self, err: Error, max_size: usize, max_fragment_size: usize) -> Error {
        match err {
            Error::TooBig { .. }
                if self.data.len().saturating_sub(self.frame_start) > max_fragment_size =>
            {
                Error::FrameTooBig {
                    limit: max_fragment_size,
                }
            }
            Error::TooBig { .. } => Error::TooBig { limit: max_size },
            err => err,
        }
    }
}

/// The receiving side of a connection.
#[derive(Debug)]
pub struct Reader {
    /// Whether this endpoint is a client (frames must be unmasked) or a server (masked).
    client: bool,
    /// Limit on the size of a message after decompression (`usize::MAX` for none).
    max_size: usize,
    /// Limit on the payload of each data frame, and on what it inflates to (`usize::MAX`
    /// for none).
    max_fragment_size: usize,
    /// Whether a fragmented message is delivered frame by frame.
    stream: bool,
    /// Present when permessage-deflate was negotiated.
    inflater: Option<Inflater>,
    state: State,
    /// The start of a header that arrived incomplete.
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    /// The data message in progress, if any.
    message: Option<Message>,
    /// The payload of the control frame in progress.
    control: Vec<u8>,
    /// Unmasked compressed bytes on their way to the inflater (server side only).
    scratch: Vec<u8>,
    /// An empty buffer handed back by [`recycle`](Self::recycle), for the next message.
    spare: Vec<u8>,
}

impl Reader {
    /// A reader for a client (`client = true`) or a server.
    ///
    /// `max_size` limits each message after decompression (`None`: no limit). `inflater`
    /// enables permessage-deflate: RSV1 is then allowed on the first frame of a data message.
    #[must_use]
    pub fn new(client: bool, max_size: Option<usize>, inflater: Option<Inflater>) -> Self {
        Self {
            client,
            max_size: max_size.unwrap_or(usize::MAX),
            max_fragment_size: usize::MAX,
            stream: false,
            inflater,
            state: State::Header,
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            message: None,
            control: Vec::new(),
            scratch: Vec::new(),
            spare: Vec::new(),
        }
    }

    /// Limit each data frame's payload to `max_fragment_size` bytes, before and after
    /// decompression (`None`, the default: only `max_size` applies), as websockets does with
    /// `max_size=(max_message_size, max_fragment_size)`.
    #[must_use]
    pub fn max_fragment_size(mut self, max_fragment_size: Option<usize>) -> Self {
        self.max_fragment_size = max_fragment_size.unwrap_or(usize::MAX);
        self
    }

    /// Deliver a fragmented message frame by frame ([`Event::Fragment`]) instead of
    /// assembled (the default), for an API that streams fragments. A message of one frame
    /// is delivered whole either way.
    #[must_use]
    pub fn stream_fragments(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    /// Hand back the buffer of a delivered message so the next message can reuse it.
    ///
    /// Buffers larger than 16 MiB are dropped, and with a pooled inflater larger than 4 KiB
    /// ([`LEAN_RECYCLED_CAPACITY`]); [`compact`](Self::compact) frees the one kept.
    pub fn recycle(&mut self, mut buffer: Vec<u8>) {
        let max = if self.inflater.as_ref().is_some_and(Inflater::is_pooled) {
            LEAN_RECYCLED_CAPACITY
        } else {
            MAX_RECYCLED_CAPACITY
        };
        if buffer.capacity() <= max && buffer.capacity() > self.spare.capacity() {
            buffer.clear();
            self.spare = buffer;
        }
    }

    /// Free what an idle connection does not need: the buffer kept for the next message and,
    /// between messages, the decompression state (see [`Inflater::compact`]). Does nothing
    /// in the middle of a message. Returns how many bytes of buffers and state it freed, at
    /// least (the decompression state counts as its window).
    pub fn compact(&mut self) -> usize {
        if self.message.is_some() {
            return 0;
        }
        let mut freed = self.spare.capacity() + self.scratch.capacity();
        self.spare = Vec::new();
        self.scratch = Vec::new();
        if let Some(inflater) = self.inflater.as_mut() {
            if inflater.compact() {
                freed += inflater.window_size();
            }
        }
        freed
    }

    /// Whether the decompression state is allocated.
    #[must_use]
    pub fn inflater_allocated(&self) -> bool {
        self.inflater.as_ref().is_some_and(Inflater::is_allocated)
    }

    /// Whether a close frame was received (input is ignored from then on).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether the reader failed (input is ignored from then on).
    #[must_use]
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }

    /// Whether a fragmented data message has started and not ended.
    #[must_use]
    pub fn in_message(&self) -> bool {
        self.message.is_some()
    }

    /// Feed the next chunk from the network; complete events are appended to `events`.
    ///
    /// Events that precede an error in the stream are appended before the error is returned.
    ///
    /// # Errors
    ///
    /// The first rule the peer broke, with its close code. The reader is failed afterwards.
    pub fn feed(&mut self, data: &[u8], events: &mut Vec<Event>) -> Result<()> {
        self.feed_until_direct(data, events, usize::MAX).map(|_| ())
    }

    /// [`feed`](Self::feed), stopping right after a frame header whose payload the caller
    /// could receive into its own buffer ([`direct_len`](Self::direct_len) with
    /// `min_remaining`), so that none of it is copied into the message buffer first. Returns
    /// how many bytes of `data` it used: all of them unless it stopped.
    ///
    /// # Errors
    ///
    /// As [`feed`](Self::feed).
    pub fn feed_until_direct(
        &mut self,
        data: &[u8],
        events: &mut Vec<Event>,
        min_remaining: usize,
    ) -> Result<usize> {
        let result = self.feed_inner(data, events, min_remaining);
        if result.is_err() {
            self.state = State::Failed;
            self.message = None;
            self.control = Vec::new();
            self.scratch = Vec::new();
            self.spare = Vec::new();
        }
        result
    }

    fn feed_inner(
        &mut self,
        mut data: &[u8],
        events: &mut Vec<Event>,
        stop_at_direct: usize,
    ) -> Result<usize> {
        let total = data.len();
        loop {
            match self.state {
                State::Closed | State::Failed => return Ok(total),
                State::Direct { .. } => {
                    return Err(Error::InvalidArgument(
                        "feed() while the caller receives a payload directly".into(),
                    ));
                }
                State::Header => {
                    let Some((header, consumed)) = self.next_header(data)? else {
                        return Ok(total);
                    };
                    data = &data[consumed..];
                    self.start_frame(header)?;
                    self.state = State::Payload { header, offset: 0 };
                    if header.payload_len == 0 {
                        self.end_frame(header, events)?;
                    } else if stop_at_direct != usize::MAX
                        && self.direct_len(stop_at_direct).is_some()
                    {
                        return Ok(total - data.len());
                    }
                }
                State::Payload { header, offset } => {
                    if data.is_empty() {
                        return Ok(total);
                    }
                    let remaining = header.payload_len - offset;
                    let n = usize::try_from(remaining).map_or(data.len(), |r| r.min(data.len()));
                    self.payload(header, offset, &data[..n])?;
                    data = &data[n..];
                    let offset = offset + n as u64;
                    self.state = State::Payload { header, offset };
                    if offset == header.payload_len {
                        self.end_frame(header, events)?;
                    }
                }
            }
        }
    }

    /// Let the caller receive the rest of the current frame's payload into its own buffer,
    /// which saves copying a large message: once from the network buffer into the message
    /// buffer, and again from there into the object handed to the application.
    ///
    /// Possible in the payload of an unfragmented, uncompressed binary message with at least
    /// `min_remaining` bytes still to come (see [`direct_len`](Self::direct_len)). Returns the whole
    /// payload length and the part of it already received (unmasked), which the caller
    /// copies to the start of its buffer; then it reports each piece it receives after that
    /// with [`direct_received`](Self::direct_received). [`feed`](Self::feed) fails until the
    /// payload is complete.
    pub fn begin_direct(&mut self, min_remaining: usize) -> Option<(usize, &[u8])> {
        let len = self.direct_len(min_remaining)?;
        let State::Payload { header, offset } = self.state else {
            return None;
        };
        let message = self.message.as_ref()?;
        self.state = State::Direct { header, offset };
        Some((len, &message.data))
    }

    /// The payload length [`begin_direct`](Self::begin_direct) would return, without
    /// starting: the caller allocates its buffer first. The length is bounded like the
    /// reservation from a header: by `max_size`, or by 16 MiB without a limit.
    #[must_use]
    pub fn direct_len(&self, min_remaining: usize) -> Option<usize> {
        let State::Payload { header, offset } = self.state else {
            return None;
        };
        let len = usize::try_from(header.payload_len).ok()?;
        let remaining = len - usize::try_from(offset).ok()?;
        let max_len = MAX_UPFRONT_RESERVE.max(if self.max_size == usize::MAX {
            0
        } else {
            self.max_size
        });
        let plain = self.message.as_ref().is_some_and(|m| !m.compressed);
        (header.opcode == Opcode::Binary
            && header.fin
            && plain
            && len <= max_len
            && remaining >= min_remaining)
            .then_some(len)
    }

    /// How much of the payload the caller receives directly is still to come, if it does.
    #[must_use]
    pub fn direct_remaining(&self) -> Option<usize> {
        self.direct_progress().map(|(received, len)| len - received)
    }

    /// Where the payload the caller receives directly stands, if it does: how many bytes of
    /// it were received (the prefix [`begin_direct`](Self::begin_direct) handed over
    /// included), and its whole length. The reader is the one owner of this offset; the
    /// caller's buffer holds the bytes only.
    #[must_use]
    pub fn direct_progress(&self) -> Option<(usize, usize)> {
        let State::Direct { header, offset } = self.state else {
            return None;
        };
        // Both fit: `direct_len` allowed this payload only if its length is a `usize`.
        Some((
            usize::try_from(offset).ok()?,
            usize::try_from(header.payload_len).ok()?,
        ))
    }

    /// Where the next `n` bytes of the payload the caller receives directly go in its buffer
    /// (which holds the whole payload from offset 0): the caller writes them there, then
    /// reports them with [`direct_received`](Self::direct_received). Changes nothing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] outside a direct payload, or when `n` is more than what
    /// remains of it.
    pub fn direct_next(&self, n: usize) -> Result<Range<usize>> {
        let Some((received, len)) = self.direct_progress() else {
            return Err(Error::InvalidArgument(
                "no message is received in place".into(),
            ));
        };
        if n > len - received {
            return Err(Error::InvalidArgument(
                "more bytes than the message has left".into(),
            ));
        }
        Ok(received..received + n)
    }

    /// The caller received `piece`, the next bytes of the payload it receives directly, into
    /// its buffer: unmask it there. Returns whether the payload (and so the message) is
    /// complete; the reader then parses headers again, and the caller delivers the message.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] outside a direct payload or for a piece longer than what
    /// remains of it (a bug of the caller; the reader fails).
    pub fn direct_received(&mut self, piece: &mut [u8]) -> Result<bool> {
        let State::Direct { header, offset } = self.state else {
            return Err(Error::InvalidArgument(
                "no message is received in place".into(),
            ));
        };
        if let Err(err) = self.direct_next(piece.len()) {
            self.state = State::Failed;
            self.message = None;
            return Err(err);
        }
        if let Some(key) = header.mask {
            crate::mask::apply_mask(piece, key, (offset % 4) as usize);
        }
        let offset = offset + piece.len() as u64;
        if offset < header.payload_len {
            self.state = State::Direct { header, offset };
            return Ok(false);
        }
        self.state = State::Header;
        if let Some(message) = self.message.take() {
            self.recycle(message.data);
        }
        Ok(true)
    }

    /// Parse the next header from the saved partial header and `data`. Returns the header and
    /// how many bytes of `data` it used, or `None` once `data` is used up.
    fn next_header(&mut self, data: &[u8]) -> Result<Option<(FrameHeader, usize)>> {
        if self.header_len == 0 {
            // Fast path: the whole header is in this chunk.
            if let Some(parsed) = parse_header(data)? {
                return Ok(Some(parsed));
            }
            // A header is at most 14 bytes, so `data` is shorter than that here.
            self.header[..data.len()].copy_from_slice(data);
            self.header_len = data.len();
            return Ok(None);
        }
        let take = (MAX_HEADER_LEN - self.header_len).min(data.len());
        self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
        match parse_header(&self.header[..self.header_len + take])? {
            None => {
                self.header_len += take;
                Ok(None)
            }
            Some((header, len)) => {
                let used = len - self.header_len;
                self.header_len = 0;
                Ok(Some((header, used)))
            }
        }
    }

    /// Check the rules that depend on the role, the extensions and the message in progress,
    /// and prepare the destination of the payload.
    fn start_frame(&mut self, header: FrameHeader) -> Result<()> {
        // RFC 6455 §5.1: "a client MUST mask all frames that it sends to the server" and "A
        // server MUST NOT mask any frames that it sends to the client"; the receiver "MUST
        // close the connection" in both cases.
        match (self.client, header.mask.is_some()) {
            (true, true) => return Err(Error::Protocol("masked frame from server")),
            (false, false) => return Err(Error::Protocol("unmasked frame from client")),
            _ => {}
        }
        // RFC 6455 §5.2: RSV bits "MUST be 0 unless an extension is negotiated that defines
        // meanings for non-zero values".
        if header.rsv2 || header.rsv3 {
            return Err(Error::Protocol("reserved bits must be 0"));
        }
        if header.rsv1 {
            if self.inflater.is_none() {
                return Err(Error::Protocol("reserved bits must be 0"));
            }
            // RFC 7692 §6: RSV1 is set on "the first frame of a message" only; control
            // frames and continuation frames must have it clear.
            if !matches!(header.opcode, Opcode::Text | Opcode::Binary) {
                return Err(Error::Protocol(
                    "RSV1 set on a control or continuation frame",
                ));
            }
        }
        match header.opcode {
            Opcode::Close | Opcode::Ping | Opcode::Pong => {
                self.control.clear();
                return Ok(());
            }
            Opcode::Continuation => {
                let Some(message) = self.message.as_mut() else {
                    return Err(Error::Protocol("continuation frame without a message"));
                };
                if message.stream {
                    self.next_fragment();
                }
            }
            Opcode::Text | Opcode::Binary => {
                if self.message.is_some() {
                    return Err(Error::Protocol("data frame inside a fragmented message"));
                }
                self.message = Some(Message {
                    text: header.opcode == Opcode::Text,
                    compressed: header.rsv1,
                    stream: self.stream && !header.fin,
                    delivered: 0,
                    frame_start: 0,
                    limit: 0,
                    data: std::mem::take(&mut self.spare),
                    utf8: Utf8Validator::new(),
                });
            }
        }
        let (max_size, max_fragment_size) = (self.max_size, self.max_fragment_size);
        let Some(message) = self.message.as_mut() else {
            return Ok(());
        };
        // RFC 6455 §10.4: limit the frame size; decided from the header, before any payload
        // is stored (for a compressed frame, its compressed size, as websockets does).
        if header.payload_len > max_fragment_size as u64 {
            return Err(frame_too_big(max_fragment_size));
        }
        // What is left of the message's limit (fragments delivered were within it).
        let budget = max_size.saturating_sub(message.delivered);
        if message.compressed {
            // The inflater bounds the output; compressed input is streamed, not stored.
            message.frame_start = message.data.len();
            message.limit = budget.min(message.frame_start.saturating_add(max_fragment_size));
            return Ok(());
        }
        let total = u64::try_from(message.data.len())
            .unwrap_or(u64::MAX)
            .saturating_add(header.payload_len);
        if total > budget as u64 {
            return Err(Error::TooBig { limit: max_size });
        }
        let reserve = usize::try_from(header.payload_len)
            .unwrap_or(usize::MAX)
            .min(MAX_UPFRONT_RESERVE.max(if max_size == usize::MAX { 0 } else { max_size }));
        message
            .data
            .try_reserve_exact(reserve)
            .map_err(|_| Error::TooBig { limit: max_size })?;
        Ok(())
    }

    /// Route a piece of payload, `offset` bytes into the frame, to its destination.
    fn payload(&mut self, header: FrameHeader, offset: u64, chunk: &[u8]) -> Result<()> {
        // The mask cycles every 4 bytes: only the offset modulo 4 matters.
        let phase = (offset % 4) as usize;
        if header.opcode.is_control() {
            push(&mut self.control, chunk, header.mask, phase);
            return Ok(());
        }
        let Some(message) = self.message.as_mut() else {
            return Err(Error::Protocol("continuation frame without a message"));
        };
        let before = message.data.len();
        if message.compressed {
            let Some(inflater) = self.inflater.as_mut() else {
                return Err(Error::Protocol("reserved bits must be 0"));
            };
            let input = if header.mask.is_some() {
                self.scratch.clear();
                push(&mut self.scratch, chunk, header.mask, phase);
                &self.scratch[..]
            } else {
                chunk
            };
            if let Err(err) = inflater.decompress(input, &mut message.data, message.limit) {
                return Err(message.size_error(err, self.max_size, self.max_fragment_size));
            }
        } else {
            push(&mut message.data, chunk, header.mask, phase);
        }
        if message.text {
            message.utf8.feed(&message.data[before..], false)?;
        }
        Ok(())
    }

    /// Deliver what a complete frame finished.
    fn end_frame(&mut self, header: FrameHeader, events: &mut Vec<Event>) -> Result<()> {
        self.state = State::Header;
        match header.opcode {
            Opcode::Ping => events.push(Event::Ping(self.control.clone())),
            Opcode::Pong => events.push(Event::Pong(self.control.clone())),
            Opcode::Close => {
                let (code, reason) = parse_close(&self.control)?;
                events.push(Event::Close {
                    code,
                    reason: reason.to_owned(),
                });
                self.state = State::Closed;
            }
            Opcode::Text | Opcode::Binary | Opcode::Continuation => {
                if header.fin {
                    let event = self.end_message()?;
                    events.push(event);
                } else if let Some(event) = self.end_fragment() {
                    events.push(event);
                }
            }
        }
        Ok(())
    }

    /// Start the next frame of a streamed message: the last fragment took the buffer, so
    /// reuse the one the glue handed back.
    // Out of line, as `frame_too_big`: code for fragmented messages only stays out of
    // `start_frame`, which LLVM inlines in the reader loop with the buffer reservation of
    // every frame (measured with callgrind: 40 more instructions per 64-byte frame when the
    // loop grew past LLVM's inlining budget).
    #[inline(never)]
    fn next_fragment(&mut self) {
        if let Some(message) = self.message.as_mut() {
            if message.data.capacity() == 0 {
                message.data = std::mem::take(&mut self.spare);
            }
        }
    }

    /// Deliver the frame that just ended, not the last of its message, if the message is
    /// streamed.
    fn end_fragment(&mut self) -> Option<Event> {
        let message = self.message.as_mut()?;
        if !message.stream {
            return None;
        }
        // The glue hands the buffer back (`recycle`) for the next fragment.
        let data = std::mem::take(&mut message.data);
        message.delivered = message.delivered.saturating_add(data.len());
        if message.compressed {
            if let Some(inflater) = self.inflater.as_mut() {
                inflater.keep_history(&data);
            }
        }
        Some(Event::Fragment {
            data,
            text: message.text,
            fin: false,
        })
    }

    fn end_message(&mut self) -> Result<Event> {
        let Some(mut message) = self.message.take() else {
            return Err(Error::Protocol("continuation frame without a message"));
        };
        let before = message.data.len();
        // An uncompressed message leaves the DEFLATE stream alone (RFC 7692 §6.1).
        if message.compressed {
            if let Some(inflater) = self.inflater.as_mut() {
                if let Err(err) = inflater.finish(&mut message.data, message.limit) {
                    return Err(message.size_error(err, self.max_size, self.max_fragment_size));
                }
            }
        }
        if message.text {
            message.utf8.feed(&message.data[before..], true)?;
            if message.stream {
                return Ok(Event::Fragment {
                    data: message.data,
                    text: true,
                    fin: true,
                });
            }
            // SAFETY: every byte of `message.data` went through `message.utf8`, which accepted
            // the whole sequence with `fin = true`, so it is valid UTF-8.
            let text = unsafe { String::from_utf8_unchecked(message.data) };
            Ok(Event::Text(text))
        } else if message.stream {
            Ok(Event::Fragment {
                data: message.data,
                text: false,
                fin: true,
            })
        } else {
            Ok(Event::Binary(message.data))
        }
    }
}

/// The error for a data frame over `max_fragment_size`.
#[cold]
fn frame_too_big(limit: usize) -> Error {
    Error::FrameTooBig { limit }
}

/// Append `chunk` to `dst`, unmasking it when the frame is masked.
#[inline]
fn push(dst: &mut Vec<u8>, chunk: &[u8], mask: Option<[u8; 4]>, phase: usize) {
    match mask {
        Some(key) => extend_masked(dst, chunk, key, phase),
        None => dst.extend_from_slice(chunk),
    }
}

#[cfg(test)]
mod tests;
