//! Exports of `wsrs._core` that only the tests and benchmarks use: the codec pieces as
//! functions (`apply_mask`, `validate_utf8`, `encode_frame`, the close payload helpers) and
//! `Utf8Validator`. `python/wsrs` goes through `Reader` and `Writer` instead; these let
//! `tests/` check each piece against the pure-Python reference (`tests/reference.py`) and
//! craft the bad frames a well-behaved `Writer` never sends.
//!
//! Owns no state beyond the validator's; no `unsafe` code.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::config::GIL_RELEASE_THRESHOLD;
use crate::frames::{self, Opcode};
use crate::py::errors::{to_pyerr, Direction};
use crate::py::input::bytes_of;
use crate::{mask, utf8};

/// Incremental UTF-8 validation across the pieces of a message (for tests and benchmarks).
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

/// XOR `data` with the 4-byte `mask` (RFC 6455 §5.3); returns a new `bytes` (for tests and
/// benchmarks).
#[pyfunction]
pub fn apply_mask<'py>(
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

/// Whether `data` is valid UTF-8 (for tests and benchmarks).
#[pyfunction]
pub fn validate_utf8(data: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(utf8::validate(&bytes_of(data)?))
}

/// Encode one frame: header and (masked, when `mask` is given) payload in one `bytes` (for
/// tests).
#[pyfunction]
#[pyo3(signature = (opcode, data, *, fin = true, rsv1 = false, mask = None))]
pub fn encode_frame<'py>(
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

/// Parse a close frame's payload into `(code, reason)`; raises `ProtocolError` (for tests).
#[pyfunction]
pub fn parse_close(py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<(u16, String)> {
    let data = bytes_of(data)?;
    frames::parse_close(&data)
        .map(|(code, reason)| (code, reason.to_owned()))
        .map_err(|e| to_pyerr(py, &e, Direction::Received))
}

/// Build a close frame's payload; raises `ValueError` for codes that may not be sent (for
/// tests).
#[pyfunction]
#[pyo3(signature = (code = None, reason = ""))]
pub fn build_close<'py>(
    py: Python<'py>,
    code: Option<u16>,
    reason: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let payload =
        frames::build_close(code, reason).map_err(|e| to_pyerr(py, &e, Direction::Sent))?;
    Ok(PyBytes::new(py, &payload))
}

/// Whether a peer may send `code` in a close frame (for tests).
#[pyfunction]
pub fn is_valid_close_code(code: u16) -> bool {
    frames::is_valid_close_code(code)
}
