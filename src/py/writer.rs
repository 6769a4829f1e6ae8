//! The sending side for Python: `Writer` (messages in, the bytes of their frames out).
//!
//! [`writer::Writer`] encodes and decides which send buffers are kept
//! ([`writer::Writer::keeps_send_buffer`]); this module holds the kept `bytearray` and checks
//! its reference count, which only Python can tell. The `unsafe` code is here: reading that
//! reference count and writing into a `bytearray` nothing else refers to.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyByteArrayMethods, PyBytes, PyString};
use std::borrow::Cow;

use crate::config::GIL_RELEASE_THRESHOLD;
use crate::deflate;
use crate::frames::Opcode;
use crate::py::errors::{to_pyerr, Direction};
use crate::py::input::{bytes_of, data_message};
use crate::py::shared::SharedMessage;
use crate::writer;

/// The sending side of a connection: messages in, bytes out.
#[pyclass(module = "wsrs._core")]
pub struct Writer {
    inner: writer::Writer,
    /// The `bytearray` that [`Writer::message_buffer`] returned last, kept for the next
    /// message: reused only when nothing else refers to it any more.
    send_buffer: Option<Py<PyByteArray>>,
}

impl Writer {
    /// `message(data, compress=compress)` (one frame), appended to `out` instead of a new
    /// `bytes`: for a `FrameWriter`, which sends or batches it.
    pub(crate) fn message_into(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        compress: bool,
        out: &mut Vec<u8>,
    ) -> PyResult<()> {
        let (opcode, payload) = data_message(data)?;
        self.inner
            .encode_message(opcode, &payload, 0, compress, out)
            .map_err(|e| to_pyerr(py, &e, Direction::Sent))
    }
}

