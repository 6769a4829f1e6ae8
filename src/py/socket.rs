//! `Socket`: the system calls of the native transport (`wsrs.asyncio.transport`), over
//! [`crate::socket::SocketIo`].
//!
//! The Python transport owns the socket object and the event loop's readiness callbacks;
//! this class only reads and writes. OS errors become Python's `OSError` subclasses
//! (`ConnectionResetError`, `BrokenPipeError`...), as they do in asyncio's own transports, so
//! the connection reports the same exception either way.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PySystemExit, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::config::LARGE_MESSAGE_SIZE;
use crate::py::framewriter::FrameWriter;
use crate::py::inbox::{call, run_pending, Inbox};
use crate::py::input::Input;
use crate::py::reader::Reader;
use crate::socket::{Received, SocketIo};

/// An OS error as Python raises it: `OSError(errno, strerror)`, which Python turns into its
/// subclass for the errno (`ConnectionResetError`, `BrokenPipeError`...), with `errno` set,
/// as asyncio's transports report it.
pub(crate) fn os_error(err: &std::io::Error) -> PyErr {
    let message = err.to_string();
    match err.raw_os_error() {
        Some(code) => {
            let suffix = format!(" (os error {code})");
            let strerror = message.strip_suffix(&suffix).unwrap_or(&message).to_owned();
            PyOSError::new_err((code, strerror))
        }
        None => PyOSError::new_err(message),
    }
}

/// A connected, non-blocking stream socket's reads and writes, done in Rust.
///
/// The descriptor is borrowed from a Python socket object, which must outlive it and is
/// closed after `close()`.
#[pyclass(module = "wsrs._core")]
pub struct Socket {
    io: SocketIo,
    /// Whether writers may write to the socket directly (`write_direct`).
    direct: bool,
    /// Where `ready` delivers what it reads (`deliver_to`); `None`: to the transport's
    /// `_read_ready`.
    delivery: Option<Delivery>,
}

/// An open connection's protocol and the parts of it a read goes to.
struct Delivery {
    protocol: Py<PyAny>,
    reader: Py<Reader>,
    inbox: Py<Inbox>,
    writer: Py<FrameWriter>,
}

/// `Delivery`, bound: held while nothing of the socket is borrowed.
struct BoundDelivery<'py> {
    protocol: Bound<'py, PyAny>,
    reader: Bound<'py, Reader>,
    inbox: Bound<'py, Inbox>,
    writer: Bound<'py, FrameWriter>,
}

impl Socket {
    /// `write(data)`, if the socket takes direct writes (`None` if not: the transport's
    /// `write` decides what happens to `data`).
    pub(crate) fn write_direct(&mut self, data: &[u8]) -> Option<std::io::Result<bool>> {
        self.direct.then(|| self.io.write(&[data]))
    }
}

#[pymethods]
impl Socket {
    #[new]
    fn new(fd: i32) -> Self {
        Self {
            io: SocketIo::new(fd),
            direct: true,
            delivery: None,
        }
    }

    /// From now on, `ready` reads for `protocol`, an open connection's
    /// (`wsrs.asyncio.base.BaseProtocol`) with the Rust parts it reads into, as
    /// `receive_delivered` does, without calling the transport's Python code.
    fn deliver_to(
        &mut self,
        protocol: Py<PyAny>,
        reader: Py<Reader>,
        inbox: Py<Inbox>,
        writer: Py<FrameWriter>,
    ) {
        self.delivery = Some(Delivery {
            protocol,
            reader,
            inbox,
            writer,
        });
    }

    /// Forget the protocol of `deliver_to`: `ready` calls the transport's `_read_ready`.
    fn stop_delivery(&mut self) {
        self.delivery = None;
    }

    /// Whether `ready` reads for a protocol (`deliver_to`).
    #[getter]
    fn delivering(&self) -> bool {
        self.delivery.is_some()
    }

    /// Read once for the protocol of `deliver_to`, as its `receive_from` does: mark it
    /// active (`_active`) and its writer fresh, `deliver` to its reader and inbox, and pass
    /// the events left to its `_receive_rest`. Returns `False` at the end of the stream.
    fn receive_delivered(slf: &Bound<'_, Self>) -> PyResult<bool> {
        let delivery = Self::delivery_of(slf)?;
        match delivery {
            Some(delivery) => Self::receive_for(slf, &delivery),
            None => Err(PyTypeError::new_err(
                "no protocol to deliver to: call deliver_to()",
            )),
        }
    }

