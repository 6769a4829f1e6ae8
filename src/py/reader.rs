//! The receiving side for Python: `Reader` (bytes in, events out) and `ReceiveBuffer` (the
//! writable view the transport reads a large binary message into).
//!
//! [`reader::Reader`] owns the protocol state, including where a message received in place
//! stands (its offset and length); this module only holds that message's `bytes` object and
//! writes into it. The `unsafe` code is here: allocating the `bytes` uninitialised, writing
//! into it before Python sees it ([`MessageBytes`]), and exporting its memory as a buffer
//! ([`ReceiveBuffer`]).

#[cfg(unix)]
use std::cell::Cell;
use std::ops::Range;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyMemoryView, PyString};

use crate::config::{GIL_RELEASE_THRESHOLD, RECEIVE_IN_PLACE_MIN};
use crate::deflate;
use crate::py::errors::{to_pyerr, Direction};
use crate::py::events::{Close, Fragment, Ping, Pong};
use crate::py::input::Input;
use crate::reader;
#[cfg(unix)]
use crate::{
    config::NATIVE_RECEIVE_SIZE,
    socket::{Received, SocketIo},
};

#[cfg(unix)]
thread_local! {
    /// The buffer each thread's native transports read into (see `Reader::receive_from`).
    static NATIVE_BUFFER: Cell<Option<Box<[u8]>>> = const { Cell::new(None) };
}

/// The `bytes` of a binary message received in place: allocated at the payload's length and
/// not shared with any Python code until the reader delivers it. Until then only this module
/// writes into it (with the GIL held), and the transport, through a [`ReceiveBuffer`], while
/// it reads from the socket.
struct MessageBytes(Py<PyBytes>);

impl MessageBytes {
    /// A new `bytes` of `len` bytes, uninitialised until [`fill`](Self::fill) copies bytes
    /// there or the transport reads into them.
    fn new(py: Python<'_>, len: usize) -> PyResult<Self> {
        let size = pyo3::ffi::Py_ssize_t::try_from(len)
            .map_err(|_| PyValueError::new_err("message too large"))?;
        // SAFETY: a null pointer asks for `len` uninitialised bytes; the result is a new
        // reference to a `bytes` object (so the unchecked cast holds) or null with an
        // exception set, which `from_owned_ptr_or_err` turns into an error.
        let bytes = unsafe {
            Bound::from_owned_ptr_or_err(
                py,
                pyo3::ffi::PyBytes_FromStringAndSize(std::ptr::null(), size),
            )?
            .cast_into_unchecked::<PyBytes>()
        };
        Ok(Self(bytes.unbind()))
    }

    /// A pointer to byte `start` of the `bytes`, for a `recv` to write the `end - start`
    /// bytes from there (uninitialised memory: no slice is made over it).
    fn tail(&mut self, py: Python<'_>, start: usize, end: usize) -> PyResult<*mut u8> {
        let bytes = self.0.bind(py);
        if start >= end || end > bytes.len()? {
            return Err(PyRuntimeError::new_err("range outside the message"));
        }
        // SAFETY: `bytes` is a live `bytes` object of at least `end` bytes (checked above),
        // so `start` is in bounds; only a pointer is made, no reference.
        Ok(unsafe {
            pyo3::ffi::PyBytes_AsString(bytes.as_ptr())
                .cast::<u8>()
                .add(start)
        })
    }

    /// The bytes at `range`, after copying `src` (of the same length) there if given; without
    /// `src` they must have been written already (by the transport).
    fn fill(
        &mut self,
        py: Python<'_>,
        range: Range<usize>,
        src: Option<&[u8]>,
    ) -> PyResult<&mut [u8]> {
        let bytes = self.0.bind(py);
        let len = range.end.saturating_sub(range.start);
        if range.start > range.end
            || range.end > bytes.len()?
            || src.is_some_and(|src| src.len() != len)
        {
            return Err(PyRuntimeError::new_err("range outside the message"));
        }
        // SAFETY: `bytes` is a live `bytes` object of at least `range.end` bytes (checked
        // above), so the range is in bounds. No Python code reads or writes it: it is not
        // delivered yet, and the transport's read into it is over (it reported what it read
        // before this runs). `src` is other memory. The GIL is held while the slice lives, and
        // `&mut self` keeps Rust from making another one meanwhile.
        unsafe {
            let start = pyo3::ffi::PyBytes_AsString(bytes.as_ptr())
                .cast::<u8>()
                .add(range.start);
            if let Some(src) = src {
                std::ptr::copy_nonoverlapping(src.as_ptr(), start, len);
            }
            Ok(std::slice::from_raw_parts_mut(start, len))
        }
    }
}

