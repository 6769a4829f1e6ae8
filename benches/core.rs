//! Criterion benchmarks of the Rust core, each next to its baseline in the same group.
//!
//! Run with `cargo bench --bench core`. Every case runs at 64 B, 1 KiB, 64 KiB and 1 MiB and
//! reports `Throughput::Bytes`:
//!
//! - `mask`: [`apply_mask`] against the byte loop [`apply_mask_fallback`] and a plain memcpy
//!   (`copy_from_slice`) of the same buffer. LLVM vectorizes `apply_mask_fallback`, so a third
//!   baseline, `byte_loop_novec`, does one volatile load and store per byte: the speed of a
//!   byte loop that is not vectorized.
//! - `utf8`: [`validate`] against `std::str::from_utf8`, on ASCII-heavy text (about 2% of the
//!   characters multibyte) and on pure ASCII.
//! - `parse`: [`Reader::feed`] of a stream of 16 binary frames of the given payload size (masked
//!   frames to a server, unmasked frames to a client) against a memcpy of the stream into a
//!   warm buffer, and `alloc_memcpy`: a copy of each payload into a new `Vec` (dropped at the
//!   next iteration), the least any reader that hands out owned messages does.
//! - `encode`: [`Writer::encode_message`] and [`Writer::write_message_into`] of one binary
//!   message on the client side (masked) against a memcpy of the payload.
//! - `deflate` / `inflate`: [`Deflater::compress`] and [`Inflater::decompress`] +
//!   [`Inflater::finish`] of JSON-like text at level 6, 15 window bits. `no_context_takeover`
//!   compresses one message from a fresh stream each time (the stream reset is part of the
//!   cost); `context_takeover` compresses successive distinct slices of a larger corpus in one
//!   stream, as a connection sending a series of JSON messages does.

use std::hint::black_box;
use std::ptr;
use std::time::Duration;

use _core::deflate::{Deflater, Inflater};
use _core::frames::{encode_frame, header_len, Opcode};
use _core::mask::{apply_mask, apply_mask_fallback, copy_masked};
use _core::reader::{Event, Reader};
use _core::utf8::validate;
use _core::writer::Writer;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};

/// Buffer and message sizes of every group.
const SIZES: [usize; 4] = [64, 1024, 64 * 1024, 1024 * 1024];

/// Number of frames in the stream fed to the reader.
const FRAMES_PER_STREAM: usize = 16;

/// A fixed masking key for the benches that do not draw one from the OS.
const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// Human-readable size for benchmark ids.
fn label(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{}MiB", s >> 20),
        s if s >= 1 << 10 => format!("{}KiB", s >> 10),
        s => format!("{s}B"),
    }
}

/// A small deterministic PRNG (xorshift64*): reproducible data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Pseudo-random bytes, for masking and framing (their content does not matter there).
fn random_bytes(len: usize) -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Exactly `len` bytes of text: printable ASCII, with about `multibyte_percent` percent of
/// the characters taken from a set of 2-, 3- and 4-byte UTF-8 characters.
fn text(len: usize, multibyte_percent: u64) -> Vec<u8> {
    const ASCII: &[u8] =
        b"abcdefghijklmnopqrstuvwxyz ABCDEFGHIJ 0123456789 ,.:;\"{}[]-_ etaoin shrdlu ";
    const WIDE: [&str; 6] = ["é", "ü", "ß", "€", "→", "𝄞"];
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut s = String::with_capacity(len + 4);
    while s.len() < len {
        if rng.below(100) < multibyte_percent {
            let c = WIDE[rng.below(WIDE.len() as u64) as usize];
            if s.len() + c.len() > len {
                break;
            }
            s.push_str(c);
        } else {
            s.push(char::from(ASCII[rng.below(ASCII.len() as u64) as usize]));
        }
    }
    while s.len() < len {
        s.push(' ');
    }
    let bytes = s.into_bytes();
    assert_eq!(bytes.len(), len);
    assert!(std::str::from_utf8(&bytes).is_ok());
    bytes
}

