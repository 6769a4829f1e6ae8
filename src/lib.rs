//! `wsrs._core`: the Python bindings of the wsrs Rust core.
//!
//! This file is glue only: thin `#[pyclass]` wrappers over [`reader::Reader`],
//! [`writer::Writer`] and the codec functions, conversion of events into Python objects, and
//! of errors into one exception type carrying the close code. Everything below it is plain
//! Rust, tested with `cargo test` and benchmarked with criterion without Python.
//!
//! Copies: `bytes` input and C-contiguous buffers (the adapter's shared read buffer) are
//! parsed in place; other buffers are copied once. Each message handed to Python is one new
//! `str` or `bytes`; a large binary message is received straight into its `bytes`
//! (`Reader.receive_buffer`: the transport reads into it), and a large outgoing message is
//! encoded into a `bytearray` the writer reuses (`Writer.message_buffer`).

pub mod config;
pub mod deflate;
pub mod error;
pub mod frames;
pub mod mask;
pub mod reader;
pub mod utf8;
pub mod writer;

mod py;

use std::borrow::Cow;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyByteArrayMethods, PyBytes, PyList, PyString};

use crate::config::{
    COMPRESSOR_STATE_SIZE, GIL_RELEASE_THRESHOLD, LARGE_MESSAGE_SIZE, MAX_KEPT_SEND_BUFFER,
    RECEIVE_IN_PLACE_MIN,
};
use crate::frames::Opcode;
use crate::py::errors::{to_pyerr, Direction};
use crate::py::events::{Close, Ping, Pong};
use crate::py::input::{bytes_of, data_message, Input};

/// The receiving side of a connection: bytes in, events out.
#[pyclass(module = "wsrs._core")]
pub struct Reader {
    inner: reader::Reader,
    /// The message being received straight into its final `bytes`, if one is.
    direct: Option<Direct>,
}

/// A binary message received in place: `bytes` of the payload's length, not shared with any
/// Python code until it is complete, `filled` bytes of it written so far.
struct Direct {
    bytes: Py<PyBytes>,
    filled: usize,
    len: usize,
}

/// A writable buffer over the part of a message's `bytes` still to be received, which the
/// transport reads into (`asyncio.BufferedProtocol.get_buffer`).
///
/// It keeps the `bytes` alive while exported. Only the transport's read uses it: the message
/// is delivered after that read, and the buffer is not used again.
#[pyclass(module = "wsrs._core", frozen)]
pub struct ReceiveBuffer {
    bytes: Py<PyBytes>,
    start: usize,
    len: usize,
}

#[pymethods]
impl ReceiveBuffer {
    /// # Safety
    ///
    /// Called by Python with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::os::raw::c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        // SAFETY: `this.bytes` is a live `bytes` object (owned by `this`) of at least
        // `start + len` bytes (`Reader::receive_buffer` made it so), so the pointer is in
        // bounds. `PyBuffer_FillInfo` stores a new reference to `slf` in the view, which keeps
        // `this.bytes` alive as long as the view is exported; writing through it is sound
        // because the `bytes` is not visible to any Python code until the reader delivers it.
        unsafe {
            let base = pyo3::ffi::PyBytes_AsString(this.bytes.as_ptr()).cast::<u8>();
            if base.is_null() {
                return Err(PyErr::fetch(slf.py()));
            }
            let len = pyo3::ffi::Py_ssize_t::try_from(this.len)
                .map_err(|_| PyValueError::new_err("buffer too large"))?;
            if pyo3::ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                base.add(this.start).cast(),
                len,
                0,
                flags,
            ) == -1
            {
                return Err(PyErr::fetch(slf.py()));
            }
        }
        Ok(())
    }

    /// # Safety
    ///
    /// Called by Python when a view ends; nothing to release.
    unsafe fn __releasebuffer__(&self, _view: *mut pyo3::ffi::Py_buffer) {}

    fn __len__(&self) -> usize {
        self.len
    }
}