/// The receiving side of a connection: bytes in, events out.
#[pyclass(module = "wsrs._core")]
pub struct Reader {
    inner: reader::Reader,
    /// The `bytes` of the message being received in place, if one is; how much of it was
    /// received is `inner`'s to say (`direct_progress`).
    direct: Option<MessageBytes>,
}

/// A writable buffer over the part of a message's `bytes` still to be received, which the
/// transport reads into (`asyncio.BufferedProtocol.get_buffer`).
///
/// It keeps the `bytes` alive while exported. Only the transport's read uses it: the message
/// is delivered after that read, and the buffer is not used again.
#[pyclass(module = "wsrs._core", frozen)]
pub struct ReceiveBuffer {
    bytes: Py<PyBytes>,
    start: usize,
    len: usize,
}

#[pymethods]
impl ReceiveBuffer {
    /// # Safety
    ///
    /// Called by Python with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut pyo3::ffi::Py_buffer,
        flags: std::os::raw::c_int,
    ) -> PyResult<()> {
        let this = slf.get();
        // SAFETY: `this.bytes` is a live `bytes` object (owned by `this`) of at least
        // `start + len` bytes (`Reader::receive_buffer` made it so), so the pointer is in
        // bounds. `PyBuffer_FillInfo` stores a new reference to `slf` in the view, which keeps
        // `this.bytes` alive as long as the view is exported; writing through it is sound
        // because the `bytes` is not visible to any Python code until the reader delivers it.
        unsafe {
            let base = pyo3::ffi::PyBytes_AsString(this.bytes.as_ptr()).cast::<u8>();
            if base.is_null() {
                return Err(PyErr::fetch(slf.py()));
            }
            let len = pyo3::ffi::Py_ssize_t::try_from(this.len)
                .map_err(|_| PyValueError::new_err("buffer too large"))?;
            if pyo3::ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                base.add(this.start).cast(),
                len,
                0,
                flags,
            ) == -1
            {
                return Err(PyErr::fetch(slf.py()));
            }
        }
        Ok(())
    }

    /// # Safety
    ///
    /// Called by Python when a view ends; nothing to release.
    unsafe fn __releasebuffer__(&self, _view: *mut pyo3::ffi::Py_buffer) {}

    fn __len__(&self) -> usize {
        self.len
    }
}

