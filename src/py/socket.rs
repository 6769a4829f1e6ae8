//! `Socket`: the system calls of the native transport (`wsrs.asyncio.transport`), over
//! [`crate::socket::SocketIo`].
//!
//! The Python transport owns the socket object and the event loop's readiness callbacks;
//! this class only reads and writes. OS errors become Python's `OSError` subclasses
//! (`ConnectionResetError`, `BrokenPipeError`...), as they do in asyncio's own transports, so
//! the connection reports the same exception either way.

use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyOSError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::config::LARGE_MESSAGE_SIZE;
use crate::py::inbox::{run_pending, Inbox};
use crate::py::input::Input;
use crate::py::reader::Reader;
use crate::socket::{Received, SocketIo};

/// An OS error as Python raises it: `OSError(errno, strerror)`, which Python turns into its
/// subclass for the errno (`ConnectionResetError`, `BrokenPipeError`...), with `errno` set,
/// as asyncio's transports report it.
fn os_error(err: &std::io::Error) -> PyErr {
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
}

#[pymethods]
impl Socket {
    #[new]
    fn new(fd: i32) -> Self {
        Self {
            io: SocketIo::new(fd),
        }
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

    /// Forget the descriptor and drop the queue; later calls raise `OSError` (EBADF).
    fn close(&mut self) {
        self.io.close();
    }
}