#[pymethods]
impl Reader {
    #[new]
    #[pyo3(signature = (*, client, max_size = Some(1 << 20), deflate = false, max_window_bits = 15, no_context_takeover = false))]
    fn new(
        py: Python<'_>,
        client: bool,
        max_size: Option<usize>,
        deflate: bool,
        max_window_bits: u8,
        no_context_takeover: bool,
    ) -> PyResult<Self> {
        let inflater = if deflate {
            Some(
                deflate::Inflater::new(max_window_bits, no_context_takeover)
                    .map_err(|e| to_pyerr(py, &e, Direction::Received))?,
            )
        } else {
            None
        };
        Ok(Self {
            inner: reader::Reader::new(client, max_size, inflater),
            direct: None,
        })
    }

    /// A writable `memoryview` for the transport to read the rest of a large binary message's
    /// payload into, or `None` to read into a buffer of its own and `feed` it.
    ///
    /// When the reader is in the payload of an unfragmented, uncompressed binary message with
    /// at least 64 KiB to come, it allocates the message's `bytes` now, and the network data
    /// goes straight there (unmasked in place by `received`): no copy through the network
    /// buffer and the message buffer. Call `received` with the number of bytes read into
    /// it; `feed` still works meanwhile, copying into the same `bytes`.
    fn receive_buffer<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        if self.direct.is_none() && !self.start_direct(py)? {
            return Ok(None);
        }
        let Some(direct) = self.direct.as_ref() else {
            return Ok(None);
        };
        let buffer = Bound::new(
            py,
            ReceiveBuffer {
                bytes: direct.bytes.clone_ref(py),
                start: direct.filled,
                len: direct.len - direct.filled,
            },
        )?;
        // A memoryview over it: transports slice what they read into (asyncio's TLS layer).
        // SAFETY: `buffer` is a live object exporting a buffer; the result is a new reference
        // or null with an exception set.
        unsafe {
            Bound::from_owned_ptr_or_err(py, pyo3::ffi::PyMemoryView_FromObject(buffer.as_ptr()))
        }
        .map(Some)
    }

    /// The transport read `nbytes` into the last `receive_buffer`; returns the events that
    /// completed (the message, once its payload is all there).
    fn received<'py>(&mut self, py: Python<'py>, nbytes: usize) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        if let Some(bytes) = self.advance_direct(py, nbytes, None)? {
            list.append(bytes)?;
        }
        Ok(list)
    }

    /// Feed a chunk from the network; returns the events it completed, in order.
    ///
    /// The payload of a large binary message goes straight into its final `bytes` here too
    /// (see `receive_buffer`), not through the message buffer.
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let input = Input::of(data)?;
        let mut data = input.as_slice();
        let list = PyList::empty(py);
        let mut events = Vec::new();
        loop {
            if let Some(direct) = self.direct.as_ref() {
                let n = data.len().min(direct.len - direct.filled);
                if let Some(bytes) = self.advance_direct(py, n, Some(&data[..n]))? {
                    list.append(bytes)?;
                }
                data = &data[n..];
                if data.is_empty() {
                    return Ok(list);
                }
            }
            let inner = &mut self.inner;
            let result = if data.len() >= GIL_RELEASE_THRESHOLD && input.may_detach() {
                py.detach(|| inner.feed_until_direct(data, &mut events, RECEIVE_IN_PLACE_MIN))
            } else {
                inner.feed_until_direct(data, &mut events, RECEIVE_IN_PLACE_MIN)
            };
            for event in events.drain(..) {
                match event {
                    reader::Event::Text(s) => {
                        list.append(PyString::new(py, &s))?;
                        inner.recycle(s.into_bytes());
                    }
                    reader::Event::Binary(b) => {
                        list.append(PyBytes::new(py, &b))?;
                        inner.recycle(b);
                    }
                    reader::Event::Ping(data) => list.append(Ping { data })?,
                    reader::Event::Pong(data) => list.append(Pong { data })?,
                    reader::Event::Close { code, reason } => {
                        list.append(Close { code, reason })?;
                    }
                }
            }
            match result {
                Err(err) => {
                    list.append(to_pyerr(py, &err, Direction::Received).into_value(py))?;
                    return Ok(list);
                }
                Ok(used) => {
                    data = &data[used..];
                    // Stopped at the header of a large binary message: the rest of `data`
                    // goes into its `bytes`.
                    if data.is_empty() {
                        return Ok(list);
                    }
                    if !self.start_direct(py)? {
                        // Not reached: the reader stops only where `direct_len` allows.
                        return Err(PyRuntimeError::new_err(
                            "reader stopped without a message to receive in place",
                        ));
                    }
                }
            }
        }
    }

    /// Whether a message is being received in place (see `receive_buffer`).
    #[getter]
    fn receiving_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Whether a close frame was received (further input is ignored).
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Whether the peer broke the protocol (further input is ignored).
    #[getter]
    fn failed(&self) -> bool {
        self.inner.is_failed()
    }

    /// Whether a fragmented message has started and not ended.
    #[getter]
    fn in_message(&self) -> bool {
        self.inner.in_message()
    }

    /// Free what an idle connection does not need (decompression state, spare buffers),
    /// keeping the window history; a no-op in the middle of a message. Returns the number
    /// of bytes freed, at least.
    fn compact(&mut self) -> usize {
        self.inner.compact()
    }

    /// Whether the decompression state is allocated.
    #[getter]
    fn inflater_allocated(&self) -> bool {
        self.inner.inflater_allocated()
    }
}

