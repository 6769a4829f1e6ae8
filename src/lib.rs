//! `wsrs._core`: the Python bindings of the wsrs Rust core.
//!
//! This file is the module registration only. The pure-Rust core sits in the public modules
//! below (each says what it owns), tested with `cargo test` and benchmarked with criterion
//! without Python; [`config`] names its size thresholds once. The PyO3 wrappers are in
//! `src/py/`, one module per exported class or concern (see `py.rs`), exercised by the
//! Python tests.

pub mod config;
pub mod deflate;
pub mod error;
pub mod frames;
pub mod http;
pub mod mask;
pub mod reader;
#[cfg(unix)]
pub mod socket;
pub mod utf8;
pub mod writer;

mod py;

use pyo3::prelude::*;

/// The `wsrs._core` module.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Used by python/wsrs.
    m.add(
        "ProtocolError",
        m.py().get_type::<py::errors::ProtocolError>(),
    )?;
    m.add_class::<py::events::Ping>()?;
    m.add_class::<py::events::Pong>()?;
    m.add_class::<py::events::Close>()?;
    m.add_class::<py::events::Fragment>()?;
    m.add_class::<py::reader::Reader>()?;
    m.add_class::<py::reader::ReceiveBuffer>()?;
    m.add_class::<py::writer::Writer>()?;
    m.add_class::<py::shared::SharedMessage>()?;
    m.add_class::<py::inbox::Inbox>()?;
    m.add_class::<py::framewriter::FrameWriter>()?;
    m.add_function(wrap_pyfunction!(py::http::parse_header_fields, m)?)?;
    m.add_function(wrap_pyfunction!(py::inbox::resolve_deferred, m)?)?;
    m.add_function(wrap_pyfunction!(py::inbox::run_wakeups, m)?)?;
    #[cfg(unix)]
    m.add_class::<py::socket::Socket>()?;
    m.add("LARGE_MESSAGE_SIZE", config::LARGE_MESSAGE_SIZE)?;
    // Used only by tests/ and benches/.
    m.add_class::<py::testing::Utf8Validator>()?;
    m.add_function(wrap_pyfunction!(py::testing::apply_mask, m)?)?;
    m.add_function(wrap_pyfunction!(py::testing::validate_utf8, m)?)?;
    m.add_function(wrap_pyfunction!(py::testing::encode_frame, m)?)?;
    m.add_function(wrap_pyfunction!(py::testing::parse_close, m)?)?;
    m.add_function(wrap_pyfunction!(py::testing::build_close, m)?)?;
    m.add_function(wrap_pyfunction!(py::testing::is_valid_close_code, m)?)?;
    m.add("MAX_HEADER_LEN", frames::MAX_HEADER_LEN)?;
    m.add("GIL_RELEASE_THRESHOLD", config::GIL_RELEASE_THRESHOLD)?;
    m.add("MAX_KEPT_SEND_BUFFER", config::MAX_KEPT_SEND_BUFFER)?;
    Ok(())
}
