//! `Inbox`: the queue of received messages of the asyncio front ends, and
//! `resolve_deferred`, which hands a message to a waiting task without scheduling its wake-up.
//!
//! The rules are written down once, in `python/wsrs/asyncio/messages.py` (`MessageQueue`
//! subclasses `Inbox` and adds the coroutines `get` and `join`); this module applies them.
//! It is in Rust so that the native transport's read (`Socket.deliver`) hands the messages it
//! parsed to the waiting receiver without a Python call per message. The messages stay in a
//! `collections.deque` that Python reads too (`messages`); the futures of the waiting
//! receivers are held here. No `unsafe` code.

use std::collections::VecDeque;

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::{ffi, intern};

use crate::py::events::Fragment;

/// Received messages not read yet, and the receivers waiting for one (the state of
/// `wsrs.asyncio.messages.MessageQueue`, which documents the rules).
#[pyclass(module = "wsrs._core", subclass)]
pub struct Inbox {
    event_loop: Py<PyAny>,
    messages: Py<PyAny>,
    waiters: VecDeque<Py<PyAny>>,
    max_queue: usize,
    low: usize,
    pause: Py<PyAny>,
    resume: Py<PyAny>,
    wakeups: Py<PyAny>,
    /// `wakeups.pending`: the wake-ups deferred to the end of the read.
    pending: Py<PyList>,
    /// `wakeups.inline`: whether wake-ups are deferred on this loop.
    inline: bool,
    ended: bool,
    defer: bool,
    paused: bool,
    closing: bool,
    /// While closing: a fragment was dropped, so nothing after it is queued.
    cut: bool,
}

/// `obj.name(*args)` (at most two arguments), through `PyObject_CallMethodObjArgs`: no bound
/// method object and no argument tuple are made, as for a method call in Python code.
/// (PyO3's `call_method1` makes both under the limited API, which cost this module more than
/// the Python code it replaced.)
pub(crate) fn call<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    args: &[&Bound<'py, PyAny>],
) -> PyResult<Bound<'py, PyAny>> {
    let (o, n, end) = (
        obj.as_ptr(),
        name.as_ptr(),
        std::ptr::null_mut::<ffi::PyObject>(),
    );
    // SAFETY: `obj`, `name` and `args` are live references for the whole call (the GIL is
    // held), each argument list ends with the null pointer the function requires, and the
    // result is a new reference or null with an exception set, which
    // `from_owned_ptr_or_err` handles.
    unsafe {
        let result = match args {
            [] => ffi::PyObject_CallMethodObjArgs(o, n, end),
            [a] => ffi::PyObject_CallMethodObjArgs(o, n, a.as_ptr(), end),
            [a, b] => ffi::PyObject_CallMethodObjArgs(o, n, a.as_ptr(), b.as_ptr(), end),
            _ => return Err(PyTypeError::new_err("at most two arguments")),
        };
        Bound::from_owned_ptr_or_err(obj.py(), result)
    }
}

/// Whether `future` (an `asyncio.Future`) is done.
fn is_done(future: &Bound<'_, PyAny>) -> PyResult<bool> {
    call(future, intern!(future.py(), "done"), &[])?.is_truthy()
}

/// Resolve the pending `future` with `result` without scheduling its callbacks: append the
/// future and the callbacks taken off it to `woken`, for `run_wakeups`.
#[pyfunction]
pub fn resolve_deferred(
    future: &Bound<'_, PyAny>,
    result: &Bound<'_, PyAny>,
    woken: &Bound<'_, PyList>,
) -> PyResult<()> {
    let py = future.py();
    // `_callbacks` (asyncio's own repr reads it) is None or a list of (callback, context),
    // which the pure-Python future's remove_done_callback() empties: copied first.
    let callbacks = future.getattr(intern!(py, "_callbacks"))?;
    if callbacks.is_truthy()? {
        let callbacks = callbacks.cast_into::<PyList>()?;
        let callbacks = callbacks.get_slice(0, callbacks.len());
        for entry in callbacks.iter() {
            call(
                future,
                intern!(py, "remove_done_callback"),
                &[&entry.get_item(0)?],
            )?;
        }
        woken.append(PyTuple::new(py, [future.as_any(), callbacks.as_any()])?)?;
    }
    call(future, intern!(py, "set_result"), &[result])?;
    Ok(())
}