impl Reader {
    /// Start receiving the current message in place if it qualifies (see `receive_buffer`):
    /// allocate its `bytes` and copy there what came of the payload already. Returns whether
    /// it started.
    fn start_direct(&mut self, py: Python<'_>) -> PyResult<bool> {
        let Some(len) = self.inner.direct_len(RECEIVE_IN_PLACE_MIN) else {
            return Ok(false);
        };
        let size = pyo3::ffi::Py_ssize_t::try_from(len)
            .map_err(|_| PyValueError::new_err("message too large"))?;
        // SAFETY: a null pointer asks for `len` uninitialised bytes; the result is a new
        // reference to a `bytes` object (so the unchecked cast holds) or null with an
        // exception set, which `from_owned_ptr_or_err` turns into an error.
        let bytes = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size),
            )?
            .cast_into_unchecked::<PyBytes>()
        };
        let Some((_, prefix)) = self.inner.begin_direct(RECEIVE_IN_PLACE_MIN) else {
            return Ok(false); // not reached: direct_len() said it can
        };
        // SAFETY: the new `bytes` has `len` bytes, at least `prefix.len()` (the payload
        // received so far), and no other reference to it exists yet.
        unsafe {
            let base = pyo3::ffi::PyBytes_AsString(bytes.as_ptr()).cast::<u8>();
            std::ptr::copy_nonoverlapping(prefix.as_ptr(), base, prefix.len());
        }
        self.direct = Some(Direct {
            bytes: bytes.unbind(),
            filled: prefix.len(),
            len,
        });
        Ok(true)
    }

    /// `n` more bytes of the message received in place are in its `bytes` (or, with `src`,
    /// are copied there first): unmask them; returns the `bytes` once complete.
    fn advance_direct(
        &mut self,
        py: Python<'_>,
        n: usize,
        src: Option<&[u8]>,
    ) -> PyResult<Option<Py<PyBytes>>> {
        let Some(direct) = self.direct.as_mut() else {
            return Err(PyValueError::new_err("no message is received in place"));
        };
        if n > direct.len - direct.filled {
            return Err(PyValueError::new_err(
                "more bytes than the message has left",
            ));
        }
        // SAFETY: `direct.bytes` is a live `bytes` of `direct.len` bytes and
        // `filled + n <= len`, so the range is in bounds. No Python code has a reference to
        // it that reads or writes (the transport's read into it is over), and the GIL is held
        // while the slice lives.
        let piece = unsafe {
            let base = pyo3::ffi::PyBytes_AsString(direct.bytes.as_ptr()).cast::<u8>();
            std::slice::from_raw_parts_mut(base.add(direct.filled), n)
        };
        if let Some(src) = src {
            piece.copy_from_slice(src);
        }
        let complete = self
            .inner
            .direct_received(piece)
            .map_err(|e| to_pyerr(py, &e, Direction::Received))?;
        direct.filled += n;
        Ok(if complete {
            self.direct.take().map(|direct| direct.bytes)
        } else {
            None
        })
    }
}

/// The sending side of a connection: messages in, bytes out.
#[pyclass(module = "wsrs._core")]
pub struct Writer {
    inner: writer::Writer,
    /// The `bytearray` that [`Writer::message_buffer`] returned last, kept for the next
    /// message: reused only when nothing else refers to it any more.
    send_buffer: Option<Py<PyByteArray>>,
}