/// At least `len` bytes of JSON-like records (a market data / chat style feed), cut to `len`.
fn json(len: usize, seed: u64) -> Vec<u8> {
    const EVENTS: [&str; 5] = ["price_update", "trade", "order_book", "heartbeat", "chat"];
    const SYMBOLS: [&str; 6] = ["BTC-USD", "ETH-USD", "SOL-EUR", "AAPL", "MSFT", "EURUSD"];
    const WORDS: [&str; 10] = [
        "hello", "world", "latency", "socket", "frame", "message", "server", "client", "ok",
        "ready",
    ];
    let mut rng = Rng(seed | 1);
    let mut out = String::with_capacity(len + 512);
    let mut id = 100_000 + rng.below(100_000);
    while out.len() < len {
        id += 1 + rng.below(3);
        let words: Vec<&str> = (0..1 + rng.below(6))
            .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
            .collect();
        out.push_str(&format!(
            "{{\"id\":{id},\"event\":\"{}\",\"symbol\":\"{}\",\"price\":{}.{:02},\"qty\":{},\
             \"ts\":{},\"user\":\"user_{}\",\"text\":\"{}\",\"flags\":[{},{}]}}\n",
            EVENTS[rng.below(EVENTS.len() as u64) as usize],
            SYMBOLS[rng.below(SYMBOLS.len() as u64) as usize],
            rng.below(50_000),
            rng.below(100),
            rng.below(1000),
            1_700_000_000_000 + id * 37 + rng.below(1000),
            rng.below(5000),
            words.join(" "),
            rng.below(2) == 1,
            rng.below(2) == 1,
        ));
    }
    let mut bytes = out.into_bytes();
    bytes.truncate(len);
    bytes
}

fn unwrap_ok<T, E: std::fmt::Debug>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("benchmark setup failed: {e:?}"),
    }
}

/// Modest measurement times: the whole run takes a few minutes on 2 cores.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .nresamples(10_000)
}

/// A byte loop the compiler cannot vectorize: one volatile load and store per byte.
fn byte_loop_novec(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let p: *mut u8 = b;
        // SAFETY: `p` comes from a live `&mut u8`, so it is valid, aligned and unaliased for
        // this read and write.
        unsafe { ptr::write_volatile(p, ptr::read_volatile(p) ^ key[i % 4]) };
    }
}

fn bench_mask(c: &mut Criterion) {
    let mut group = c.benchmark_group("mask");
    for size in SIZES {
        let src = random_bytes(size);
        group.throughput(Throughput::Bytes(size as u64));
        let id = label(size);
        group.bench_function(BenchmarkId::new("apply_mask", &id), |b| {
            let mut buf = src.clone();
            b.iter(|| apply_mask(black_box(&mut buf[..]), black_box(KEY), 0));
        });
        group.bench_function(BenchmarkId::new("fallback_byte_loop", &id), |b| {
            let mut buf = src.clone();
            b.iter(|| apply_mask_fallback(black_box(&mut buf[..]), black_box(KEY), 0));
        });
        group.bench_function(BenchmarkId::new("byte_loop_novec", &id), |b| {
            let mut buf = src.clone();
            b.iter(|| byte_loop_novec(black_box(&mut buf[..]), black_box(KEY)));
        });
        group.bench_function(BenchmarkId::new("memcpy", &id), |b| {
            let mut dst = vec![0u8; size];
            b.iter(|| black_box(&mut dst[..]).copy_from_slice(black_box(&src[..])));
        });
        group.bench_function(BenchmarkId::new("copy_then_mask", &id), |b| {
            let mut dst = vec![0u8; size];
            b.iter(|| {
                let dst = black_box(&mut dst[..]);
                dst.copy_from_slice(black_box(&src[..]));
                apply_mask(dst, black_box(KEY), 0);
            });
        });
        group.bench_function(BenchmarkId::new("copy_masked", &id), |b| {
            let mut dst = vec![0u8; size];
            b.iter(|| {
                copy_masked(
                    black_box(&mut dst[..]),
                    black_box(&src[..]),
                    black_box(KEY),
                    0,
                )
            });
        });
    }
    group.finish();
}

