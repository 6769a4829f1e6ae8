//! A raw DEFLATE decompressor on zlib-rs' zlib-compatible API (`libz-rs-sys`).
//!
//! `flate2::Decompress` does not expose zlib's `data_type`, which says whether the stream
//! stopped at a block boundary: permessage-deflate needs it to check that a message ends
//! where its sender flushed (RFC 7692 §7.2.1), so that the state between messages is exactly
//! the window, which [`Inflater::compact`](super::Inflater::compact) relies on.

use std::ffi::c_int;
use std::mem::MaybeUninit;

use libz_rs_sys::{
    inflate, inflateEnd, inflateInit2_, inflateReset, inflateSetDictionary, z_stream, zlibVersion,
    Z_BLOCK, Z_BUF_ERROR, Z_OK, Z_STREAM_END,
};

/// What one call of [`RawInflate::inflate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub consumed: usize,
    pub produced: usize,
    /// The peer ended the DEFLATE stream (a block with BFINAL was completed).
    pub stream_end: bool,
    /// The call stopped right at a block boundary.
    pub boundary: bool,
}

/// An initialised `z_stream` for raw inflate. Boxed: zlib keeps a pointer back to it, so it
/// must not move.
pub struct RawInflate {
    strm: Box<z_stream>,
}

impl std::fmt::Debug for RawInflate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawInflate").finish_non_exhaustive()
    }
}

// SAFETY: the stream owns its state and holds no thread-bound data; `&mut self` serialises use.
unsafe impl Send for RawInflate {}
// SAFETY: through `&self` only plain fields are read (`data_type`, `msg`); every change to the
// stream goes through `&mut self`.
unsafe impl Sync for RawInflate {}

impl RawInflate {
    /// A raw (headerless) inflater with a window of `bits` (9-15) bits; `None` if zlib-rs
    /// cannot allocate its state.
    pub fn new(bits: u8) -> Option<Self> {
        let mut strm = Box::new(z_stream::default());
        let size = c_int::try_from(std::mem::size_of::<z_stream>()).ok()?;
        // SAFETY: `strm` is a default (zeroed, default allocators) z_stream at a stable heap
        // address; the version string and size are this library's own.
        let ret = unsafe { inflateInit2_(&mut *strm, -c_int::from(bits), zlibVersion(), size) };
        (ret == Z_OK).then_some(Self { strm })
    }

