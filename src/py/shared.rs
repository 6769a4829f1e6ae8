//! `SharedMessage`: one message sent to many connections (a broadcast), each distinct frame
//! encoded once and kept as one `bytes` object that every transport writes.
//!
//! A server's [`Writer`](crate::py::writer::Writer) asks the message for the frame of its
//! [`SharedEncoding`] (uncompressed, or compressed with its settings as by a fresh
//! compressor); the first writer with an encoding encodes it, the next ones get the same
//! object. A client's writer masks each frame with its own key, so it encodes the message
//! itself.

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::frames::Opcode;
use crate::py::errors::{to_pyerr, Direction};
use crate::py::input::data_message;
use crate::writer::SharedEncoding;

/// A message for several connections: each distinct frame is encoded once.
#[pyclass(module = "wsrs._core")]
pub struct SharedMessage {
    /// Text or binary.
    pub(crate) opcode: Opcode,
    /// The message's payload, uncompressed.
    pub(crate) data: Vec<u8>,
    /// The frames encoded so far, by encoding.
    frames: Vec<(SharedEncoding, Py<PyBytes>)>,
}

impl SharedMessage {
    /// The unmasked frame of this message with `encoding`, encoded on first use.
    pub(crate) fn frame<'py>(
        &mut self,
        py: Python<'py>,
        encoding: SharedEncoding,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if let Some((_, frame)) = self.frames.iter().find(|(e, _)| *e == encoding) {
            return Ok(frame.bind(py).clone());
        }
        let bytes = encoding
            .encode(self.opcode, &self.data)
            .map_err(|e| to_pyerr(py, &e, Direction::Sent))?;
        let frame = PyBytes::new(py, &bytes);
        self.frames.push((encoding, frame.clone().unbind()));
        Ok(frame)
    }
}

#[pymethods]
impl SharedMessage {
    /// `str` is sent as text and bytes-like data as binary, unless `text` says otherwise
    /// (bytes sent as text must be UTF-8; they are not checked).
    #[new]
    #[pyo3(signature = (data, *, text = None))]
    fn new(data: &Bound<'_, PyAny>, text: Option<bool>) -> PyResult<Self> {
        let (kind, payload) = data_message(data)?;
        let opcode = match text {
            None => kind,
            Some(true) => Opcode::Text,
            Some(false) => Opcode::Binary,
        };
        Ok(Self {
            opcode,
            data: payload.into_owned(),
            frames: Vec::new(),
        })
    }

    /// How many distinct frames were encoded so far.
    #[getter]
    fn encodings(&self) -> usize {
        self.frames.len()
    }

    /// The size of the message's payload, uncompressed.
    fn __len__(&self) -> usize {
        self.data.len()
    }
}
