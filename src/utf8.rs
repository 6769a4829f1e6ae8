//! UTF-8 validation of text messages and close reasons.
//!
//! RFC 6455 §8.1: "When an endpoint is to interpret a byte stream as UTF-8 but finds that the
//! byte stream is not, in fact, a valid UTF-8 stream, that endpoint MUST _Fail the WebSocket
//! Connection_". A fragmented text message may split a code point between frames, so
//! [`Utf8Validator`] keeps the incomplete tail (at most 3 bytes) of one piece and completes it
//! with the next. It fails on the first piece holding a sequence that can never become valid,
//! not only at the end of the message (Autobahn 6.4.* checks that).
//!
//! The bulk of the work is `simdutf8`, which picks an SSE4.2/AVX2/NEON kernel at run time.

use crate::error::{Error, Result};

/// Validate a complete UTF-8 string.
#[inline]
#[must_use]
pub fn validate(data: &[u8]) -> bool {
    simdutf8::basic::from_utf8(data).is_ok()
}

/// Length of the UTF-8 sequence that starts with `lead` (a lead byte already checked by the
/// validator, so only 2, 3 or 4 are possible here).
#[inline]
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        _ => 2,
    }
}

/// Incremental validator for one message delivered in pieces.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// Bytes of a code point whose end has not arrived yet.
    pending: [u8; 4],
    /// How many bytes of `pending` are used (0 to 3).
    pending_len: usize,
}

impl Utf8Validator {
    /// A validator at the start of a message.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget any partial code point, to start a new message.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// Validate the next piece of the message; `fin` says it is the last.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUtf8`] as soon as the bytes seen so far cannot be the start of valid
    /// UTF-8, or when `fin` is set and the message ends inside a code point. After an error the
    /// validator must be [`reset`](Self::reset) before reuse.
    pub fn feed(&mut self, mut data: &[u8], fin: bool) -> Result<()> {
        if self.pending_len > 0 {
            let need = sequence_len(self.pending[0]);
            let take = (need - self.pending_len).min(data.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&data[..take]);
            self.pending_len += take;
            data = &data[take..];
            match simdutf8::compat::from_utf8(&self.pending[..self.pending_len]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still incomplete: `data` was used up.
                    return if fin { Err(Error::InvalidUtf8) } else { Ok(()) };
                }
                Err(_) => return Err(Error::InvalidUtf8),
            }
        }
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() && !fin => {
                let tail = &data[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len();
                Ok(())
            }
            Err(_) => Err(Error::InvalidUtf8),
        }
    }

    /// Whether the bytes fed so far end in the middle of a code point.
    #[must_use]
    pub fn is_incomplete(&self) -> bool {
        self.pending_len > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pieces_ok(pieces: &[&[u8]]) -> bool {
        let mut v = Utf8Validator::new();
        let last = pieces.len().saturating_sub(1);
        for (i, piece) in pieces.iter().enumerate() {
            if v.feed(piece, i == last).is_err() {
                return false;
            }
        }
        true
    }

    #[test]
    fn whole_strings() {
        assert!(validate(b""));
        assert!(validate("Hello-µ@ßöäüàá-UTF-8!!".as_bytes()));
        assert!(validate("κόσμε 𝄞".as_bytes()));
        assert!(!validate(
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"
        ));
        assert!(!validate(b"\xff"));
        assert!(!validate(b"\xc0\xaf")); // overlong
        assert!(!validate(b"\xf4\x90\x80\x80")); // above U+10FFFF
    }

    #[test]
    fn every_split_of_valid_text() {
        let text = "aκόσμε𝄞€\u{10FFFF}z".as_bytes();
        for i in 0..=text.len() {
            for j in i..=text.len() {
                assert!(pieces_ok(&[&text[..i], &text[i..j], &text[j..]]), "{i} {j}");
            }
        }
    }

    #[test]
    fn byte_by_byte() {
        let text = "κόσμε𝄞€".as_bytes();
        let pieces: Vec<&[u8]> = text.chunks(1).collect();
        assert!(pieces_ok(&pieces));
    }

    #[test]
    fn fails_early_on_impossible_prefix() {
        // Autobahn 6.4.1: the first fragment is valid, the second holds a byte sequence that
        // can never be valid; the error must come with the second fragment.
        let mut v = Utf8Validator::new();
        assert!(v.feed("κόσμε".as_bytes(), false).is_ok());
        assert!(v.feed(b"\xf4\x90\x80\x80", false).is_err());
        // A split impossible prefix: F4 then 90 (above U+10FFFF) fails on the 90.
        let mut v = Utf8Validator::new();
        assert!(v.feed(b"\xf4", false).is_ok());
        assert!(v.is_incomplete());
        assert!(v.feed(b"\x90", false).is_err());
    }

    #[test]
    fn incomplete_at_end_fails() {
        assert!(!pieces_ok(&[b"abc\xe2\x82"]));
        assert!(!pieces_ok(&[b"abc\xe2", b"\x82"]));
        assert!(pieces_ok(&[b"abc\xe2", b"\x82", b"\xac"]));
        assert!(!pieces_ok(&[b"abc\xe2", b""]));
        assert!(pieces_ok(&[b"abc\xe2", b"", b"\x82\xac"]));
    }

    #[test]
    fn reset_forgets_partial() {
        let mut v = Utf8Validator::new();
        v.feed(b"\xe2\x82", false).unwrap();
        v.reset();
        assert!(v.feed(b"ok", true).is_ok());
    }

    proptest! {
        #[test]
        fn differential_against_std(data in proptest::collection::vec(any::<u8>(), 0..64),
                                    cuts in proptest::collection::vec(0usize..64, 0..4)) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for c in cuts { pieces.push(&data[start..c]); start = c; }
            pieces.push(&data[start..]);
            prop_assert_eq!(pieces_ok(&pieces), std::str::from_utf8(&data).is_ok());
        }

        #[test]
        fn valid_strings_any_split(s in "\\PC{0,40}", cut in 0usize..200) {
            let b = s.as_bytes();
            let cut = cut.min(b.len());
            prop_assert!(pieces_ok(&[&b[..cut], &b[cut..]]));
        }
    }
}
