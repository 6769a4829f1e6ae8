//! The Python glue of `wsrs._core`: thin PyO3 wrappers over the pure-Rust core, one module per
//! exported class or concern, so the `unsafe` code can be read file by file.
//!
//! This is the only code besides `lib.rs` that uses `pyo3`; it holds no protocol logic (`inbox`
//! holds the asyncio front ends' queue of received messages, whose rules are the front ends'
//! and are written down in `python/wsrs/asyncio/messages.py`). It
//! is exercised by the Python tests (`tests/`), not by `cargo test`, and is left out of
//! `scripts/rust-coverage.sh`. Copies: `bytes` input and C-contiguous buffers (the adapter's
//! shared read buffer) are parsed in place; other buffers are copied once. Each message
//! handed to Python is one new `str` or `bytes`; a large binary message is received straight
//! into its `bytes` (`Reader.receive_buffer`: the transport reads into it), and a large
//! outgoing message is encoded into a `bytearray` the writer reuses
//! (`Writer.message_buffer`).

pub mod errors;
pub mod events;
pub mod framewriter;
pub mod http;
pub mod inbox;
pub mod input;
pub mod reader;
pub mod shared;
#[cfg(unix)]
pub mod socket;
pub mod testing;
pub mod writer;