#[pymethods]
impl Reader {
    #[new]
    #[pyo3(
        signature = (*, client, max_size = Some(1 << 20), deflate = false, max_window_bits = 15, no_context_takeover = false, max_fragment_size = None, stream_fragments = false, pooled = false),
        // Spelled out: PyO3 shows an expression default such as `Some(1 << 20)` as `...`.
        text_signature = "(*, client, max_size=1048576, deflate=False, max_window_bits=15, no_context_takeover=False, max_fragment_size=None, stream_fragments=False, pooled=False)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        client: bool,
        max_size: Option<usize>,
        deflate: bool,
        max_window_bits: u8,
        no_context_takeover: bool,
        max_fragment_size: Option<usize>,
        stream_fragments: bool,
        pooled: bool,
    ) -> PyResult<Self> {
        let inflater = if deflate {
            Some(
                deflate::Inflater::new(max_window_bits, no_context_takeover)
                    .map_err(|e| to_pyerr(py, &e, Direction::Received))?
                    .pooled(pooled),
            )
        } else {
            None
        };
        Ok(Self {
            inner: reader::Reader::new(client, max_size, inflater)
                .max_fragment_size(max_fragment_size)
                .stream_fragments(stream_fragments),
            direct: None,
        })
    }

    /// A writable `memoryview` for the transport to read the rest of a large binary message's
    /// payload into, or `None` to read into a buffer of its own and `feed` it.
    ///
    /// When the reader is in the payload of an unfragmented, uncompressed binary message with
    /// at least 64 KiB to come, it allocates the message's `bytes` now, and the network data
    /// goes straight there (unmasked in place by `received`): no copy through the network
    /// buffer and the message buffer. Call `received` with the number of bytes read into
    /// it; `feed` still works meanwhile, copying into the same `bytes`.
    fn receive_buffer<'py>(
        &mut self,
        py: Python<'py>,
    ) -> PyResult<Option<Bound<'py, PyMemoryView>>> {
        if self.direct.is_none() && !self.start_direct(py)? {
            return Ok(None);
        }
        let (Some(direct), Some((received, len))) =
            (self.direct.as_ref(), self.inner.direct_progress())
        else {
            return Ok(None);
        };
        let buffer = Bound::new(
            py,
            ReceiveBuffer {
                bytes: direct.0.clone_ref(py),
                start: received,
                len: len - received,
            },
        )?;
        // A memoryview over it: transports slice what they read into (asyncio's TLS layer).
        PyMemoryView::from(buffer.as_any()).map(Some)
    }

    /// The transport read `nbytes` into the last `receive_buffer`; returns the events that
    /// completed (the message, once its payload is all there).
    fn received<'py>(&mut self, py: Python<'py>, nbytes: usize) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        if let Some(bytes) = self.advance_direct(py, nbytes, None)? {
            list.append(bytes)?;
        }
        Ok(list)
    }

    /// Feed a chunk from the network; returns the events it completed, in order.
    ///
    /// The payload of a large binary message goes straight into its final `bytes` here too
    /// (see `receive_buffer`), not through the message buffer.
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let input = Input::of(data)?;
        self.feed_slice(py, input.as_slice(), input.may_detach())
    }

    /// Whether a message is being received in place (see `receive_buffer`).
    #[getter]
    fn receiving_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Whether a close frame was received (further input is ignored).
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Whether the peer broke the protocol (further input is ignored).
    #[getter]
    fn failed(&self) -> bool {
        self.inner.is_failed()
    }

    /// Whether a fragmented message has started and not ended.
    #[getter]
    fn in_message(&self) -> bool {
        self.inner.in_message()
    }

    /// Free what an idle connection does not need (decompression state, spare buffers),
    /// keeping the window history; a no-op in the middle of a message. Returns the number
    /// of bytes freed, at least.
    fn compact(&mut self) -> usize {
        self.inner.compact()
    }

    /// Whether the decompression state is allocated.
    #[getter]
    fn inflater_allocated(&self) -> bool {
        self.inner.inflater_allocated()
    }
}

