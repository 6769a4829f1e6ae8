//! `parse_header_fields`: the header lines of a received HTTP head, checked by
//! [`crate::http::parse_field`], as the two structures `wsrs.datastructures.Headers` keeps.
//! No `unsafe` code.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::http::{parse_field, FieldError};

/// ISO-8859-1 bytes as a `str`: each byte is the code point of the same number.
fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    match std::str::from_utf8(bytes) {
        Ok(ascii) if bytes.is_ascii() => PyString::new(py, ascii),
        _ => PyString::new(
            py,
            &bytes.iter().copied().map(char::from).collect::<String>(),
        ),
    }
}

/// Check and split the header lines `lines` (`bytes` without CRLF): return the values of each
/// name, lowercased, in a dict of lists, and the `(name, value)` pairs in order, names as
/// written; names are decoded as ASCII and values as ISO-8859-1, without the whitespace
/// around them. A line that is not a valid header field raises `ValueError(kind, part)`,
/// `kind` being `"folded"`, `"line"`, `"name"` or `"value"` and `part` the bytes concerned.
#[pyfunction]
pub fn parse_header_fields<'py>(
    lines: &Bound<'py, PyList>,
) -> PyResult<(Bound<'py, PyDict>, Bound<'py, PyList>)> {
    let py = lines.py();
    let by_name = PyDict::new(py);
    let fields = PyList::empty(py);
    for line in lines.iter() {
        let line = line.cast_into::<PyBytes>()?;
        let (name, value) = parse_field(line.as_bytes()).map_err(|(kind, part)| {
            let kind = match kind {
                FieldError::Folded => "folded",
                FieldError::NoColon => "line",
                FieldError::Name => "name",
                FieldError::Value => "value",
            };
            PyValueError::new_err((kind, PyBytes::new(py, part).unbind()))
        })?;
        // A token is ASCII.
        let name =
            std::str::from_utf8(name).map_err(|err| PyValueError::new_err(err.to_string()))?;
        let value = latin1(py, value);
        let key = PyString::new(py, &name.to_ascii_lowercase());
        match by_name.get_item(&key)? {
            Some(values) => values.cast_into::<PyList>()?.append(&value)?,
            None => by_name.set_item(&key, PyList::new(py, [&value])?)?,
        }
        fields.append(PyTuple::new(py, [PyString::new(py, name), value])?)?;
    }
    Ok((by_name, fields))
}