fn bench_utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    for size in SIZES {
        let mixed = text(size, 2);
        let ascii = text(size, 0);
        group.throughput(Throughput::Bytes(size as u64));
        let id = label(size);
        for (name, data) in [("mixed", &mixed), ("ascii", &ascii)] {
            group.bench_function(BenchmarkId::new(format!("validate/{name}"), &id), |b| {
                b.iter(|| assert!(validate(black_box(&data[..]))));
            });
            group.bench_function(
                BenchmarkId::new(format!("std_from_utf8/{name}"), &id),
                |b| {
                    b.iter(|| assert!(std::str::from_utf8(black_box(&data[..])).is_ok()));
                },
            );
        }
    }
    group.finish();
}

/// A stream of [`FRAMES_PER_STREAM`] binary frames of `size` payload bytes each.
fn frame_stream(size: usize, masked: bool) -> Vec<u8> {
    let payload = random_bytes(size);
    let mut stream = Vec::new();
    for i in 0..FRAMES_PER_STREAM {
        let key = masked.then(|| [KEY[0], KEY[1], KEY[2], i as u8]);
        encode_frame(&mut stream, Opcode::Binary, true, false, &payload, key);
    }
    stream
}

fn bench_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    group.sampling_mode(SamplingMode::Flat);
    for size in SIZES {
        let masked = frame_stream(size, true);
        let unmasked = frame_stream(size, false);
        group.throughput(Throughput::Bytes(masked.len() as u64));
        let id = label(size);
        for (name, client, stream) in [
            ("server_masked", false, &masked),
            ("client_unmasked", true, &unmasked),
        ] {
            group.bench_function(BenchmarkId::new(format!("reader_feed/{name}"), &id), |b| {
                let mut reader = Reader::new(client, None, None);
                let mut events: Vec<Event> = Vec::with_capacity(FRAMES_PER_STREAM);
                b.iter(|| {
                    events.clear();
                    unwrap_ok(reader.feed(black_box(&stream[..]), &mut events));
                    assert_eq!(events.len(), FRAMES_PER_STREAM);
                    black_box(&events);
                });
            });
        }
        group.bench_function(BenchmarkId::new("memcpy", &id), |b| {
            let mut dst = vec![0u8; masked.len()];
            b.iter(|| black_box(&mut dst[..]).copy_from_slice(black_box(&masked[..])));
        });
        group.bench_function(BenchmarkId::new("alloc_memcpy", &id), |b| {
            let frame = header_len(size, true) + size;
            let mut messages: Vec<Vec<u8>> = Vec::with_capacity(FRAMES_PER_STREAM);
            b.iter(|| {
                messages.clear();
                for f in black_box(&masked[..]).chunks_exact(frame) {
                    messages.push(f[frame - size..].to_vec());
                }
                black_box(&messages);
            });
        });
    }
    group.finish();
}

fn bench_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for size in SIZES {
        let payload = random_bytes(size);
        group.throughput(Throughput::Bytes(size as u64));
        let id = label(size);
        group.bench_function(BenchmarkId::new("encode_message/client", &id), |b| {
            let mut writer = Writer::new(true, None, 0);
            let mut out = Vec::new();
            b.iter(|| {
                out.clear();
                unwrap_ok(writer.encode_message(
                    Opcode::Binary,
                    black_box(&payload[..]),
                    0,
                    true,
                    &mut out,
                ));
                black_box(&out);
            });
        });
        group.bench_function(BenchmarkId::new("write_message_into/client", &id), |b| {
            let mut writer = Writer::new(true, None, 0);
            let mut buf = vec![0u8; writer.plain_frame_len(size)];
            b.iter(|| {
                unwrap_ok(writer.write_message_into(
                    black_box(&mut buf[..]),
                    Opcode::Binary,
                    black_box(&payload[..]),
                    true,
                ));
            });
        });
        group.bench_function(BenchmarkId::new("memcpy", &id), |b| {
            let mut dst = vec![0u8; size];
            b.iter(|| black_box(&mut dst[..]).copy_from_slice(black_box(&payload[..])));
        });
    }
    group.finish();
}

