//! XOR masking of frame payloads (RFC 6455 §5.3).
//!
//! `octet i of the transformed data is the XOR of octet i of the original data with octet at
//! index i modulo 4 of the masking key`. The fast path works on 32-byte blocks of four `u64`
//! words, which LLVM turns into SIMD on every x86-64 and aarch64 target without
//! `target-cpu=native`; [`apply_mask_fallback`] is the byte-at-a-time reference it is tested
//! against. No `unsafe` here: unaligned word loads go through `from_ne_bytes`.

/// Rotate `key` so that index 0 is the key octet for payload position `offset`.
#[inline]
fn rotated(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut k = key;
    k.rotate_left(offset % 4);
    k
}

/// XOR `buf` in place with `key`, where `buf[0]` is payload octet number `offset`.
///
/// `offset` lets a payload be unmasked piece by piece as it arrives from the network.
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    #[cfg(target_arch = "x86_64")]
    if buf.len() >= AVX2_MIN_LEN && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: `apply_mask_avx2` only requires AVX2, which the CPU was just found to
        // support.
        unsafe { apply_mask_avx2(buf, key, offset) };
        return;
    }
    apply_mask_words(buf, key, offset);
}

/// Below this length the SSE2 build of the word loop is as fast as the AVX2 one.
#[cfg(target_arch = "x86_64")]
const AVX2_MIN_LEN: usize = 256;

/// The word loop compiled for AVX2 (32-byte vectors instead of SSE2's 16). Runtime dispatch
/// keeps wheels portable: no `target-cpu=native`.
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn apply_mask_avx2(buf: &mut [u8], key: [u8; 4], offset: usize) {
    apply_mask_words(buf, key, offset);
}