impl Reader {
    /// Read once from `socket` and parse what came: the native transport's readiness
    /// callback (`Socket.receive`). Returns the events completed, as `feed` does (an empty
    /// list when the read found nothing), or `None` at the end of the stream.
    ///
    /// The payload of a large binary message is read straight into its `bytes`; everything
    /// else is read into a buffer of [`NATIVE_RECEIVE_SIZE`] bytes per thread and parsed in
    /// place.
    #[cfg(unix)]
    pub(crate) fn receive_from<'py>(
        &mut self,
        py: Python<'py>,
        socket: &mut SocketIo,
        os_error: fn(&std::io::Error) -> PyErr,
    ) -> PyResult<Option<Bound<'py, PyList>>> {
        if self.direct.is_some() || self.start_direct(py)? {
            if let (Some(direct), Some((received, len))) =
                (self.direct.as_mut(), self.inner.direct_progress())
            {
                let start = direct.tail(py, received, len)?;
                // SAFETY: `start` points at the `len - received` bytes of the message not
                // received yet, inside a `bytes` that `self.direct` keeps alive for the call
                // and that no Python code sees before it is complete; `recv` only writes there.
                let got =
                    unsafe { socket.recv_raw(start, len - received) }.map_err(|e| os_error(&e))?;
                let list = PyList::empty(py);
                return match got {
                    Received::Data(n) => {
                        if let Some(bytes) = self.advance_direct(py, n, None)? {
                            list.append(bytes)?;
                        }
                        Ok(Some(list))
                    }
                    Received::Eof => Ok(None),
                    Received::WouldBlock => Ok(Some(list)),
                };
            }
        }
        // Taken out of the thread's slot while in use: a nested call (none is known: parsing
        // calls no Python code) would allocate its own instead of sharing it.
        let mut buffer = NATIVE_BUFFER
            .try_with(Cell::take)
            .ok()
            .flatten()
            .unwrap_or_else(|| vec![0; NATIVE_RECEIVE_SIZE].into_boxed_slice());
        let result = match socket.recv(&mut buffer) {
            // The buffer is Rust's alone while it is parsed: the GIL may be released.
            Ok(Received::Data(n)) => self.feed_slice(py, &buffer[..n], true).map(Some),
            Ok(Received::Eof) => Ok(None),
            Ok(Received::WouldBlock) => Ok(Some(PyList::empty(py))),
            Err(err) => Err(os_error(&err)),
        };
        // Ignored when the thread is exiting: the buffer is freed instead.
        let _ = NATIVE_BUFFER.try_with(|slot| slot.set(Some(buffer)));
        result
    }

    /// [`feed`](Self::feed) on bytes Rust holds; `may_detach` says whether nothing else can
    /// change them while the GIL is released.
    pub(crate) fn feed_slice<'py>(
        &mut self,
        py: Python<'py>,
        mut data: &[u8],
        may_detach: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        let mut events = Vec::new();
        loop {
            if let Some(remaining) = self.inner.direct_remaining() {
                let n = data.len().min(remaining);
                if let Some(bytes) = self.advance_direct(py, n, Some(&data[..n]))? {
                    list.append(bytes)?;
                }
                data = &data[n..];
                if data.is_empty() {
                    return Ok(list);
                }
            }
            let inner = &mut self.inner;
            let result = if data.len() >= GIL_RELEASE_THRESHOLD && may_detach {
                py.detach(|| inner.feed_until_direct(data, &mut events, RECEIVE_IN_PLACE_MIN))
            } else {
                inner.feed_until_direct(data, &mut events, RECEIVE_IN_PLACE_MIN)
            };
            for event in events.drain(..) {
                match event {
                    reader::Event::Text(s) => {
                        list.append(PyString::new(py, &s))?;
                        inner.recycle(s.into_bytes());
                    }
                    reader::Event::Binary(b) => {
                        list.append(PyBytes::new(py, &b))?;
                        inner.recycle(b);
                    }
                    reader::Event::Fragment { data, text, fin } => {
                        let bytes = PyBytes::new(py, &data).unbind();
                        list.append(Fragment {
                            data: bytes,
                            text,
                            fin,
                        })?;
                        inner.recycle(data);
                    }
                    reader::Event::Ping(data) => list.append(Ping { data })?,
                    reader::Event::Pong(data) => list.append(Pong { data })?,
                    reader::Event::Close { code, reason } => {
                        list.append(Close { code, reason })?;
                    }
                }
            }
            match result {
                Err(err) => {
                    list.append(to_pyerr(py, &err, Direction::Received).into_value(py))?;
                    return Ok(list);
                }
                Ok(used) => {
                    data = &data[used..];
                    // Stopped at the header of a large binary message: the rest of `data`
                    // goes into its `bytes`.
                    if data.is_empty() {
                        return Ok(list);
                    }
                    if !self.start_direct(py)? {
                        // Not reached: the reader stops only where `direct_len` allows.
                        return Err(PyRuntimeError::new_err(
                            "reader stopped without a message to receive in place",
                        ));
                    }
                }
            }
        }
    }

    /// Start receiving the current message in place if it qualifies (see `receive_buffer`):
    /// allocate its `bytes` and copy there what came of the payload already. Returns whether
    /// it started.
    fn start_direct(&mut self, py: Python<'_>) -> PyResult<bool> {
        let Some(len) = self.inner.direct_len(RECEIVE_IN_PLACE_MIN) else {
            return Ok(false);
        };
        // Allocated first: if that fails, the reader has not started receiving in place.
        let mut bytes = MessageBytes::new(py, len)?;
        let Some((_, prefix)) = self.inner.begin_direct(RECEIVE_IN_PLACE_MIN) else {
            return Ok(false); // not reached: direct_len() said it can
        };
        // The payload received so far (`len` is at least that long).
        bytes.fill(py, 0..prefix.len(), Some(prefix))?;
        self.direct = Some(bytes);
        Ok(true)
    }

    /// `n` more bytes of the message received in place are in its `bytes` (or, with `src`,
    /// are copied there first): unmask them; returns the `bytes` once complete.
    fn advance_direct(
        &mut self,
        py: Python<'_>,
        n: usize,
        src: Option<&[u8]>,
    ) -> PyResult<Option<Py<PyBytes>>> {
        // The reader says where the bytes go, and refuses more than the message has left.
        let range = self
            .inner
            .direct_next(n)
            .map_err(|e| to_pyerr(py, &e, Direction::Received))?;
        let Some(direct) = self.direct.as_mut() else {
            return Err(PyValueError::new_err("no message is received in place"));
        };
        let piece = direct.fill(py, range, src)?;
        let complete = self
            .inner
            .direct_received(piece)
            .map_err(|e| to_pyerr(py, &e, Direction::Received))?;
        Ok(if complete {
            self.direct.take().map(|direct| direct.0)
        } else {
            None
        })
    }
}