fn bench_deflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("deflate");
    group.sampling_mode(SamplingMode::Flat);
    for size in SIZES {
        let message = json(size, 1);
        group.throughput(Throughput::Bytes(size as u64));
        let id = label(size);
        group.bench_function(BenchmarkId::new("compress/no_context_takeover", &id), |b| {
            let mut deflater = unwrap_ok(Deflater::new(6, 15, true));
            let mut out = Vec::new();
            b.iter(|| {
                out.clear();
                unwrap_ok(deflater.compress(black_box(&message[..]), &mut out));
                black_box(&out);
            });
        });
        // Successive distinct messages cut from a corpus much larger than the 32 KiB window.
        let corpus = json((8 << 20).max(16 * size), 2);
        let count = corpus.len() / size;
        group.bench_function(BenchmarkId::new("compress/context_takeover", &id), |b| {
            let mut deflater = unwrap_ok(Deflater::new(6, 15, false));
            let mut out = Vec::new();
            let mut next = 0;
            b.iter(|| {
                let chunk = &corpus[next * size..(next + 1) * size];
                next = (next + 1) % count;
                out.clear();
                unwrap_ok(deflater.compress(black_box(chunk), &mut out));
                black_box(&out);
            });
        });
    }
    group.finish();
}

fn bench_inflate(c: &mut Criterion) {
    let mut group = c.benchmark_group("inflate");
    group.sampling_mode(SamplingMode::Flat);
    for size in SIZES {
        let message = json(size, 1);
        let mut compressed = Vec::new();
        unwrap_ok(unwrap_ok(Deflater::new(6, 15, true)).compress(&message, &mut compressed));
        eprintln!(
            "inflate/{}: {} bytes of JSON-like text compress to {} ({:.1}x)",
            label(size),
            size,
            compressed.len(),
            size as f64 / compressed.len() as f64
        );
        group.throughput(Throughput::Bytes(size as u64));
        let id = label(size);
        group.bench_function(
            BenchmarkId::new("decompress_finish/no_context_takeover", &id),
            |b| {
                let mut inflater = unwrap_ok(Inflater::new(15, true));
                let mut out = Vec::new();
                b.iter(|| {
                    out.clear();
                    unwrap_ok(inflater.decompress(
                        black_box(&compressed[..]),
                        &mut out,
                        usize::MAX,
                    ));
                    unwrap_ok(inflater.finish(&mut out, usize::MAX));
                    assert_eq!(out.len(), size);
                    black_box(&out);
                });
            },
        );
    }
    group.finish();
}

/// Compress successive `size`-byte messages cut from `corpus`, one per iteration, compacting
/// the compressor first when `compact`.
fn compress_stream(
    b: &mut criterion::Bencher<'_>,
    mut deflater: Deflater,
    corpus: &[u8],
    size: usize,
    compact: bool,
) {
    let count = corpus.len() / size;
    let mut out = Vec::new();
    let mut next = 0;
    b.iter(|| {
        if compact {
            deflater.compact();
        }
        let chunk = &corpus[next * size..(next + 1) * size];
        next = (next + 1) % count;
        out.clear();
        unwrap_ok(deflater.compress(black_box(chunk), &mut out));
        black_box(&out);
    });
}