/// The portable word loop behind [`apply_mask`].
#[inline(always)]
fn apply_mask_words(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let k = rotated(key, offset);
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut blocks = buf.chunks_exact_mut(32);
    for block in &mut blocks {
        for chunk in block.chunks_exact_mut(8) {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(chunk);
            chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
        }
    }
    // The tail is shorter than a block; a multiple of 8 bytes of it still starts at a
    // multiple of 4 from `buf[0]`, so the same rotated key applies.
    let tail = blocks.into_remainder();
    let mut words = tail.chunks_exact_mut(8);
    for chunk in &mut words {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    for (i, b) in words.into_remainder().iter_mut().enumerate() {
        *b ^= k[i % 4];
    }
}

/// Write `src` XOR `key` into `dst` (of the same length) in one pass, where `src[0]` is
/// payload octet number `offset`.
///
/// # Panics
///
/// If the lengths differ (a caller bug, never data from the network).
#[inline]
pub fn copy_masked(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
    assert_eq!(dst.len(), src.len(), "copy_masked: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if src.len() >= AVX2_MIN_LEN && std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: `copy_masked_avx2` only requires AVX2, which the CPU was just found to
        // support.
        unsafe { copy_masked_avx2(dst, src, key, offset) };
        return;
    }
    copy_masked_words(dst, src, key, offset);
}

/// [`copy_masked_words`] compiled for AVX2.
///
/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn copy_masked_avx2(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
    copy_masked_words(dst, src, key, offset);
}

/// The portable word loop behind [`copy_masked`]: 32-byte blocks of four `u64` words.
#[inline(always)]
fn copy_masked_words(dst: &mut [u8], src: &[u8], key: [u8; 4], offset: usize) {
    let k = rotated(key, offset);
    let word = u64::from_ne_bytes([k[0], k[1], k[2], k[3], k[0], k[1], k[2], k[3]]);
    let mut out = dst.chunks_exact_mut(8);
    let mut words = src.chunks_exact(8);
    for (o, i) in (&mut out).zip(&mut words) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(i);
        o.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // The tail starts at a multiple of 8 (so of 4) from `src[0]`: the same rotated key.
    for (n, (o, i)) in out
        .into_remainder()
        .iter_mut()
        .zip(words.remainder())
        .enumerate()
    {
        *o = i ^ k[n % 4];
    }
}

/// Append `src` XOR `key` to `dst`, where `src[0]` is payload octet number `offset`.
///
/// Copies then masks the freshly written (cache-hot) bytes: appending in one pass would need
/// writes to uninitialised memory. The reader appends pieces of messages under 64 KiB this
/// way (larger ones are received in place); frames are written with [`copy_masked`].
#[inline]
pub fn extend_masked(dst: &mut Vec<u8>, src: &[u8], key: [u8; 4], offset: usize) {
    let start = dst.len();
    dst.extend_from_slice(src);
    apply_mask(&mut dst[start..], key, offset);
}

/// Byte-at-a-time reference for [`apply_mask`]; the fast path is tested against it.
pub fn apply_mask_fallback(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[(offset + i) % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc6455_example() {
        // RFC 6455 §5.7: a masked "Hello" with key 37 fa 21 3d.
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn every_alignment_length_and_offset() {
        let key = [0x6d, 0xb6, 0xb2, 0x80];
        let source: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for align in 0..8 {
            for len in 0..=(source.len() - align) {
                for offset in 0..4 {
                    let mut fast = source[align..align + len].to_vec();
                    let mut slow = fast.clone();
                    apply_mask(&mut fast, key, offset);
                    apply_mask_fallback(&mut slow, key, offset);
                    assert_eq!(fast, slow, "align {align} len {len} offset {offset}");
                }
            }
        }
    }

    #[test]
    fn every_kernel_matches_the_reference() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 31) as u8).collect();
        for len in [0, 1, 31, 32, 255, 256, 257, 1000, 2000] {
            for offset in 0..4 {
                let mut expected = data[..len].to_vec();
                apply_mask_fallback(&mut expected, key, offset);
                let mut words = data[..len].to_vec();
                apply_mask_words(&mut words, key, offset);
                assert_eq!(words, expected);
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    let mut avx2 = data[..len].to_vec();
                    // SAFETY: AVX2 support was checked on the line above.
                    unsafe { apply_mask_avx2(&mut avx2, key, offset) };
                    assert_eq!(avx2, expected);
                }
            }
        }
    }

    #[test]
    fn piecewise_equals_whole() {
        let key = [1, 2, 3, 4];
        let data: Vec<u8> = (0..=255).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);
        for split in 0..data.len() {
            let mut out = Vec::new();
            extend_masked(&mut out, &data[..split], key, 0);
            extend_masked(&mut out, &data[split..], key, split);
            assert_eq!(out, whole, "split {split}");
        }
    }

    #[test]
    fn copy_masked_matches_the_reference() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 31) as u8).collect();
        for len in [0, 1, 7, 8, 9, 31, 32, 255, 256, 257, 1000, 2000] {
            for offset in 0..4 {
                for start in 0..3 {
                    let src = &data[start..start + len.min(data.len() - start)];
                    let mut expected = src.to_vec();
                    apply_mask_fallback(&mut expected, key, offset);
                    let mut out = vec![0u8; src.len() + start];
                    copy_masked(&mut out[start..], src, key, offset);
                    assert_eq!(&out[start..], &expected[..]);
                    let mut words = vec![0u8; src.len()];
                    copy_masked_words(&mut words, src, key, offset);
                    assert_eq!(words, expected);
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "lengths differ")]
    fn copy_masked_lengths_must_match() {
        copy_masked(&mut [0; 3], &[0; 4], [1, 2, 3, 4], 0);
    }

    proptest! {
        #[test]
        fn matches_reference(data in proptest::collection::vec(any::<u8>(), 0..2000),
                             key in any::<[u8; 4]>(), offset in 0usize..8, start in 0usize..16) {
            let start = start.min(data.len());
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask(&mut fast[start..], key, offset);
            apply_mask_fallback(&mut slow[start..], key, offset);
            prop_assert_eq!(&fast, &slow);
            // Masking twice restores the input.
            apply_mask(&mut fast[start..], key, offset);
            prop_assert_eq!(fast, data);
        }
    }
}