/// Where asyncio records the running task of each loop: `asyncio.tasks._current_tasks`
/// (Python 3.11 to 3.13), else `None` (`asyncio.current_task` is asked instead).
static CURRENT_TASKS: PyOnceLock<Option<Py<PyDict>>> = PyOnceLock::new();

/// Whether a task of `event_loop` is running.
fn task_running(event_loop: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = event_loop.py();
    let tasks = CURRENT_TASKS.get_or_try_init(py, || -> PyResult<_> {
        let tasks = py.import("asyncio.tasks")?;
        Ok(tasks
            .getattr("_current_tasks")
            .ok()
            .and_then(|t| t.cast_into::<PyDict>().ok())
            .map(Bound::unbind))
    })?;
    match tasks {
        Some(tasks) => tasks.bind(py).contains(event_loop),
        None => Ok(!py
            .import("asyncio")?
            .call_method1("current_task", (event_loop,))?
            .is_none()),
    }
}

/// Run the callbacks of `woken` (the `(future, callbacks)` pairs `resolve_deferred` took)
/// now if no task of `event_loop` is running (a readiness callback), else schedule them with
/// `call_soon`, as the futures would have. An exception from a callback goes to the loop's
/// exception handler, as from a callback the loop runs; `KeyboardInterrupt` and
/// `SystemExit` propagate.
#[pyfunction]
pub fn run_wakeups(event_loop: &Bound<'_, PyAny>, woken: &Bound<'_, PyList>) -> PyResult<()> {
    let py = event_loop.py();
    let inline = !task_running(event_loop)?;
    for pair in woken.iter() {
        let future = pair.get_item(0)?;
        for entry in pair.get_item(1)?.try_iter()? {
            let entry = entry?;
            let (callback, context) = (entry.get_item(0)?, entry.get_item(1)?);
            if !inline {
                let options = PyDict::new(py);
                options.set_item(intern!(py, "context"), &context)?;
                event_loop.call_method(
                    intern!(py, "call_soon"),
                    (&callback, &future),
                    Some(&options),
                )?;
                continue;
            }
            if let Err(err) = call(&context, intern!(py, "run"), &[&callback, &future]) {
                if err.is_instance_of::<PyKeyboardInterrupt>(py)
                    || err.is_instance_of::<PySystemExit>(py)
                {
                    return Err(err);
                }
                // As asyncio's Handle reports it.
                let report = PyDict::new(py);
                report.set_item(
                    "message",
                    format!("Exception in callback {}", callback.repr()?),
                )?;
                report.set_item("exception", err.value(py))?;
                report.set_item("future", &future)?;
                call(
                    event_loop,
                    intern!(py, "call_exception_handler"),
                    &[&report],
                )?;
            }
        }
    }
    Ok(())
}

/// Run and forget the wake-ups in `pending` (`run_wakeups`); the list is emptied, not
/// replaced, since the queue and its owner share it.
pub(crate) fn run_pending(
    event_loop: &Bound<'_, PyAny>,
    pending: &Bound<'_, PyList>,
) -> PyResult<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let woken = pending.get_slice(0, pending.len());
    pending.del_slice(0, pending.len())?;
    run_wakeups(event_loop, &woken)
}

impl Inbox {
    /// Hand `message` to the oldest waiting receiver, deferring its wake-up if `defer`, or
    /// queue it (rules 1, 2 and 6 of `messages.py`).
    fn put_item(&mut self, message: &Bound<'_, PyAny>, defer: bool) -> PyResult<()> {
        let py = message.py();
        let messages = self.messages.bind(py);
        if self.closing && (self.cut || (self.max_queue > 0 && messages.len()? >= self.max_queue)) {
            if message.is_instance_of::<Fragment>() {
                self.cut = true;
            }
            py.import("logging")?
                .call_method1(intern!(py, "getLogger"), ("wsrs.protocol",))?
                .call_method1(
                    intern!(py, "debug"),
                    ("closing: message dropped, the queue is full",),
                )?;
            return Ok(());
        }
        while let Some(waiter) = self.waiters.pop_front() {
            let waiter = waiter.into_bound(py);
            if !is_done(&waiter)? {
                // Else cancelled.
                return if defer {
                    resolve_deferred(&waiter, message, self.pending.bind(py))
                } else {
                    call(&waiter, intern!(py, "set_result"), &[message]).map(drop)
                };
            }
        }
        call(messages, intern!(py, "append"), &[message])?;
        self.maybe_pause(py)
    }