    /// The readiness callback of the native transport (`loop.add_reader(fd, sock.ready,
    /// transport)`): `receive_delivered`, then the transport's `_read_eof()` at the end of
    /// the stream; an error other than `SystemExit` and `KeyboardInterrupt` goes to its
    /// `_fatal_error(exc, message)`. Before `deliver_to` (during the opening handshake), the
    /// transport's `_read_ready()` reads instead.
    fn ready(slf: &Bound<'_, Self>, transport: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let Some(delivery) = Self::delivery_of(slf)? else {
            call(transport, intern!(py, "_read_ready"), &[])?;
            return Ok(());
        };
        match Self::receive_for(slf, &delivery) {
            Ok(true) => {}
            Ok(false) => {
                call(transport, intern!(py, "_read_eof"), &[])?;
            }
            Err(err)
                if err.is_instance_of::<PySystemExit>(py)
                    || err.is_instance_of::<PyKeyboardInterrupt>(py) =>
            {
                return Err(err);
            }
            Err(err) => {
                let message = intern!(py, "fatal read error on native transport");
                call(
                    transport,
                    intern!(py, "_fatal_error"),
                    &[err.value(py).as_any(), message.as_any()],
                )?;
            }
        }
        Ok(())
    }

    /// Whether a `FrameWriter` may write to the socket without calling the transport's
    /// `write`: true until the transport stops taking writes as they come (after
    /// `write_eof()`, once the connection is lost), which it says by setting it false.
    #[getter]
    fn direct(&self) -> bool {
        self.direct
    }

    #[setter]
    fn set_direct(&mut self, value: bool) {
        self.direct = value;
    }

    /// The descriptor; -1 after `close()`.
    #[getter]
    fn fileno(&self) -> i32 {
        self.io.fd()
    }

    /// Bytes queued and not sent yet.
    #[getter]
    fn pending(&self) -> usize {
        self.io.pending()
    }

    /// One `recv` into `buffer` (writable, contiguous): the number of bytes read, 0 at the
    /// end of the stream, -1 when there was nothing to read.
    fn recv_into(&mut self, buffer: &Bound<'_, PyAny>) -> PyResult<isize> {
        let view = PyBuffer::<u8>::get(buffer)?;
        if view.readonly() || !view.is_c_contiguous() {
            return Err(PyTypeError::new_err(
                "expected a writable contiguous buffer",
            ));
        }
        // SAFETY: the export `view` holds keeps the buffer's `len_bytes()` bytes alive and
        // in place (a bytearray cannot resize while exported), the GIL is held for the whole
        // call so no Python code touches them, and `recv` writes at most that many bytes.
        let got = unsafe {
            self.io
                .recv_raw(view.buf_ptr().cast::<u8>(), view.len_bytes())
        }
        .map_err(|err| os_error(&err))?;
        Ok(match got {
            Received::Data(n) => isize::try_from(n).unwrap_or(isize::MAX),
            Received::Eof => 0,
            Received::WouldBlock => -1,
        })
    }

    /// Read once and feed `reader`: the events completed (empty when the read found
    /// nothing), or `None` at the end of the stream. Parse errors come back as events, as
    /// from `Reader.feed`; socket errors are raised.
    fn receive<'py>(
        &mut self,
        py: Python<'py>,
        reader: &Bound<'py, Reader>,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        reader
            .try_borrow_mut()?
            .receive_from(py, &mut self.io, os_error)
    }

    /// `receive`, then hand the whole messages and fragments at the start of the events to
    /// `inbox` (`Inbox.put`, with wake-ups deferred where the loop allows: call it from a
    /// readiness callback). Returns `None` at the end of the stream, else how many events
    /// `inbox` took and the events left for the caller, in order: from the first control
    /// frame, protocol error or message of `LARGE_MESSAGE_SIZE` or more on. When none is
    /// left (or handing over failed), the deferred wake-ups run before it returns; else the
    /// caller runs them once it processed the rest.
    fn deliver<'py>(
        slf: &Bound<'py, Self>,
        reader: &Bound<'py, Reader>,
        inbox: &Bound<'py, Inbox>,
    ) -> PyResult<Option<(usize, Bound<'py, PyList>)>> {
        let py = slf.py();
        // Borrowed for the read only: handing messages over calls Python code.
        let events = {
            let mut socket = slf.try_borrow_mut()?;
            reader
                .try_borrow_mut()?
                .receive_from(py, &mut socket.io, os_error)?
        };
        match events {
            None => Ok(None),
            Some(events) if events.is_empty() => Ok(Some((0, events))),
            Some(events) => {
                let (delivered, (event_loop, pending)) = {
                    let mut inbox = inbox.try_borrow_mut()?;
                    let handles = inbox.wakeups_of(py);
                    (inbox.deliver(&events, LARGE_MESSAGE_SIZE), handles)
                };
                match delivered {
                    // Nothing left for the caller, or an error: the receivers handed a
                    // message wake now (rule 7 of messages.py), with nothing borrowed.
                    Ok((taken, rest)) if rest.is_empty() => {
                        run_pending(&event_loop, &pending)?;
                        Ok(Some((taken, rest)))
                    }
                    Ok(delivered) => Ok(Some(delivered)),
                    Err(err) => {
                        run_pending(&event_loop, &pending)?;
                        Err(err)
                    }
                }
            }
        }
    }

    /// Send `data` at once, or queue it behind what is queued; returns whether nothing is
    /// left queued (else wait until the socket is writable and call `flush()`).
    fn write(&mut self, data: &Bound<'_, PyAny>) -> PyResult<bool> {
        let input = Input::of(data)?;
        self.io
            .write(&[input.as_slice()])
            .map_err(|err| os_error(&err))
    }

    /// `write` for several buffers, sent with one `sendmsg`.
    fn writelines(&mut self, data: &Bound<'_, PyAny>) -> PyResult<bool> {
        let items = data.try_iter()?.collect::<PyResult<Vec<_>>>()?;
        let inputs = items.iter().map(Input::of).collect::<PyResult<Vec<_>>>()?;
        let slices: Vec<&[u8]> = inputs.iter().map(Input::as_slice).collect();
        let mut done = true;
        // In groups that one sendmsg takes; once something is queued the rest queues too.
        for group in slices.chunks(32) {
            done = self.io.write(group).map_err(|err| os_error(&err))?;
        }
        Ok(done)
    }

    /// Send what is queued; returns whether the queue is empty now.
    fn flush(&mut self) -> PyResult<bool> {
        self.io.flush().map_err(|err| os_error(&err))
    }

    /// Half-close: `shutdown(SHUT_WR)`.
    fn shutdown_write(&mut self) -> PyResult<()> {
        self.io.shutdown_write().map_err(|err| os_error(&err))
    }

    /// Forget the descriptor, the queue and the protocol of `deliver_to`; later calls raise
    /// `OSError` (EBADF).
    fn close(&mut self) {
        self.io.close();
        self.delivery = None;
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if let Some(delivery) = &self.delivery {
            visit.call(&delivery.protocol)?;
            visit.call(&delivery.reader)?;
            visit.call(&delivery.inbox)?;
            visit.call(&delivery.writer)?;
        }
        Ok(())
    }

    fn __clear__(&mut self) {
        self.delivery = None;
    }
}