#[pymethods]
impl Writer {
    #[new]
    #[pyo3(signature = (*, client, deflate = false, max_window_bits = 15, no_context_takeover = false, level = 6, mem_level = 8, compress_threshold = 0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        client: bool,
        deflate: bool,
        max_window_bits: u8,
        no_context_takeover: bool,
        level: u32,
        mem_level: u8,
        compress_threshold: usize,
    ) -> PyResult<Self> {
        let deflater = if deflate {
            Some(
                deflate::Deflater::with_mem_level(
                    level,
                    max_window_bits,
                    no_context_takeover,
                    mem_level,
                )
                .map_err(|e| to_pyerr(py, &e, Direction::Sent))?,
            )
        } else {
            None
        };
        Ok(Self {
            inner: writer::Writer::new(client, deflater, compress_threshold),
            send_buffer: None,
        })
    }

    /// Encode a message: `str` as text, any bytes-like object as binary.
    #[pyo3(signature = (data, *, fragment_size = 0))]
    fn message<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        fragment_size: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (opcode, payload) = data_message(data)?;
        let inner = &mut self.inner;
        let big = payload.len() >= GIL_RELEASE_THRESHOLD;
        if fragment_size == 0 && !inner.compresses(payload.len()) {
            // One allocation: header and (masked) payload go straight into the `bytes`.
            let len = inner.plain_frame_len(payload.len());
            return PyBytes::new_with(py, len, |buf| {
                let result = if big {
                    py.detach(|| inner.write_message_into(buf, opcode, &payload))
                } else {
                    inner.write_message_into(buf, opcode, &payload)
                };
                result.map_err(|e| to_pyerr(py, &e, Direction::Sent))
            });
        }
        let mut out = Vec::new();
        let result = if big {
            py.detach(|| inner.encode_message(opcode, &payload, fragment_size, &mut out))
        } else {
            inner.encode_message(opcode, &payload, fragment_size, &mut out)
        };
        result.map_err(|e| to_pyerr(py, &e, Direction::Sent))?;
        Ok(PyBytes::new(py, &out))
    }

    /// Encode a message sent as one uncompressed frame into a `bytearray` that this writer
    /// reuses for the next message once nothing else refers to it (the transport has sent it
    /// or copied it); `None` when the message would be compressed (use `message`).
    ///
    /// For large messages: a client masks a 1 MiB message into the same memory every time
    /// instead of a new `bytes`, whose pages the C allocator may give back to the system and
    /// fault in again for the next message.
    fn message_buffer<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyByteArray>>> {
        let (opcode, payload) = data_message(data)?;
        if self.inner.compresses(payload.len()) {
            return Ok(None);
        }
        let len = self.inner.plain_frame_len(payload.len());
        let buf = match self.send_buffer.take() {
            // SAFETY: `kept` is a live object (this writer owns a reference to it).
            Some(kept) if unsafe { pyo3::ffi::Py_REFCNT(kept.as_ptr()) } == 1 => {
                let kept = kept.into_bound(py);
                match kept.resize(len) {
                    Ok(()) => kept,
                    Err(_) => PyByteArray::new_with(py, len, |_| Ok(()))?,
                }
            }
            _ => PyByteArray::new_with(py, len, |_| Ok(()))?,
        };
        let inner = &mut self.inner;
        // SAFETY: `buf` is either new or the kept buffer whose only reference was this
        // writer's: no other Python object (no memoryview either, which would hold a
        // reference) can read, write or resize it while `out` lives, GIL released or not.
        let out = unsafe { buf.as_bytes_mut() };
        let result = if payload.len() >= GIL_RELEASE_THRESHOLD {
            py.detach(|| inner.write_message_into(out, opcode, &payload))
        } else {
            inner.write_message_into(out, opcode, &payload)
        };
        result.map_err(|e| to_pyerr(py, &e, Direction::Sent))?;
        if len <= MAX_KEPT_SEND_BUFFER {
            self.send_buffer = Some(buf.clone().unbind());
        }
        Ok(Some(buf))
    }

    /// Encode a ping with up to 125 bytes of application data.
    #[pyo3(signature = (data = None))]
    fn ping<'py>(
        &mut self,
        py: Python<'py>,
        data: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.control(py, Opcode::Ping, data)
    }

    /// Encode a pong with up to 125 bytes of application data.
    #[pyo3(signature = (data = None))]
    fn pong<'py>(
        &mut self,
        py: Python<'py>,
        data: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.control(py, Opcode::Pong, data)
    }

    /// Encode a close frame; `code=None` sends an empty payload.
    #[pyo3(signature = (code = None, reason = ""))]
    fn close<'py>(
        &mut self,
        py: Python<'py>,
        code: Option<u16>,
        reason: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Vec::new();
        self.inner
            .encode_close(code, reason, &mut out)
            .map_err(|e| to_pyerr(py, &e, Direction::Sent))?;
        Ok(PyBytes::new(py, &out))
    }

    /// Encode one frame exactly as given (never compressed), for custom fragmentation.
    #[pyo3(signature = (opcode, data, *, fin = true, rsv1 = false))]
    fn frame<'py>(
        &mut self,
        py: Python<'py>,
        opcode: u8,
        data: &Bound<'py, PyAny>,
        fin: bool,
        rsv1: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let opcode = Opcode::from_u8(opcode)
            .ok_or_else(|| PyValueError::new_err(format!("reserved opcode {opcode}")))?;
        let payload = bytes_of(data)?;
        let mut out = Vec::new();
        self.inner
            .encode_frame(opcode, &payload, fin, rsv1, &mut out)
            .map_err(|e| to_pyerr(py, &e, Direction::Sent))?;
        Ok(PyBytes::new(py, &out))
    }

    /// The header of a binary message of `len` bytes sent as one frame that carries the
    /// payload as it is (server side, not compressed), or `None` when the message must be
    /// masked or compressed: the caller then writes the header and its own payload.
    fn binary_header<'py>(&self, py: Python<'py>, len: usize) -> Option<Bound<'py, PyBytes>> {
        self.inner
            .plain_header(Opcode::Binary, len)
            .map(|header| PyBytes::new(py, &header))
    }

    /// Free what an idle connection does not need: the kept send buffer, and the compression
    /// state, keeping the window history from which the next compressed message rebuilds it.
    /// Returns the number of bytes freed, at least (a compression state counts as 256 KiB).
    fn compact(&mut self, py: Python<'_>) -> usize {
        let buffer = self.send_buffer.take().map_or(0, |b| b.bind(py).len());
        buffer
            + if self.inner.compact() {
                COMPRESSOR_STATE_SIZE
            } else {
                0
            }
    }

    /// Whether the compression state is allocated.
    #[getter]
    fn deflater_allocated(&self) -> bool {
        self.inner.deflater_allocated()
    }
}

