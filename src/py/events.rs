//! The events a `Reader` hands to Python besides whole messages (plain `str` and `bytes`) and
//! errors (`ProtocolError`): `Ping`, `Pong`, `Close`, and `Fragment`, one frame of a
//! fragmented message when the reader streams fragments.
//!
//! Owns the four immutable classes and their `repr`; no `unsafe` code.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// A ping received from the peer.
#[pyclass(module = "wsrs._core", frozen, eq)]
#[derive(PartialEq)]
pub struct Ping {
    #[pyo3(get)]
    pub(crate) data: Vec<u8>,
}

#[pymethods]
impl Ping {
    #[new]
    fn new(data: Vec<u8>) -> Self {
        Self { data }
    }

    fn __repr__(&self) -> String {
        format!("Ping({})", bytes_repr(&self.data))
    }
}

/// A pong received from the peer.
#[pyclass(module = "wsrs._core", frozen, eq)]
#[derive(PartialEq)]
pub struct Pong {
    #[pyo3(get)]
    pub(crate) data: Vec<u8>,
}

#[pymethods]
impl Pong {
    #[new]
    fn new(data: Vec<u8>) -> Self {
        Self { data }
    }

    fn __repr__(&self) -> String {
        format!("Pong({})", bytes_repr(&self.data))
    }
}

/// A close frame received from the peer (code 1005 when it carried no status code).
#[pyclass(module = "wsrs._core", frozen, eq)]
#[derive(PartialEq)]
pub struct Close {
    #[pyo3(get)]
    pub(crate) code: u16,
    #[pyo3(get)]
    pub(crate) reason: String,
}

#[pymethods]
impl Close {
    #[new]
    fn new(code: u16, reason: String) -> Self {
        Self { code, reason }
    }

    fn __repr__(&self) -> String {
        format!("Close({}, {:?})", self.code, self.reason)
    }
}

/// One frame of a fragmented message (a `Reader` made with `stream_fragments=True`): its
/// payload after decompression, whether the message is text, whether the frame ends it.
/// The payload of a text message may end inside a character that the next one completes.
#[pyclass(module = "wsrs._core", frozen)]
pub struct Fragment {
    #[pyo3(get)]
    pub(crate) data: Py<PyBytes>,
    #[pyo3(get)]
    pub(crate) text: bool,
    #[pyo3(get)]
    pub(crate) fin: bool,
}

#[pymethods]
impl Fragment {
    #[new]
    fn new(data: Py<PyBytes>, text: bool, fin: bool) -> Self {
        Self { data, text, fin }
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Fragment({}, text={}, fin={})",
            bytes_repr(self.data.as_bytes(py)),
            py_bool(self.text),
            py_bool(self.fin)
        )
    }
}

/// `True` or `False`.
fn py_bool(value: bool) -> &'static str {
    if value {
        "True"
    } else {
        "False"
    }
}

/// `data` as a `bytes` literal for `repr`: `b'...'` (always in single quotes) with printable
/// ASCII as is, `\\` and `\'` escaped, every other byte as `\xNN`.
fn bytes_repr(data: &[u8]) -> String {
    let mut s = String::from("b'");
    for &b in data {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'\'' => s.push_str("\\'"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('\'');
    s
}

#[cfg(test)]
mod tests {
    use super::bytes_repr;

    #[test]
    fn repr_like_python() {
        assert_eq!(bytes_repr(b""), "b''");
        assert_eq!(bytes_repr(b"hi there~"), "b'hi there~'");
        assert_eq!(bytes_repr(b"a'b\\c"), "b'a\\'b\\\\c'");
        assert_eq!(
            bytes_repr(&[0, 0x1f, 0x7f, 0xff]),
            "b'\\x00\\x1f\\x7f\\xff'"
        );
    }
}
