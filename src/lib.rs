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

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyByteArrayMethods, PyBytes, PyString};

use crate::config::{
    COMPRESSOR_STATE_SIZE, GIL_RELEASE_THRESHOLD, LARGE_MESSAGE_SIZE, MAX_KEPT_SEND_BUFFER,
};
use crate::frames::Opcode;
use crate::py::errors::{to_pyerr, Direction};
use crate::py::input::{bytes_of, data_message};

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
    m.add_class::<py::events::Ping>()?;
    m.add_class::<py::events::Pong>()?;
    m.add_class::<py::events::Close>()?;
    m.add_class::<py::reader::Reader>()?;
    m.add_class::<py::reader::ReceiveBuffer>()?;
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
