//! `FrameWriter`: the order and batching of the frames an asyncio connection writes.
//!
//! The rules are written down once, in `python/wsrs/asyncio/writer.py` (whose `FrameWriter`
//! subclasses this class and adds `write_large`); this module applies them. It is in Rust
//! so that a message goes from the front end's `send()` to the socket in one call: on the
//! native transport the frame is written straight to the `Socket` (what
//! `NativeTransport.write` does, without its Python frame), and a batch is joined in a
//! buffer this class reuses. Only what the transport must decide (bytes left queued, an OS
//! error, a transport that no longer takes writes) goes back to the Python transport. No
//! `unsafe` code.

use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::py::inbox::call;
use crate::py::input::Input;
#[cfg(unix)]
use crate::py::socket::{os_error, Socket};
use crate::py::writer::Writer;

/// The frames of one connection on their way to its transport (the state of
/// `wsrs.asyncio.writer.FrameWriter`, which documents the rules).
#[pyclass(module = "wsrs._core", subclass)]
pub struct FrameWriter {
    event_loop: Py<PyAny>,
    transport: Py<PyAny>,
    /// The native transport's socket, written to directly; `None`: through `transport.write`.
    socket: Option<Py<PyAny>>,
    write_limit: usize,
    fresh: bool,
    /// Whether a batch is open (a flush is scheduled).
    batching: bool,
    /// The frames of the open batch, joined.
    batch: Vec<u8>,
    /// The connection's `send_message` while it is a `Writer`'s `message` method, and that
    /// `Writer`: `send` encodes with it in Rust.
    encoder: Option<(Py<PyAny>, Py<Writer>)>,
    /// The frame `send` encodes when it writes it at once, reused.
    scratch: Vec<u8>,
}

/// The transport and socket of a writer, held while no borrow of it is: writing may call
/// Python code that uses the writer again.
struct Target<'py> {
    transport: Bound<'py, PyAny>,
    socket: Option<Bound<'py, PyAny>>,
}

impl<'py> Target<'py> {
    fn of(writer: &FrameWriter, py: Python<'py>) -> Self {
        Self {
            transport: writer.transport.bind(py).clone(),
            socket: writer.socket.as_ref().map(|s| s.bind(py).clone()),
        }
    }

    /// Write `data` as `transport.write(data)` would: straight to the native socket while it
    /// takes direct writes, telling the transport only when bytes stay queued or the socket
    /// failed; else through `transport.write` (`object()` makes the Python object for it).
    fn write(
        &self,
        data: &[u8],
        object: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
    ) -> PyResult<()> {
        #[cfg(unix)]
        if let Some(written) = self.write_direct(data)? {
            return self.written(written);
        }
        call(
            &self.transport,
            intern!(self.transport.py(), "write"),
            &[&object()?],
        )?;
        Ok(())
    }

    /// `write` for a frame the caller holds as a Python bytes-like object: its buffer is
    /// borrowed in place (not copied) for the direct write, and released before the
    /// transport's Python code runs.
    fn write_object(&self, frame: &Bound<'py, PyAny>) -> PyResult<()> {
        #[cfg(unix)]
        if self.socket.is_some() {
            let written = self.write_direct(Input::of(frame)?.as_slice())?;
            if let Some(written) = written {
                return self.written(written);
            }
        }
        call(
            &self.transport,
            intern!(self.transport.py(), "write"),
            &[frame],
        )?;
        Ok(())
    }

    /// `data` written to the socket, if there is one and it takes direct writes.
    #[cfg(unix)]
    fn write_direct(&self, data: &[u8]) -> PyResult<Option<std::io::Result<bool>>> {
        match &self.socket {
            Some(socket) => Ok(socket
                .cast::<Socket>()?
                .try_borrow_mut()?
                .write_direct(data)),
            None => Ok(None),
        }
    }

    /// Tell the transport what a direct write left to it: bytes queued, or an OS error.
    #[cfg(unix)]
    fn written(&self, written: std::io::Result<bool>) -> PyResult<()> {
        let py = self.transport.py();
        match written {
            Ok(true) => {}
            Ok(false) => {
                call(&self.transport, intern!(py, "_queued"), &[])?;
            }
            Err(err) => {
                let error = os_error(&err).into_value(py).into_bound(py).into_any();
                let message = intern!(py, "fatal write error on native transport");
                call(
                    &self.transport,
                    intern!(py, "_fatal_error"),
                    &[&error, message.as_any()],
                )?;
            }
        }
        Ok(())
    }

