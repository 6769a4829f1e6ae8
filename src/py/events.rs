//! The control-frame events a `Reader` hands to Python: `Ping`, `Pong` and `Close` (data
//! messages are plain `str` and `bytes`, errors `ProtocolError`).
//!
//! Owns the three immutable classes and their `repr`; no `unsafe` code.

use pyo3::prelude::*;

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
