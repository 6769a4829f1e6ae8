//! The one error type of the Rust core.
//!
//! Every way a peer can break RFC 6455 / RFC 7692 maps onto an [`Error`] that knows the close
//! code to send (RFC 6455 §7.4.1). The Python bindings turn it into a single exception type
//! carrying `.code` and `.reason`; the Python layer maps that onto its exception hierarchy.

use std::fmt;

/// Close codes of RFC 6455 §7.4.1 that the core itself may send.
pub mod close_code {
    /// 1000: normal closure.
    pub const NORMAL: u16 = 1000;
    /// 1001: going away.
    pub const GOING_AWAY: u16 = 1001;
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// 1003: unsupported data.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: u16 = 1005;
    /// 1006: the connection closed abnormally (never sent on the wire).
    pub const ABNORMAL: u16 = 1006;
    /// 1007: invalid frame payload data (for example text that is not UTF-8).
    pub const INVALID_DATA: u16 = 1007;
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// 1009: message too big.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// 1011: internal error.
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// What went wrong, and so which close code the endpoint must send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The peer broke a framing rule of RFC 6455 §5: close with 1002.
    Protocol(&'static str),
    /// A text message or a close reason is not valid UTF-8: close with 1007.
    InvalidUtf8,
    /// A compressed message could not be inflated: close with 1007.
    BadCompressedData(String),
    /// A message is larger than `max_size` (after decompression): close with 1009.
    TooBig {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A frame of a data message is larger than `max_fragment_size` (its payload, and its
    /// payload after decompression): close with 1009.
    FrameTooBig {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// The caller asked for something the protocol forbids (for example a close code that
    /// may not be sent, or a control frame over 125 bytes). Not a peer error.
    InvalidArgument(String),
}

impl Error {
    /// The RFC 6455 §7.4.1 close code that answers this error.
    #[must_use]
    pub fn close_code(&self) -> u16 {
        match self {
            Error::Protocol(_) => close_code::PROTOCOL_ERROR,
            Error::InvalidUtf8 | Error::BadCompressedData(_) => close_code::INVALID_DATA,
            Error::TooBig { .. } | Error::FrameTooBig { .. } => close_code::MESSAGE_TOO_BIG,
            // Never sent to a peer: the caller made the mistake. 1011 keeps the code valid if
            // someone does.
            Error::InvalidArgument(_) => close_code::INTERNAL_ERROR,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Protocol(reason) => f.write_str(reason),
            Error::InvalidUtf8 => f.write_str("invalid UTF-8"),
            Error::BadCompressedData(detail) => write!(f, "invalid compressed data: {detail}"),
            Error::TooBig { limit } => write!(f, "message too big (limit {limit} bytes)"),
            Error::FrameTooBig { limit } => write!(f, "frame too big (limit {limit} bytes)"),
            Error::InvalidArgument(detail) => f.write_str(detail),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand for results of the core.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes() {
        assert_eq!(Error::Protocol("x").close_code(), 1002);
        assert_eq!(Error::InvalidUtf8.close_code(), 1007);
        assert_eq!(Error::BadCompressedData("x".into()).close_code(), 1007);
        assert_eq!(Error::TooBig { limit: 1 }.close_code(), 1009);
        assert_eq!(Error::FrameTooBig { limit: 1 }.close_code(), 1009);
        assert_eq!(Error::InvalidArgument("x".into()).close_code(), 1011);
    }

    #[test]
    fn display() {
        assert_eq!(Error::Protocol("bad opcode").to_string(), "bad opcode");
        assert_eq!(Error::InvalidUtf8.to_string(), "invalid UTF-8");
        assert_eq!(
            Error::TooBig { limit: 10 }.to_string(),
            "message too big (limit 10 bytes)"
        );
        assert_eq!(
            Error::FrameTooBig { limit: 10 }.to_string(),
            "frame too big (limit 10 bytes)"
        );
        assert_eq!(
            Error::BadCompressedData("stream error".into()).to_string(),
            "invalid compressed data: stream error"
        );
        assert_eq!(
            Error::InvalidArgument("bad level".into()).to_string(),
            "bad level"
        );
    }
}
