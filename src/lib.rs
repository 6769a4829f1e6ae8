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

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::config::{GIL_RELEASE_THRESHOLD, LARGE_MESSAGE_SIZE, MAX_KEPT_SEND_BUFFER};
use crate::frames::Opcode;
use crate::py::errors::{to_pyerr, Direction};
use crate::py::input::bytes_of;

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
    m.add_class::<py::writer::Writer>()?;
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