    fn maybe_pause(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.max_queue > 0
            && !self.paused
            && !self.closing
            && !self.ended
            && self.messages.bind(py).len()? >= self.max_queue
        {
            self.paused = true;
            self.pause.call0(py)?;
        }
        Ok(())
    }

    /// The loop and the list of deferred wake-ups, for [`run_pending`] once the queue is not
    /// borrowed any more (the tasks it wakes use the queue).
    pub(crate) fn wakeups_of<'py>(
        &self,
        py: Python<'py>,
    ) -> (Bound<'py, PyAny>, Bound<'py, PyList>) {
        (
            self.event_loop.bind(py).clone(),
            self.pending.bind(py).clone(),
        )
    }

    /// Hand the whole messages and fragments at the start of `events` (a reader's output)
    /// to receivers or to the queue, stopping at the first other event and at the first
    /// message of `large` bytes or characters or more; return how many it took and the
    /// events left, in order. Wake-ups are deferred where the loop allows (the caller is a
    /// readiness callback).
    pub(crate) fn deliver<'py>(
        &mut self,
        events: &Bound<'py, PyList>,
        large: usize,
    ) -> PyResult<(usize, Bound<'py, PyList>)> {
        let count = events.len();
        let mut taken = 0;
        while taken < count {
            let event = events.get_item(taken)?;
            let plain = (event.is_exact_instance_of::<PyBytes>()
                || event.is_exact_instance_of::<PyString>())
                && event.len()? < large;
            if !plain && !event.is_exact_instance_of::<Fragment>() {
                break;
            }
            self.put_item(&event, self.inline)?;
            taken += 1;
        }
        if taken == count {
            return Ok((taken, PyList::empty(events.py())));
        }
        let rest = if taken == 0 {
            events.clone()
        } else {
            events.get_slice(taken, count).cast_into::<PyList>()?
        };
        Ok((taken, rest))
    }
}

#[pymethods]
impl Inbox {
    /// `wakeups` is the connection's `wsrs.asyncio.wakeup.Wakeups`: its `inline` flag says
    /// whether wake-ups are deferred, and its `pending` list (kept, never replaced) receives
    /// them.
    #[new]
    #[pyo3(signature = (event_loop, max_queue, pause, resume, low = None, *, wakeups))]
    fn new(
        event_loop: Py<PyAny>,
        max_queue: usize,
        pause: Py<PyAny>,
        resume: Py<PyAny>,
        low: Option<usize>,
        wakeups: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let py = wakeups.py();
        let pending = wakeups
            .getattr(intern!(py, "pending"))?
            .cast_into::<PyList>()
            .map_err(|_| PyTypeError::new_err("wakeups.pending must be a list"))?;
        let messages = py.import("collections")?.getattr("deque")?.call0()?;
        Ok(Self {
            event_loop,
            messages: messages.unbind(),
            waiters: VecDeque::new(),
            max_queue,
            low: low.map_or((max_queue / 2).max(1), |low| low.max(1)),
            pause,
            resume,
            inline: wakeups.getattr(intern!(py, "inline"))?.is_truthy()?,
            wakeups: wakeups.clone().unbind(),
            pending: pending.unbind(),
            ended: false,
            defer: false,
            paused: false,
            closing: false,
            cut: false,
        })
    }