    /// Inflate from `input` into the spare capacity of `out` (which grows by the bytes
    /// written), stopping at the next block boundary (zlib's `Z_BLOCK`): call again to go on.
    ///
    /// # Errors
    ///
    /// zlib's message for invalid data.
    pub fn inflate(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Progress, String> {
        let spare: &mut [MaybeUninit<u8>] = out.spare_capacity_mut();
        let avail_in = u32::try_from(input.len()).unwrap_or(u32::MAX);
        let avail_out = u32::try_from(spare.len()).unwrap_or(u32::MAX);
        let strm = &mut *self.strm;
        strm.next_in = input.as_ptr();
        strm.avail_in = avail_in;
        strm.next_out = spare.as_mut_ptr().cast();
        strm.avail_out = avail_out;
        // SAFETY: the stream was initialised in `new`; `next_in`/`avail_in` describe readable
        // bytes of `input` and `next_out`/`avail_out` writable spare capacity of `out`, both
        // borrowed for the duration of the call.
        let ret = unsafe { inflate(strm, Z_BLOCK) };
        let consumed = (avail_in - strm.avail_in) as usize;
        let produced = (avail_out - strm.avail_out) as usize;
        strm.next_in = std::ptr::null();
        strm.next_out = std::ptr::null_mut();
        // SAFETY: zlib initialised exactly `produced` bytes at the start of the spare capacity.
        unsafe { out.set_len(out.len() + produced) };
        match ret {
            Z_OK | Z_BUF_ERROR => Ok(Progress {
                consumed,
                produced,
                // At the end of a block with BFINAL (`data_type & 64`) the stream is over,
                // though zlib says so only on the next call.
                stream_end: self.at_block_boundary() && self.strm.data_type & 64 != 0,
                boundary: self.at_block_boundary(),
            }),
            Z_STREAM_END => Ok(Progress {
                consumed,
                produced,
                stream_end: true,
                boundary: false,
            }),
            _ => Err(self.message()),
        }
    }

    /// Start a new stream (zlib's `inflateReset`), keeping the window buffer; returns whether
    /// zlib accepted (it does for an initialised stream, whatever state the last stream left).
    pub fn reset(&mut self) -> bool {
        // SAFETY: the stream was initialised in `new`; no input or output is attached
        // (`inflate` clears both pointers before it returns).
        unsafe { inflateReset(&mut *self.strm) == Z_OK }
    }

    /// Whether the last call stopped at a block boundary (zlib's `data_type & 128`): the
    /// input so far decoded to complete blocks.
    pub fn at_block_boundary(&self) -> bool {
        self.strm.data_type & 128 != 0
    }

    /// Prime the window with `dictionary` (a raw stream takes it at any block boundary).
    ///
    /// # Errors
    ///
    /// zlib's message if it refuses.
    pub fn set_dictionary(&mut self, dictionary: &[u8]) -> Result<(), String> {
        let len = u32::try_from(dictionary.len()).map_err(|_| "dictionary too long")?;
        // SAFETY: the stream is initialised; the pointer and length describe `dictionary`.
        let ret = unsafe { inflateSetDictionary(&mut *self.strm, dictionary.as_ptr(), len) };
        if ret == Z_OK {
            Ok(())
        } else {
            Err(self.message())
        }
    }

    fn message(&self) -> String {
        if self.strm.msg.is_null() {
            return "invalid compressed data".into();
        }
        // SAFETY: zlib sets `msg` to a static NUL-terminated string.
        unsafe { std::ffi::CStr::from_ptr(self.strm.msg) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for RawInflate {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised in `new` and is ended exactly once, here.
        unsafe { inflateEnd(&mut *self.strm) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflates_and_reports_block_boundaries() {
        let mut raw = RawInflate::new(15).unwrap();
        let mut out = Vec::with_capacity(100);
        // RFC 7692 §7.2.3.1 "Hello", then the sync-flush tail: a complete block boundary.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let p = raw.inflate(&hello, &mut out).unwrap();
        assert_eq!((p.consumed, p.produced, p.stream_end), (7, 5, false));
        let p = raw.inflate(&[0x00, 0x00, 0xff, 0xff], &mut out).unwrap();
        assert_eq!((p.consumed, p.produced, p.stream_end), (4, 0, false));
        assert_eq!(out, b"Hello");
        assert!(raw.at_block_boundary());
        // Half a stored-block header: not at a boundary.
        let p = raw.inflate(&[0x00, 0x05], &mut out).unwrap();
        assert_eq!((p.consumed, p.produced), (2, 0));
        assert!(!raw.at_block_boundary());
        // Garbage: zlib's message.
        let mut bad = RawInflate::new(15).unwrap();
        let mut out = Vec::with_capacity(64);
        let err = bad.inflate(&[0xff; 8], &mut out).unwrap_err();
        assert!(!err.is_empty());
        // A final block ends the stream.
        let mut fin = RawInflate::new(15).unwrap();
        let mut out = Vec::with_capacity(16);
        let last = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let p = fin.inflate(&last, &mut out).unwrap();
        assert!(p.boundary && p.stream_end);
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn dictionary_primes_the_window() {
        let mut raw = RawInflate::new(15).unwrap();
        raw.set_dictionary(b"Hello").unwrap();
        let mut out = Vec::with_capacity(16);
        let back_reference = [0xf2, 0x00, 0x11, 0x00, 0x00, 0x00, 0xff, 0xff];
        raw.inflate(&back_reference, &mut out).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn reset_starts_a_new_stream_with_an_empty_window() {
        let mut raw = RawInflate::new(15).unwrap();
        let mut out = Vec::with_capacity(64);
        let hello = [
            0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff,
        ];
        raw.inflate(&hello, &mut out).unwrap();
        assert!(raw.reset());
        // The back-reference 5 bytes back decoded fine before the reset; now it reaches
        // before the start of the stream.
        let back_reference = [0xf2, 0x00, 0x11, 0x00, 0x00, 0x00, 0xff, 0xff];
        assert!(raw.inflate(&back_reference, &mut out).is_err());
        // A reset also clears an error.
        assert!(raw.reset());
        out.clear();
        raw.inflate(&hello, &mut out).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn after_the_final_block_zlib_reports_the_end_too() {
        let mut raw = RawInflate::new(15).unwrap();
        assert_eq!(format!("{raw:?}"), "RawInflate { .. }");
        let mut out = Vec::with_capacity(16);
        let last = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert!(raw.inflate(&last, &mut out).unwrap().stream_end);
        let p = raw.inflate(&[], &mut out).unwrap();
        assert!(p.stream_end && !p.boundary);
    }
}