impl Writer {
    fn control<'py>(
        &mut self,
        py: Python<'py>,
        opcode: Opcode,
        data: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let payload: Cow<'_, [u8]> = match data {
            None => Cow::Borrowed(&[]),
            Some(obj) => match obj.cast::<PyString>() {
                Ok(s) => Cow::Owned(s.to_str()?.as_bytes().to_vec()),
                Err(_) => bytes_of(obj)?,
            },
        };
        let mut out = Vec::new();
        self.inner
            .encode_control(opcode, &payload, &mut out)
            .map_err(|e| to_pyerr(py, &e, Direction::Sent))?;
        Ok(PyBytes::new(py, &out))
    }
}

/// Incremental UTF-8 validation across the pieces of a message.
#[pyclass(module = "wsrs._core")]
#[derive(Default)]
pub struct Utf8Validator {
    inner: utf8::Utf8Validator,
}

#[pymethods]
impl Utf8Validator {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Validate the next piece; raises `ProtocolError` (1007) on invalid UTF-8.
    #[pyo3(signature = (data, r#final = false))]
    fn feed(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>, r#final: bool) -> PyResult<()> {
        let data = bytes_of(data)?;
        let result = self.inner.feed(&data, r#final);
        if result.is_err() {
            self.inner.reset();
        }
        result.map_err(|e| to_pyerr(py, &e, Direction::Received))
    }

    /// Start over for a new message.
    fn reset(&mut self) {
        self.inner.reset();
    }
}

/// XOR `data` with the 4-byte `mask` (RFC 6455 §5.3); returns a new `bytes`.
#[pyfunction]
fn apply_mask<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    mask: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mask = bytes_of(mask)?;
    let key: [u8; 4] = mask
        .as_ref()
        .try_into()
        .map_err(|_| PyValueError::new_err("mask must contain 4 bytes"))?;
    let data = bytes_of(data)?;
    PyBytes::new_with(py, data.len(), |buf| {
        buf.copy_from_slice(&data);
        if data.len() >= GIL_RELEASE_THRESHOLD {
            py.detach(|| mask::apply_mask(buf, key, 0));
        } else {
            mask::apply_mask(buf, key, 0);
        }
        Ok(())
    })
}