#[pymethods]
impl Writer {
    #[new]
    #[pyo3(signature = (*, client, deflate = false, max_window_bits = 15, no_context_takeover = false, level = 6, mem_level = 8, compress_threshold = 0, pooled = false))]
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
        pooled: bool,
    ) -> PyResult<Self> {
        let deflater = if deflate {
            Some(
                deflate::Deflater::with_mem_level(
                    level,
                    max_window_bits,
                    no_context_takeover,
                    mem_level,
                )
                .map_err(|e| to_pyerr(py, &e, Direction::Sent))?
                .pooled(pooled),
            )
        } else {
            None
        };
        Ok(Self {
            inner: writer::Writer::new(client, deflater, compress_threshold),
            send_buffer: None,
        })
    }

    /// Encode a message: `str` as text, any bytes-like object as binary; `compress=False`
    /// sends it uncompressed whatever its size.
    #[pyo3(signature = (data, *, fragment_size = 0, compress = true))]
    fn message<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        fragment_size: usize,
        compress: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (opcode, payload) = data_message(data)?;
        let inner = &mut self.inner;
        let big = payload.len() >= GIL_RELEASE_THRESHOLD;
        if fragment_size == 0 && !(compress && inner.compresses(payload.len())) {
            // One allocation: header and (masked) payload go straight into the `bytes`.
            let len = inner.plain_frame_len(payload.len());
            return PyBytes::new_with(py, len, |buf| {
                let result = if big {
                    py.detach(|| inner.write_message_into(buf, opcode, &payload, compress))
                } else {
                    inner.write_message_into(buf, opcode, &payload, compress)
                };
                result.map_err(|e| to_pyerr(py, &e, Direction::Sent))
            });
        }
        let mut out = Vec::new();
        let result = if big {
            py.detach(|| inner.encode_message(opcode, &payload, fragment_size, compress, &mut out))
        } else {
            inner.encode_message(opcode, &payload, fragment_size, compress, &mut out)
        };
        result.map_err(|e| to_pyerr(py, &e, Direction::Sent))?;
        Ok(PyBytes::new(py, &out))
    }

    /// Encode a message sent as one uncompressed frame into a `bytearray` that this writer
    /// reuses for the next message once nothing else refers to it (the transport has sent it
    /// or copied it); `None` when the message would be compressed (use `message`), which
    /// `compress=False` rules out.
    ///
    /// For large messages: a client masks a 1 MiB message into the same memory every time
    /// instead of a new `bytes`, whose pages the C allocator may give back to the system and
    /// fault in again for the next message.
    #[pyo3(signature = (data, *, compress = true))]
    fn message_buffer<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        compress: bool,
    ) -> PyResult<Option<Bound<'py, PyByteArray>>> {
        let (opcode, payload) = data_message(data)?;
        if compress && self.inner.compresses(payload.len()) {
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
            py.detach(|| inner.write_message_into(out, opcode, &payload, compress))
        } else {
            inner.write_message_into(out, opcode, &payload, compress)
        };
        result.map_err(|e| to_pyerr(py, &e, Direction::Sent))?;
        if writer::Writer::keeps_send_buffer(len) {
            self.send_buffer = Some(buf.clone().unbind());
        }
        Ok(Some(buf))
    }

    /// Encode one fragment of a message sent in fragments: the first (`first=True`) as text
    /// or binary, from the type of `data` unless `text` says otherwise, the later ones as
    /// continuations; `fin=True` on the last. Compression is decided on the first fragment
    /// (see `writer::Writer::encode_fragment`).
    #[pyo3(signature = (data, *, first, fin, text = None, compress = true))]
    fn fragment<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
        first: bool,
        fin: bool,
        text: Option<bool>,
        compress: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let (kind, payload) = data_message(data)?;
        let opcode = match (first, text) {
            (false, _) => Opcode::Continuation,
            (true, None) => kind,
            (true, Some(true)) => Opcode::Text,
            (true, Some(false)) => Opcode::Binary,
        };
        let inner = &mut self.inner;
        let mut out = Vec::new();
        let result = if payload.len() >= GIL_RELEASE_THRESHOLD {
            py.detach(|| inner.encode_fragment(opcode, &payload, fin, compress, &mut out))
        } else {
            inner.encode_fragment(opcode, &payload, fin, compress, &mut out)
        };
        result.map_err(|e| to_pyerr(py, &e, Direction::Sent))?;
        Ok(PyBytes::new(py, &out))
    }

    /// The frame of a message shared with other connections: on the server side the
    /// `bytes` object of its encoding, the same for every writer with that encoding (a
    /// compressed one is recorded in this writer's compressor); on the client side the
    /// message encoded by this writer, masked with its own key.
    #[pyo3(signature = (message, *, compress = true))]
    fn shared<'py>(
        &mut self,
        py: Python<'py>,
        message: &Bound<'py, SharedMessage>,
        compress: bool,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut message = message.borrow_mut();
        let inner = &mut self.inner;
        match inner.shared_encoding(message.data.len(), compress) {
            Some(encoding) => {
                let frame = message.frame(py, encoding)?;
                inner.sent_shared(encoding, &message.data);
                Ok(frame)
            }
            None => {
                let mut out = Vec::new();
                inner
                    .encode_message(message.opcode, &message.data, 0, compress, &mut out)
                    .map_err(|e| to_pyerr(py, &e, Direction::Sent))?;
                Ok(PyBytes::new(py, &out))
            }
        }
    }

    /// Whether a message sent with `fragment` has started and not ended.
    #[getter]
    fn in_message(&self) -> bool {
        self.inner.in_fragmented_message()
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
    /// masked or compressed (`compress=False`: sent uncompressed whatever its size): the
    /// caller then writes the header and its own payload.
    #[pyo3(signature = (len, *, compress = true))]
    fn binary_header<'py>(
        &self,
        py: Python<'py>,
        len: usize,
        compress: bool,
    ) -> Option<Bound<'py, PyBytes>> {
        self.inner
            .plain_header(Opcode::Binary, len, compress)
            .map(|header| PyBytes::new(py, &header))
    }

    /// Free what an idle connection does not need: the kept send buffer, and the compression
    /// state, keeping the window history from which the next compressed message rebuilds it.
    /// Returns the number of bytes freed, at least (a compression state counts as 256 KiB).
    fn compact(&mut self, py: Python<'_>) -> usize {
        let buffer = self.send_buffer.take().map_or(0, |b| b.bind(py).len());
        buffer + self.inner.compact_bytes()
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