/// A stream of compressed `size`-byte messages from `corpus` with `bits`-bit windows and
/// context takeover, each referring back into the previous ones.
fn compressed_stream(corpus: &[u8], size: usize, bits: u8) -> Vec<Vec<u8>> {
    let mut deflater = unwrap_ok(Deflater::new(6, bits, false));
    (0..(corpus.len() / size).min(4096))
        .map(|i| {
            let mut out = Vec::new();
            unwrap_ok(deflater.compress(&corpus[i * size..(i + 1) * size], &mut out));
            out
        })
        .collect()
}

/// Decompress `messages` in order, from the start with a new inflater each time they run
/// out, compacting the inflater before each message when `compact`.
fn decompress_stream(
    b: &mut criterion::Bencher<'_>,
    messages: &[Vec<u8>],
    new_inflater: impl Fn() -> Inflater,
    compact: bool,
) {
    b.iter_custom(|iters| {
        let mut total = std::time::Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let mut inflater = new_inflater();
            let mut out = Vec::new();
            for message in messages {
                if done == iters {
                    break;
                }
                let start = std::time::Instant::now();
                if compact {
                    inflater.compact();
                }
                out.clear();
                unwrap_ok(inflater.decompress(black_box(message), &mut out, usize::MAX));
                unwrap_ok(inflater.finish(&mut out, usize::MAX));
                total += start.elapsed();
                done += 1;
            }
        }
        total
    });
}

/// The price of [`Deflater::compact`] / [`Inflater::compact`]: the first message after a
/// compaction rebuilds the zlib state from a full 32 KiB window of history.
fn bench_compact(c: &mut Criterion) {
    let mut group = c.benchmark_group("compact");
    group.sampling_mode(SamplingMode::Flat);
    let size = 1024;
    let corpus = json(8 << 20, 3);
    group.throughput(Throughput::Bytes(size as u64));
    for compact in [false, true] {
        let name = if compact {
            "compact_then_compress"
        } else {
            "compress"
        };
        group.bench_function(BenchmarkId::new(name, "1KiB"), |b| {
            let deflater = unwrap_ok(Deflater::new(6, 15, false));
            compress_stream(b, deflater, &corpus, size, compact);
        });
    }
    let messages = compressed_stream(&corpus, size, 15);
    for compact in [false, true] {
        let name = if compact {
            "compact_then_decompress"
        } else {
            "decompress"
        };
        group.bench_function(BenchmarkId::new(name, "1KiB"), |b| {
            decompress_stream(
                b,
                &messages,
                || unwrap_ok(Inflater::new(15, false)),
                compact,
            );
        });
    }
    group.finish();
}

/// The price of the lean setting: 1 KiB messages with 12-bit windows, the compressor kept
/// between messages (the default), taken from the thread's pool and primed with the 4 KiB
/// history per message (`pooled`), or taken from the pool without context takeover.
fn bench_pooled(c: &mut Criterion) {
    let mut group = c.benchmark_group("pooled");
    group.sampling_mode(SamplingMode::Flat);
    let size = 1024;
    let corpus = json(8 << 20, 4);
    group.throughput(Throughput::Bytes(size as u64));
    for (name, no_context_takeover, pooled) in [
        ("compress/kept", false, false),
        ("compress/pooled", false, true),
        ("compress/no_context_takeover", true, false),
    ] {
        group.bench_function(BenchmarkId::new(name, "1KiB-12bits"), |b| {
            let deflater = unwrap_ok(Deflater::new(6, 12, no_context_takeover)).pooled(pooled);
            compress_stream(b, deflater, &corpus, size, false);
        });
    }
    let messages = compressed_stream(&corpus, size, 12);
    for (name, pooled) in [("decompress/kept", false), ("decompress/pooled", true)] {
        group.bench_function(BenchmarkId::new(name, "1KiB-12bits"), |b| {
            let new_inflater = || unwrap_ok(Inflater::new(12, false)).pooled(pooled);
            decompress_stream(b, &messages, new_inflater, false);
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_mask, bench_utf8, bench_parse, bench_encode, bench_deflate, bench_inflate,
        bench_compact, bench_pooled
}
criterion_main!(benches);