    fn is_closing(&self) -> PyResult<bool> {
        call(
            &self.transport,
            intern!(self.transport.py(), "is_closing"),
            &[],
        )?
        .is_truthy()
    }
}

impl FrameWriter {
    /// The connection received data: the next message is written at once (rule 1).
    pub(crate) fn received(&mut self) {
        self.fresh = true;
    }

    /// Write the batch, if any, and keep it open.
    fn write_batch(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let (target, batch) = {
            let mut this = slf.try_borrow_mut()?;
            if this.batch.is_empty() {
                return Ok(());
            }
            (Target::of(&this, py), std::mem::take(&mut this.batch))
        };
        let result = if target.is_closing()? {
            Ok(())
        } else {
            target.write(&batch, || Ok(PyBytes::new(py, &batch).into_any()))
        };
        // The buffer goes back for the next batch, unless one was started meanwhile.
        let mut this = slf.try_borrow_mut()?;
        if this.batch.is_empty() {
            this.batch = batch;
            this.batch.clear();
        }
        result
    }
}

#[pymethods]
impl FrameWriter {
    #[new]
    #[pyo3(signature = (event_loop, transport, write_limit, *, socket = None))]
    fn new(
        event_loop: Py<PyAny>,
        transport: Py<PyAny>,
        write_limit: usize,
        socket: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(Self {
            event_loop,
            transport,
            socket: checked_socket(socket)?,
            write_limit,
            fresh: true,
            batching: false,
            batch: Vec::new(),
            encoder: None,
            scratch: Vec::new(),
        })
    }

