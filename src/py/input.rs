//! Bytes-like arguments as Rust byte slices: `bytes` borrowed, other buffers borrowed in place
//! or copied once, `str` as its UTF-8 for the message that takes either.
//!
//! Owns the one place that reads Python buffers (and so the one `unsafe` block that borrows a
//! buffer's memory); callers never see a `PyBuffer`.

use std::borrow::Cow;

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::frames::Opcode;

/// A `bytes` object's own bytes, or the buffer of any other bytes-like object.
fn bytes_or_buffer<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Result<&'a [u8], PyBuffer<u8>>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Ok(b.as_bytes()));
    }
    PyBuffer::<u8>::get(obj)
        .map(Err)
        .map_err(|_| not_bytes_like(obj))
}

/// The opcode and payload of a data message: `str` as text (its UTF-8), any bytes-like
/// object as binary.
pub fn data_message<'a>(data: &'a Bound<'_, PyAny>) -> PyResult<(Opcode, Cow<'a, [u8]>)> {
    if let Ok(s) = data.cast::<PyString>() {
        Ok((Opcode::Text, Cow::Borrowed(s.to_str()?.as_bytes())))
    } else {
        Ok((Opcode::Binary, bytes_of(data)?))
    }
}

/// Borrow the bytes of a `bytes` object, or copy those of any other buffer.
pub fn bytes_of<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    match bytes_or_buffer(obj)? {
        Ok(bytes) => Ok(Cow::Borrowed(bytes)),
        Err(buffer) => Ok(Cow::Owned(buffer.to_vec(obj.py())?)),
    }
}

fn not_bytes_like(obj: &Bound<'_, PyAny>) -> PyErr {
    PyTypeError::new_err(format!(
        "expected a bytes-like object, got {}",
        obj.get_type()
            .name()
            .map_or_else(|_| "?".into(), |n| n.to_string())
    ))
}

/// The bytes of an input object: a `bytes`, another buffer borrowed in place, or a copy.
pub enum Input<'a> {
    /// A `bytes` object's own bytes.
    Bytes(&'a [u8]),
    /// A C-contiguous buffer of one-byte items, exported for as long as this lives.
    Buffer(PyBuffer<u8>),
    /// A copy of any other buffer.
    Copied(Vec<u8>),
}

impl Input<'_> {
    /// Borrow `obj`'s bytes: in place for `bytes` and C-contiguous byte buffers (such as the
    /// `bytearray` the asyncio adapter reads into), else copied.
    pub fn of<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Input<'a>> {
        Ok(match bytes_or_buffer(obj)? {
            Ok(bytes) => Input::Bytes(bytes),
            Err(buffer) if buffer.is_c_contiguous() && buffer.item_size() == 1 => {
                Input::Buffer(buffer)
            }
            Err(buffer) => Input::Copied(buffer.to_vec(obj.py())?),
        })
    }

    /// The bytes, wherever they are.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Input::Bytes(bytes) => bytes,
            Input::Copied(vec) => vec,
            Input::Buffer(buffer) if buffer.len_bytes() == 0 => &[],
            // SAFETY: `buffer` is C-contiguous with one-byte items (checked in `of`), so its
            // `len_bytes()` bytes from `buf_ptr()` are one initialised allocation; the export
            // that `buffer` holds keeps it alive and in place (a bytearray cannot resize while
            // exported). The slice never outlives `self`, and callers keep the GIL while they
            // use it (see `may_detach`), so no Python code writes to it meanwhile.
            Input::Buffer(buffer) => unsafe {
                std::slice::from_raw_parts(buffer.buf_ptr().cast::<u8>(), buffer.len_bytes())
            },
        }
    }

    /// Whether the GIL may be released while the bytes are used: only when nothing else can
    /// change them (a `bytes` or a private copy).
    pub fn may_detach(&self) -> bool {
        !matches!(self, Input::Buffer(_))
    }
}
