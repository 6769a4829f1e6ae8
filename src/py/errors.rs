//! Core errors as Python exceptions: the `ProtocolError` type of `wsrs._core` and the one
//! mapping of [`Error`] onto it, `ValueError` and `RuntimeError`.
//!
//! Owns the exception type and the mapping only; the Python layer maps `ProtocolError` onto
//! its own exception hierarchy by close code.

use pyo3::exceptions::{PyException, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

use crate::error::Error;

pyo3::create_exception!(
    _core,
    ProtocolError,
    PyException,
    "A WebSocket protocol violation by the peer.\n\n\
     `code` is the close code to send (1002 protocol error, 1007 invalid data, 1009 message too\n\
     big) and `reason` a short explanation; `str()` gives the reason."
);

/// Which way the data went when an error happened, which decides who is to blame for it.
#[derive(Clone, Copy, Debug)]
pub enum Direction {
    /// Bytes received from the peer: a rule the peer broke is a `ProtocolError` carrying the
    /// close code to send.
    Received,
    /// A message or frame being encoded: the peer did nothing wrong, so an error of the codec
    /// is a `RuntimeError` (never `ProtocolError`).
    Sent,
}

/// Turn a core error into a Python exception: `ValueError` for the caller's mistakes
/// ([`Error::InvalidArgument`]); for the others a `ProtocolError` with `code` and `reason`
/// attributes when the peer sent the data, a `RuntimeError` when we were encoding.
pub fn to_pyerr(py: Python<'_>, err: &Error, direction: Direction) -> PyErr {
    match err {
        Error::InvalidArgument(msg) => PyValueError::new_err(msg.clone()),
        Error::Protocol(_)
        | Error::InvalidUtf8
        | Error::BadCompressedData(_)
        | Error::TooBig { .. }
        | Error::FrameTooBig { .. } => match direction {
            Direction::Received => protocol_error(py, err),
            Direction::Sent => PyRuntimeError::new_err(err.to_string()),
        },
    }
}

/// A `ProtocolError` whose `code` is the error's close code and `reason` its message.
fn protocol_error(py: Python<'_>, err: &Error) -> PyErr {
    let reason = err.to_string();
    let pyerr = ProtocolError::new_err(reason.clone());
    let value = pyerr.value(py);
    if let Err(e) = value
        .setattr("code", err.close_code())
        .and_then(|()| value.setattr("reason", reason))
    {
        return e;
    }
    pyerr
}