    /// The event loop of the connection.
    #[getter(r#loop)]
    fn event_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.event_loop.clone_ref(py)
    }

    /// Messages (or fragments of messages) received and not read yet, oldest first (a
    /// `collections.deque`).
    #[getter]
    fn messages(&self, py: Python<'_>) -> Py<PyAny> {
        self.messages.clone_ref(py)
    }

    /// Messages queued before reading pauses; 0 means no limit.
    #[getter]
    fn max_queue(&self) -> usize {
        self.max_queue
    }

    /// Whether no message will arrive any more.
    #[getter]
    fn ended(&self) -> bool {
        self.ended
    }

    /// The wake-ups of receivers handed a message while `defer` was set (rule 7); the front
    /// end runs them (`wakeups.run()`) at the end of the read.
    #[getter]
    fn wakeups(&self, py: Python<'_>) -> Py<PyAny> {
        self.wakeups.clone_ref(py)
    }

    /// Whether `put` defers the wake-ups of the receivers it hands messages to (set by the
    /// front end around the events of one read, only where `wakeups.inline` is).
    #[getter]
    fn defer(&self) -> bool {
        self.defer
    }

    #[setter]
    fn set_defer(&mut self, value: bool) {
        self.defer = value;
    }

    /// How many receivers wait for a message (cancelled ones included until skipped).
    #[getter]
    fn waiting(&self) -> usize {
        self.waiters.len()
    }

    /// Queue a message (or a fragment of one) received from the peer; pause reading if the
    /// queue is full.
    fn put(&mut self, message: &Bound<'_, PyAny>) -> PyResult<()> {
        self.put_item(message, self.defer)
    }

    /// Return the next message (or fragment) now; the queue must not be empty.
    fn take<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let messages = self.messages.bind(py);
        let message = call(messages, intern!(py, "popleft"), &[])?;
        if self.paused && messages.len()? < self.low {
            self.paused = false;
            self.resume.call0(py)?;
        }
        Ok(message)
    }

    /// Return a future of the next message (or fragment), for a receiver that found the
    /// queue empty: `put` hands it the next one, `end` `None` (at once if the queue has
    /// ended).
    fn wait<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let waiter = call(self.event_loop.bind(py), intern!(py, "create_future"), &[])?;
        if self.ended {
            call(&waiter, intern!(py, "set_result"), &[py.None().bind(py)])?;
        } else {
            self.waiters.push_back(waiter.clone().unbind());
        }
        Ok(waiter)
    }

    /// The receiver awaiting `waiter` (from `wait`) was cancelled: if a message was handed
    /// to it already, hand it to the next waiting receiver, or else put it back at the front
    /// of the queue.
    fn give_back(&mut self, waiter: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = waiter.py();
        if !is_done(waiter)? || call(waiter, intern!(py, "cancelled"), &[])?.is_truthy()? {
            return Ok(());
        }
        let message = call(waiter, intern!(py, "result"), &[])?;
        if message.is_none() {
            return Ok(());
        }
        while let Some(other) = self.waiters.pop_front() {
            let other = other.into_bound(py);
            if !is_done(&other)? {
                call(&other, intern!(py, "set_result"), &[&message])?;
                return Ok(());
            }
        }
        call(
            self.messages.bind(py),
            intern!(py, "appendleft"),
            &[&message],
        )?;
        self.maybe_pause(py)
    }

    /// This side sent its close frame: keep reading, drop what does not fit.
    fn close_sent(&mut self, py: Python<'_>) -> PyResult<()> {
        self.closing = true;
        if self.paused {
            self.paused = false;
            self.resume.call0(py)?;
        }
        Ok(())
    }

    /// No message will arrive any more: wake every waiting receiver (with `None`).
    fn end(&mut self, py: Python<'_>) -> PyResult<()> {
        self.ended = true;
        for waiter in std::mem::take(&mut self.waiters) {
            let waiter = waiter.into_bound(py);
            if !is_done(&waiter)? {
                call(&waiter, intern!(py, "set_result"), &[py.None().bind(py)])?;
            }
        }
        Ok(())
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.event_loop)?;
        visit.call(&self.messages)?;
        for waiter in &self.waiters {
            visit.call(waiter)?;
        }
        visit.call(&self.pause)?;
        visit.call(&self.resume)?;
        visit.call(&self.wakeups)?;
        visit.call(&self.pending)
    }

    fn __clear__(&mut self) {
        self.waiters.clear();
    }
}