    /// The event loop of the connection.
    #[getter(r#loop)]
    fn get_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.event_loop.clone_ref(py)
    }

    #[setter(r#loop)]
    fn set_loop(&mut self, value: Py<PyAny>) {
        self.event_loop = value;
    }

    /// Where the frames go.
    #[getter]
    fn transport(&self, py: Python<'_>) -> Py<PyAny> {
        self.transport.clone_ref(py)
    }

    /// The native transport's `wsrs._core.Socket`, which frames are written to directly
    /// (`transport.write` is not called); `None`: every write calls `transport.write`.
    #[getter]
    fn socket(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.socket.as_ref().map(|s| s.clone_ref(py))
    }

    #[setter]
    fn set_socket(&mut self, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        self.socket = checked_socket(value)?;
        Ok(())
    }

    /// Bytes batched at most before they are written.
    #[getter]
    fn write_limit(&self) -> usize {
        self.write_limit
    }

    #[setter]
    fn set_write_limit(&mut self, value: usize) {
        self.write_limit = value;
    }

    /// Whether the next message is written at once: nothing was written since the last
    /// flush, or since the connection last received data (the protocol sets it then).
    #[getter]
    fn fresh(&self) -> bool {
        self.fresh
    }

    #[setter]
    fn set_fresh(&mut self, value: bool) {
        self.fresh = value;
    }

    /// Whether a batch is open: messages are joined until the end of this loop iteration.
    #[getter]
    fn batching(&self) -> bool {
        self.batching
    }

    /// Write `frame` at once if the writer is `fresh`, else batch it.
    fn write_message(slf: &Bound<'_, Self>, frame: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let event_loop = {
            let mut this = slf.try_borrow_mut()?;
            if this.batching {
                None
            } else if this.fresh {
                // A lone message (a reply, the first of a burst): out at once, nothing
                // scheduled.
                this.fresh = false;
                let target = Target::of(&this, py);
                drop(this);
                return target.write_object(frame);
            } else {
                // A second message before the next read or flush: batch it and the rest of
                // this loop iteration's.
                this.batching = true;
                Some(this.event_loop.bind(py).clone())
            }
        };
        if let Some(event_loop) = event_loop {
            let flush = slf.getattr(intern!(py, "flush"))?;
            call(&event_loop, intern!(py, "call_soon"), &[&flush])?;
        }
        let full = {
            let mut this = slf.try_borrow_mut()?;
            this.batch.extend_from_slice(Input::of(frame)?.as_slice());
            this.batch.len() >= this.write_limit
        };
        if full {
            // Let flow control see it: the transport may pause writing now.
            Self::write_batch(slf)?;
        }
        Ok(())
    }

    /// The connection's `send_message` that `send` recognises: a `wsrs._core.Writer`'s
    /// `message` method, which `send` then calls in Rust, encoding the frame straight into
    /// the batch or a buffer this writer reuses. `None` forgets it.
    #[getter]
    fn encoder(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.encoder
            .as_ref()
            .map(|(method, _)| method.clone_ref(py))
    }

    #[setter]
    fn set_encoder(&mut self, value: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        self.encoder = match value {
            None => None,
            Some(method) => {
                let writer = method
                    .getattr(intern!(method.py(), "__self__"))
                    .ok()
                    .and_then(|owner| owner.cast_into::<Writer>().ok())
                    .ok_or_else(|| {
                        PyTypeError::new_err("encoder must be the message method of a Writer")
                    })?;
                Some((method.unbind(), writer.unbind()))
            }
        };
        Ok(())
    }

    /// `write_message(send_message(data))`: the frame of the message `data`, made by the
    /// connection's `send_message` (which raises when the connection no longer sends
    /// messages). When it is the `encoder`, the frame is encoded in Rust into the batch or
    /// a buffer this writer reuses, without a `bytes` object.
    fn send(
        slf: &Bound<'_, Self>,
        send_message: &Bound<'_, PyAny>,
        data: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let encoder = match &slf.try_borrow()?.encoder {
            Some((method, writer)) if method.is(send_message) => Some(writer.clone_ref(py)),
            _ => None,
        };
        let Some(encoder) = encoder else {
            let frame = send_message.call1((data,))?;
            return Self::write_message(slf, &frame);
        };
        let mut encoder = encoder.bind(py).try_borrow_mut()?;
        let mut this = slf.try_borrow_mut()?;
        if !this.batching && this.fresh {
            // A lone message: out at once (rule 1), from the reused buffer.
            let mut frame = std::mem::take(&mut this.scratch);
            frame.clear();
            if let Err(err) = encoder.message_into(py, data, true, &mut frame) {
                this.scratch = frame;
                return Err(err);
            }
            drop(encoder);
            this.fresh = false;
            let target = Target::of(&this, py);
            drop(this);
            let result = target.write(&frame, || Ok(PyBytes::new(py, &frame).into_any()));
            slf.try_borrow_mut()?.scratch = frame;
            return result;
        }
        // Batched: encoded at the end of the batch, which opens if it was not.
        let (opened, full) = {
            let this = &mut *this;
            encoder.message_into(py, data, true, &mut this.batch)?;
            let opened = !this.batching;
            this.batching = true;
            (
                opened.then(|| this.event_loop.bind(py).clone()),
                this.batch.len() >= this.write_limit,
            )
        };
        drop((this, encoder));
        if let Some(event_loop) = opened {
            let flush = slf.getattr(intern!(py, "flush"))?;
            call(&event_loop, intern!(py, "call_soon"), &[&flush])?;
        }
        if full {
            // Let flow control see it: the transport may pause writing now.
            Self::write_batch(slf)?;
        }
        Ok(())
    }

    /// Write the batch, then `frame`, unless the transport is closing.
    fn write_now(slf: &Bound<'_, Self>, frame: &Bound<'_, PyAny>) -> PyResult<()> {
        Self::flush(slf)?;
        let target = Target::of(&*slf.try_borrow()?, slf.py());
        if !target.is_closing()? {
            target.write_object(frame)?;
        }
        Ok(())
    }

    /// Write the frames batched in this loop iteration and close the batch: the next
    /// message goes out at once.
    fn flush(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::write_batch(slf)?;
        let mut this = slf.try_borrow_mut()?;
        this.batching = false;
        this.fresh = true;
        Ok(())
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.event_loop)?;
        visit.call(&self.transport)?;
        if let Some(socket) = &self.socket {
            visit.call(socket)?;
        }
        if let Some((method, writer)) = &self.encoder {
            visit.call(method)?;
            visit.call(writer)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.socket = None;
        self.encoder = None;
    }
}

/// `value` if it is `None` or a `wsrs._core.Socket` (on Unix, where there are sockets).
fn checked_socket(value: Option<Bound<'_, PyAny>>) -> PyResult<Option<Py<PyAny>>> {
    match value {
        None => Ok(None),
        #[cfg(unix)]
        Some(socket) if socket.is_instance_of::<Socket>() => Ok(Some(socket.unbind())),
        Some(other) => Err(PyTypeError::new_err(format!(
            "socket must be a wsrs._core.Socket or None, not {}",
            other.get_type().name()?
        ))),
    }
}