impl Socket {
    fn delivery_of<'py>(slf: &Bound<'py, Self>) -> PyResult<Option<BoundDelivery<'py>>> {
        let py = slf.py();
        Ok(slf.try_borrow()?.delivery.as_ref().map(|d| BoundDelivery {
            protocol: d.protocol.bind(py).clone(),
            reader: d.reader.bind(py).clone(),
            inbox: d.inbox.bind(py).clone(),
            writer: d.writer.bind(py).clone(),
        }))
    }

    /// One read for `delivery`'s protocol (`receive_delivered`).
    fn receive_for(slf: &Bound<'_, Self>, delivery: &BoundDelivery<'_>) -> PyResult<bool> {
        let py = slf.py();
        // Set before the read: the receivers it hands messages to may wake inside deliver()
        // and must see the connection as it will be after it (BaseProtocol.receive_from).
        delivery.protocol.setattr(intern!(py, "_active"), true)?;
        delivery.writer.try_borrow_mut()?.received();
        match Self::deliver(slf, &delivery.reader, &delivery.inbox)? {
            None => Ok(false),
            Some((_, rest)) => {
                if !rest.is_empty() {
                    call(
                        &delivery.protocol,
                        intern!(py, "_receive_rest"),
                        &[rest.as_any()],
                    )?;
                }
                Ok(true)
            }
        }
    }
}