/// Whether `data` is valid UTF-8.
#[pyfunction]
fn validate_utf8(data: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(utf8::validate(&bytes_of(data)?))
}

/// Encode one frame: header and (masked, when `mask` is given) payload in one `bytes`.
#[pyfunction]
#[pyo3(signature = (opcode, data, *, fin = true, rsv1 = false, mask = None))]
fn encode_frame<'py>(
    py: Python<'py>,
    opcode: u8,
    data: &Bound<'py, PyAny>,
    fin: bool,
    rsv1: bool,
    mask: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let opcode = Opcode::from_u8(opcode)
        .ok_or_else(|| PyValueError::new_err(format!("reserved opcode {opcode}")))?;
    let key = match mask {
        None => None,
        Some(m) => Some(
            <[u8; 4]>::try_from(bytes_of(m)?.as_ref())
                .map_err(|_| PyValueError::new_err("mask must contain 4 bytes"))?,
        ),
    };
    let payload = bytes_of(data)?;
    if opcode.is_control() && (!fin || payload.len() > frames::MAX_CONTROL_PAYLOAD) {
        return Err(PyValueError::new_err(
            "control frames must be final and carry at most 125 bytes",
        ));
    }
    let len = frames::frame_len(payload.len(), key.is_some());
    PyBytes::new_with(py, len, |buf| {
        frames::write_frame(buf, opcode, fin, rsv1, &payload, key);
        Ok(())
    })
}

/// Parse a close frame's payload into `(code, reason)`; raises `ProtocolError`.
#[pyfunction]
fn parse_close(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<(u16, String)> {
    let data = bytes_of(data)?;
    frames::parse_close(&data)
        .map(|(code, reason)| (code, reason.to_owned()))
        .map_err(|e| to_pyerr(py, &e, Direction::Received))
}

/// Build a close frame's payload; raises `ValueError` for codes that may not be sent.
#[pyfunction]
#[pyo3(signature = (code = None, reason = ""))]
fn build_close<'py>(
    py: Python<'py>,
    code: Option<u16>,
    reason: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let payload =
        frames::build_close(code, reason).map_err(|e| to_pyerr(py, &e, Direction::Sent))?;
    Ok(PyBytes::new(py, &payload))
}

/// Whether a peer may send `code` in a close frame.
#[pyfunction]
fn is_valid_close_code(code: u16) -> bool {
    frames::is_valid_close_code(code)
}

/// The `wsrs._core` module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add(
        "ProtocolError",
        m.py().get_type::<py::errors::ProtocolError>(),
    )?;
    m.add_class::<Ping>()?;
    m.add_class::<Pong>()?;
    m.add_class::<Close>()?;
    m.add_class::<Reader>()?;
    m.add_class::<ReceiveBuffer>()?;
    m.add_class::<Writer>()?;
    m.add_class::<Utf8Validator>()?;
    m.add_function(wrap_pyfunction!(apply_mask, m)?)?;
    m.add_function(wrap_pyfunction!(validate_utf8, m)?)?;
    m.add_function(wrap_pyfunction!(encode_frame, m)?)?;
    m.add_function(wrap_pyfunction!(parse_close, m)?)?;
    m.add_function(wrap_pyfunction!(build_close, m)?)?;
    m.add_function(wrap_pyfunction!(is_valid_close_code, m)?)?;
    m.add("MAX_HEADER_LEN", frames::MAX_HEADER_LEN)?;
    m.add("GIL_RELEASE_THRESHOLD", GIL_RELEASE_THRESHOLD)?;
    m.add("LARGE_MESSAGE_SIZE", LARGE_MESSAGE_SIZE)?;
    m.add("MAX_KEPT_SEND_BUFFER", MAX_KEPT_SEND_BUFFER)?;
    Ok(())
}
