//! Method calls from Rust as cheap as from Python code: `PyObject_CallMethodObjArgs` looks
//! the method up without making a bound method object and passes the arguments without a
//! tuple. Under the limited API, PyO3's `call_method0`/`call_method1` make both, which cost
//! the message queue (`inbox`) more than the Python code it replaced.

use pyo3::prelude::*;
use pyo3::types::PyString;
use pyo3::ffi;

/// `obj.name()`, through `PyObject_CallMethodObjArgs`: no bound method object is made, as
/// for a method call in Python code (PyO3's `call_method0` makes one under the limited API).
pub(crate) fn call0<'py>(obj: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: `obj` and `name` are live references for the whole call (the GIL is held),
    // the argument list ends with the null pointer the function requires, and the result is
    // a new reference or null with an exception set, which `from_owned_ptr_or_err` handles.
    unsafe {
        Bound::from_owned_ptr_or_err(
            obj.py(),
            ffi::PyObject_CallMethodObjArgs(
                obj.as_ptr(),
                name.as_ptr(),
                std::ptr::null_mut::<ffi::PyObject>(),
            ),
        )
    }
}

/// `obj.name(arg)`, as [`call0`]: no bound method object and no argument tuple.
pub(crate) fn call1<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    arg: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: as in `call0`; `arg` is live for the call too.
    unsafe {
        Bound::from_owned_ptr_or_err(
            obj.py(),
            ffi::PyObject_CallMethodObjArgs(
                obj.as_ptr(),
                name.as_ptr(),
                arg.as_ptr(),
                std::ptr::null_mut::<ffi::PyObject>(),
            ),
        )
    }
}

/// `obj.name(first, second)`, as [`call0`].
pub(crate) fn call2<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    first: &Bound<'py, PyAny>,
    second: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: as in `call0`; both arguments are live for the call too.
    unsafe {
        Bound::from_owned_ptr_or_err(
            obj.py(),
            ffi::PyObject_CallMethodObjArgs(
                obj.as_ptr(),
                name.as_ptr(),
                first.as_ptr(),
                second.as_ptr(),
                std::ptr::null_mut::<ffi::PyObject>(),
            ),
        )
    }
}
