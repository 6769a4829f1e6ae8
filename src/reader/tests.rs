//! Tests of the reader: every rule of RFC 6455 §5 that it enforces, with the close code it
//! gives, and feeding at every split point.

use super::*;
use crate::deflate::{Deflater, Inflater};
use crate::frames::encode_frame;
use proptest::prelude::*;

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A frame as a client sends it (masked), for a server-side reader.
fn cframe(opcode: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, opcode, fin, false, payload, Some(KEY));
    out
}

/// A frame as a server sends it (unmasked), for a client-side reader.
fn sframe(opcode: Opcode, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, opcode, fin, false, payload, None);
    out
}

fn feed(reader: &mut Reader, data: &[u8]) -> (Vec<Event>, Option<Error>) {
    let mut events = Vec::new();
    let err = reader.feed(data, &mut events).err();
    (events, err)
}

fn server() -> Reader {
    Reader::new(false, Some(1 << 20), None)
}

fn client() -> Reader {
    Reader::new(true, Some(1 << 20), None)
}

/// Feed `stream` to fresh readers split at every pair of points, and byte by byte; all must
/// give `expected` (events, then maybe an error code).
fn check_splits(make: impl Fn() -> Reader, stream: &[u8], expected: &(Vec<Event>, Option<u16>)) {
    let run = |pieces: &[&[u8]]| {
        let mut reader = make();
        let mut events = Vec::new();
        let mut code = None;
        for piece in pieces {
            if let Err(e) = reader.feed(piece, &mut events) {
                code = Some(e.close_code());
                break;
            }
        }
        (events, code)
    };
    assert_eq!(&run(&[stream]), expected, "whole");
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(&run(&bytes), expected, "byte by byte");
    for i in 0..=stream.len() {
        assert_eq!(
            &run(&[&stream[..i], &stream[i..]]),
            expected,
            "split at {i}"
        );
    }
    if stream.len() <= 64 {
        for i in 0..=stream.len() {
            for j in i..=stream.len() {
                let got = run(&[&stream[..i], &stream[i..j], &stream[j..]]);
                assert_eq!(&got, expected, "split at {i} and {j}");
            }
        }
    }
}

#[test]
fn multi_frame_stream_at_every_split() {
    let mut stream = Vec::new();
    stream.extend(cframe(Opcode::Text, true, "Hello".as_bytes()));
    stream.extend(cframe(Opcode::Text, false, "κό".as_bytes()));
    stream.extend(cframe(Opcode::Ping, true, b"p"));
    stream.extend(cframe(Opcode::Continuation, false, b""));
    stream.extend(cframe(Opcode::Continuation, true, "σμε".as_bytes()));
    stream.extend(cframe(Opcode::Binary, true, &[0u8; 300]));
    stream.extend(cframe(Opcode::Pong, true, b""));
    stream.extend(cframe(Opcode::Close, true, b"\x03\xe8done"));
    stream.extend(cframe(Opcode::Text, true, b"ignored after close"));
    let expected = (
        vec![
            Event::Text("Hello".into()),
            Event::Ping(b"p".to_vec()),
            Event::Text("κόσμε".into()),
            Event::Binary(vec![0; 300]),
            Event::Pong(Vec::new()),
            Event::Close {
                code: 1000,
                reason: "done".into(),
            },
        ],
        None,
    );
    check_splits(server, &stream, &expected);
}

#[test]
fn client_side_stream_at_every_split() {
    let mut stream = Vec::new();
    stream.extend(sframe(Opcode::Binary, false, b"ab"));
    stream.extend(sframe(Opcode::Pong, true, b"xyz"));
    stream.extend(sframe(Opcode::Continuation, true, b"cd"));
    stream.extend(sframe(Opcode::Close, true, b""));
    let expected = (
        vec![
            Event::Pong(b"xyz".to_vec()),
            Event::Binary(b"abcd".to_vec()),
            Event::Close {
                code: 1005,
                reason: String::new(),
            },
        ],
        None,
    );
    check_splits(client, &stream, &expected);
}

#[test]
fn edge_lengths() {
    for len in [0usize, 1, 125, 126, 127, 65535, 65536, 100_000] {
        let payload: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let mut r = server();
        let (events, err) = feed(&mut r, &cframe(Opcode::Binary, true, &payload));
        assert_eq!(
            (events, err),
            (vec![Event::Binary(payload.clone())], None),
            "len {len}"
        );
        let mut r = client();
        let (events, err) = feed(&mut r, &sframe(Opcode::Binary, true, &payload));
        assert_eq!(
            (events, err),
            (vec![Event::Binary(payload)], None),
            "len {len}"
        );
    }
}

fn error_code(make: impl Fn() -> Reader, stream: &[u8]) -> u16 {
    let mut r = make();
    let (_, err) = feed(&mut r, stream);
    assert!(r.is_failed());
    err.expect("an error").close_code()
}

#[test]
fn masking_rules() {
    assert_eq!(error_code(server, &sframe(Opcode::Text, true, b"x")), 1002);
    assert_eq!(error_code(client, &cframe(Opcode::Text, true, b"x")), 1002);
}

#[test]
fn reserved_opcodes_and_bits() {
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        assert_eq!(error_code(client, &[0x80 | op, 0]), 1002);
    }
    for bits in [0x40u8, 0x20, 0x10] {
        assert_eq!(
            error_code(client, &[0x81 | bits, 0]),
            1002,
            "bits {bits:#x}"
        );
    }
}

#[test]
fn rsv1_only_with_deflate_and_first_frame() {
    let deflating = || Reader::new(true, None, Some(Inflater::new(15, false).unwrap()));
    // RSV1 on a ping, or on a continuation frame, even with deflate.
    assert_eq!(error_code(deflating, &[0xc9, 0]), 1002);
    assert_eq!(error_code(deflating, &[0x02, 0x00, 0xc0, 0x00]), 1002);
    // RSV2 and RSV3 are never allowed.
    assert_eq!(error_code(deflating, &[0xa1, 0]), 1002);
    assert_eq!(error_code(deflating, &[0x91, 0]), 1002);
    // RSV1 on a text frame: fine with deflate, 1002 without.
    let hello = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let mut r = deflating();
    assert_eq!(
        feed(&mut r, &hello),
        (vec![Event::Text("Hello".into())], None)
    );
    assert_eq!(error_code(client, &hello), 1002);
}

#[test]
fn control_frame_rules() {
    // Fragmented ping; ping of 126 bytes (16-bit length form).
    assert_eq!(error_code(client, &[0x09, 0x00]), 1002);
    assert_eq!(error_code(client, &[0x89, 126, 0, 126]), 1002);
    // 125 bytes is fine.
    let mut r = client();
    let (events, err) = feed(&mut r, &sframe(Opcode::Ping, true, &[1; 125]));
    assert_eq!((events, err), (vec![Event::Ping(vec![1; 125])], None));
}

#[test]
fn continuation_rules() {
    assert_eq!(
        error_code(client, &sframe(Opcode::Continuation, true, b"x")),
        1002
    );
    let mut stream = sframe(Opcode::Text, false, b"a");
    stream.extend(sframe(Opcode::Binary, true, b"b"));
    assert_eq!(error_code(client, &stream), 1002);
    let mut stream = sframe(Opcode::Text, false, b"a");
    stream.extend(sframe(Opcode::Text, true, b"b"));
    assert_eq!(error_code(client, &stream), 1002);
}

#[test]
fn sixty_three_bit_length() {
    let mut frame = vec![0x82, 127];
    frame.extend_from_slice(&(1u64 << 63).to_be_bytes());
    assert_eq!(error_code(client, &frame), 1002);
    // 2^63 - 1 is a valid length, far over max_size: 1009 from the header alone.
    let mut frame = vec![0x82, 127];
    frame.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
    assert_eq!(error_code(client, &frame), 1009);
    let mut no_limit = Reader::new(true, None, None);
    let (_, err) = feed(&mut no_limit, &frame);
    assert_eq!(
        err, None,
        "no limit: the payload is streamed, nothing reserved past 16 MiB"
    );
    assert!(no_limit.message.as_ref().unwrap().data.capacity() <= MAX_UPFRONT_RESERVE);
}

#[test]
fn max_size_from_header_before_payload() {
    let make = || Reader::new(true, Some(10), None);
    // The header alone announces 11 bytes: rejected before any payload arrives.
    assert_eq!(error_code(make, &[0x82, 11]), 1009);
    let mut r = make();
    assert_eq!(
        feed(&mut r, &sframe(Opcode::Binary, true, &[0; 10])).1,
        None
    );
    // Fragments add up: 6 + 5 > 10.
    let mut stream = sframe(Opcode::Binary, false, &[0; 6]);
    stream.extend_from_slice(&[0x80, 5]);
    assert_eq!(error_code(make, &stream), 1009);
}

#[test]
fn max_size_after_decompression() {
    let mut def = Deflater::new(6, 15, false).unwrap();
    let mut compressed = Vec::new();
    def.compress(&[b'a'; 5000], &mut compressed).unwrap();
    let mut frame = Vec::new();
    encode_frame(&mut frame, Opcode::Binary, true, true, &compressed, None);
    let make =
        |limit| move || Reader::new(true, Some(limit), Some(Inflater::new(15, false).unwrap()));
    assert_eq!(error_code(make(4999), &frame), 1009);
    let mut r = make(5000)();
    assert_eq!(
        feed(&mut r, &frame),
        (vec![Event::Binary(vec![b'a'; 5000])], None)
    );
}

#[test]
fn compressed_fragmented_masked_at_every_split() {
    let text = "Hello, Hello, κόσμε! ".repeat(3);
    let mut def = Deflater::new(6, 15, false).unwrap();
    let mut compressed = Vec::new();
    def.compress(text.as_bytes(), &mut compressed).unwrap();
    let (a, b) = compressed.split_at(compressed.len() / 2);
    let mut stream = Vec::new();
    encode_frame(&mut stream, Opcode::Text, false, true, a, Some(KEY));
    encode_frame(&mut stream, Opcode::Ping, true, false, b"", Some(KEY));
    encode_frame(&mut stream, Opcode::Continuation, true, false, b, Some(KEY));
    let expected = (
        vec![Event::Ping(Vec::new()), Event::Text(text.clone())],
        None,
    );
    check_splits(
        || Reader::new(false, Some(1000), Some(Inflater::new(15, false).unwrap())),
        &stream,
        &expected,
    );
}

#[test]
fn compact_between_messages_only() {
    let mut def = Deflater::new(6, 15, false).unwrap();
    let mut r = Reader::new(true, None, Some(Inflater::new(15, false).unwrap()));
    let text = "Hello, Hello, Hello".repeat(10);
    let mut compressed = Vec::new();
    def.compress(text.as_bytes(), &mut compressed).unwrap();
    let (a, b) = compressed.split_at(compressed.len() / 2);
    let mut first = Vec::new();
    encode_frame(&mut first, Opcode::Text, false, true, a, None);
    assert_eq!(feed(&mut r, &first), (vec![], None));
    // Mid-message: nothing is freed.
    assert_eq!(r.compact(), 0);
    assert!(r.inflater_allocated() && r.in_message());
    let mut rest = Vec::new();
    encode_frame(&mut rest, Opcode::Continuation, true, false, b, None);
    let (events, err) = feed(&mut r, &rest);
    assert_eq!((events, err), (vec![Event::Text(text.clone())], None));
    r.recycle(text.clone().into_bytes());
    // The spare buffer and the decompression state (counted as its 32 KiB window).
    assert!(r.compact() >= 32768 + text.len());
    assert_eq!(r.compact(), 0);
    assert!(!r.inflater_allocated());
    assert_eq!(r.spare.capacity(), 0);
    // The next message refers back into the previous one and still decodes.
    let mut again = Vec::new();
    def.compress(text.as_bytes(), &mut again).unwrap();
    assert!(again.len() < compressed.len());
    let mut frame = Vec::new();
    encode_frame(&mut frame, Opcode::Text, true, true, &again, None);
    assert_eq!(feed(&mut r, &frame), (vec![Event::Text(text)], None));
}

#[test]
fn uncompressed_message_with_deflate_negotiated() {
    let mut r = Reader::new(true, None, Some(Inflater::new(15, false).unwrap()));
    assert_eq!(
        feed(&mut r, &sframe(Opcode::Text, true, b"plain")),
        (vec![Event::Text("plain".into())], None)
    );
}

#[test]
fn invalid_utf8_fails_fast() {
    // The first fragment is valid; the second holds an impossible sequence. The error comes
    // with the second fragment, before the message ends.
    let mut stream = sframe(Opcode::Text, false, "κόσμε".as_bytes());
    stream.extend(sframe(
        Opcode::Continuation,
        false,
        b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80",
    ));
    assert_eq!(error_code(client, &stream), 1007);
    // Inside a single frame, as soon as the bad byte arrives.
    let frame = sframe(Opcode::Text, true, b"abc\xffdef");
    let mut r = client();
    let (_, err) = feed(&mut r, &frame[..6]);
    assert_eq!(err.map(|e| e.close_code()), Some(1007));
    // Incomplete at the end of the message.
    assert_eq!(
        error_code(client, &sframe(Opcode::Text, true, b"abc\xe2\x82")),
        1007
    );
    // A code point split between fragments is fine.
    let mut stream = sframe(Opcode::Text, false, b"\xe2\x82");
    stream.extend(sframe(Opcode::Continuation, true, b"\xac"));
    let mut r = client();
    assert_eq!(feed(&mut r, &stream), (vec![Event::Text("€".into())], None));
}

#[test]
fn close_payload_rules() {
    assert_eq!(
        error_code(client, &sframe(Opcode::Close, true, b"\x03")),
        1002
    );
    assert_eq!(
        error_code(client, &sframe(Opcode::Close, true, b"\x03\xed")),
        1002
    ); // 1005
    assert_eq!(
        error_code(client, &sframe(Opcode::Close, true, b"\x03\xe8\xff")),
        1007
    );
    for code in [999u16, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        let frame = sframe(Opcode::Close, true, &code.to_be_bytes());
        assert_eq!(error_code(client, &frame), 1002, "code {code}");
    }
    for code in [1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
        let mut r = client();
        let (events, err) = feed(&mut r, &sframe(Opcode::Close, true, &code.to_be_bytes()));
        assert_eq!(
            (events, err),
            (
                vec![Event::Close {
                    code,
                    reason: String::new()
                }],
                None
            )
        );
        assert!(r.is_closed());
    }
}

#[test]
fn events_before_an_error_are_delivered() {
    let mut stream = sframe(Opcode::Text, true, b"ok");
    stream.extend([0x83, 0]);
    let mut r = client();
    let (events, err) = feed(&mut r, &stream);
    assert_eq!(events, vec![Event::Text("ok".into())]);
    assert_eq!(err.map(|e| e.close_code()), Some(1002));
    // Failed readers ignore further input.
    assert_eq!(
        feed(&mut r, &sframe(Opcode::Text, true, b"x")),
        (vec![], None)
    );
}

#[test]
fn in_message_tracks_fragments() {
    let mut r = client();
    feed(&mut r, &sframe(Opcode::Text, false, b"a"));
    assert!(r.in_message());
    feed(&mut r, &sframe(Opcode::Continuation, true, b"b"));
    assert!(!r.in_message());
}

// ------------------------------------------------------------------------------------------
// Fragments streamed frame by frame, and the fragment limit

fn fragment(data: &[u8], text: bool, fin: bool) -> Event {
    Event::Fragment {
        data: data.to_vec(),
        text,
        fin,
    }
}

fn streaming_server() -> Reader {
    server().stream_fragments(true)
}

#[test]
fn streamed_fragments_at_every_split() {
    // "café €" with the "é" split across the first two frames and the "€" across the last
    // two; a ping in the middle is delivered at once; then an unfragmented message, whole.
    let text = "café €".as_bytes();
    let mut stream = cframe(Opcode::Text, false, &text[..4]);
    stream.extend(cframe(Opcode::Continuation, false, &text[4..7]));
    stream.extend(cframe(Opcode::Ping, true, b"p"));
    stream.extend(cframe(Opcode::Continuation, false, b""));
    stream.extend(cframe(Opcode::Continuation, true, &text[7..]));
    stream.extend(cframe(Opcode::Binary, true, b"whole"));
    stream.extend(cframe(Opcode::Binary, false, b"ab"));
    stream.extend(cframe(Opcode::Continuation, true, b"c"));
    let expected = (
        vec![
            fragment(&text[..4], true, false),
            fragment(&text[4..7], true, false),
            Event::Ping(b"p".to_vec()),
            fragment(b"", true, false),
            fragment(&text[7..], true, true),
            Event::Binary(b"whole".to_vec()),
            fragment(b"ab", false, false),
            fragment(b"c", false, true),
        ],
        None,
    );
    check_splits(streaming_server, &stream, &expected);
    // The same stream assembled, as by default.
    let assembled = (
        vec![
            Event::Ping(b"p".to_vec()),
            Event::Text("café €".into()),
            Event::Binary(b"whole".to_vec()),
            Event::Binary(b"abc".to_vec()),
        ],
        None,
    );
    check_splits(server, &stream, &assembled);
}

#[test]
fn a_fragment_comes_before_the_final_frame() {
    let mut r = client().stream_fragments(true);
    assert_eq!(
        feed(&mut r, &sframe(Opcode::Binary, false, b"first")),
        (vec![fragment(b"first", false, false)], None)
    );
    assert!(r.in_message());
    // The glue hands the buffer back; the next fragment reuses it.
    r.recycle(Vec::with_capacity(64));
    assert_eq!(
        feed(&mut r, &sframe(Opcode::Continuation, true, b"last")),
        (vec![fragment(b"last", false, true)], None)
    );
    assert!(!r.in_message());
}

#[test]
fn streamed_text_is_validated_across_fragments() {
    // A valid start is delivered; the fragment that breaks UTF-8 fails the connection.
    let mut stream = cframe(Opcode::Text, false, b"ok \xe2\x82");
    stream.extend(cframe(Opcode::Continuation, true, b"\x41"));
    let mut r = streaming_server();
    let (events, err) = feed(&mut r, &stream);
    assert_eq!(events, vec![fragment(b"ok \xe2\x82", true, false)]);
    assert_eq!(err.map(|e| e.close_code()), Some(1007));
    // A message that ends inside a character.
    let mut stream = cframe(Opcode::Text, false, b"\xe2\x82");
    stream.extend(cframe(Opcode::Continuation, true, b""));
    assert_eq!(error_code(streaming_server, &stream), 1007);
}

#[test]
fn streamed_messages_count_fragments_against_max_size() {
    let make = || Reader::new(true, Some(10), None).stream_fragments(true);
    let mut r = make();
    let (events, err) = feed(&mut r, &sframe(Opcode::Binary, false, &[1; 6]));
    assert_eq!((events, err), (vec![fragment(&[1; 6], false, false)], None));
    // 6 delivered + 5 announced > 10: rejected from the header.
    assert_eq!(
        feed(&mut r, &[0x80, 5]).1,
        Some(Error::TooBig { limit: 10 })
    );
    // 6 + 4 fits.
    let mut stream = sframe(Opcode::Binary, false, &[1; 6]);
    stream.extend(sframe(Opcode::Continuation, true, &[2; 4]));
    let expected = (
        vec![
            fragment(&[1; 6], false, false),
            fragment(&[2; 4], false, true),
        ],
        None,
    );
    check_splits(make, &stream, &expected);
}

#[test]
fn max_fragment_size_from_header_before_payload() {
    for stream_fragments in [false, true] {
        let make = || {
            Reader::new(true, Some(12), None)
                .max_fragment_size(Some(4))
                .stream_fragments(stream_fragments)
        };
        // A header announcing 5 bytes: rejected before any payload, fragmented or not.
        let mut r = make();
        assert_eq!(
            feed(&mut r, &[0x82, 5]).1,
            Some(Error::FrameTooBig { limit: 4 })
        );
        assert_eq!(error_code(make, &[0x02, 5]), 1009);
        // Three frames of 4: 12 bytes, within both limits.
        let mut stream = sframe(Opcode::Text, false, b"abcd");
        stream.extend(sframe(Opcode::Continuation, false, b"efgh"));
        stream.extend(sframe(Opcode::Continuation, true, b"ijkl"));
        let mut r = make();
        let (events, err) = feed(&mut r, &stream);
        assert_eq!(err, None);
        assert_eq!(events.len(), if stream_fragments { 3 } else { 1 });
        // A fourth frame goes past the message limit.
        stream.truncate(stream.len() - 6);
        stream.extend(sframe(Opcode::Continuation, false, b"ijkl"));
        stream.extend(sframe(Opcode::Continuation, true, b"m"));
        let mut r = make();
        assert_eq!(feed(&mut r, &stream).1, Some(Error::TooBig { limit: 12 }));
        // Control frames are not data frames: the fragment limit leaves them alone.
        let mut r = make();
        let (events, err) = feed(&mut r, &sframe(Opcode::Ping, true, b"12345"));
        assert_eq!((events, err), (vec![Event::Ping(b"12345".to_vec())], None));
    }
}

/// `data` compressed as one message and split into `parts` frames (the first with RSV1).
fn compressed_frames(def: &mut Deflater, data: &[u8], parts: usize) -> Vec<u8> {
    let mut compressed = Vec::new();
    def.compress(data, &mut compressed).unwrap();
    let size = compressed.len().div_ceil(parts).max(1);
    let chunks: Vec<&[u8]> = compressed.chunks(size).collect();
    let mut stream = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 {
            Opcode::Binary
        } else {
            Opcode::Continuation
        };
        let fin = i + 1 == chunks.len();
        encode_frame(&mut stream, opcode, fin, i == 0, chunk, None);
    }
    stream
}

#[test]
fn max_fragment_size_after_decompression() {
    for stream_fragments in [false, true] {
        let make = |fragment_limit| {
            move || {
                Reader::new(true, Some(1 << 20), Some(Inflater::new(15, false).unwrap()))
                    .max_fragment_size(Some(fragment_limit))
                    .stream_fragments(stream_fragments)
            }
        };
        // One small frame that inflates to 5000 bytes.
        let mut def = Deflater::new(6, 15, false).unwrap();
        let frame = compressed_frames(&mut def, &[b'a'; 5000], 1);
        assert!(frame.len() < 100);
        let mut r = make(4999)();
        assert_eq!(
            feed(&mut r, &frame).1,
            Some(Error::FrameTooBig { limit: 4999 })
        );
        let mut r = make(5000)();
        assert_eq!(
            feed(&mut r, &frame),
            (vec![Event::Binary(vec![b'a'; 5000])], None)
        );
        // Random data in three frames: each inflates to about a third of it.
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let data: Vec<u8> = (0..30_000)
            .map(|_| {
                // xorshift64: incompressible bytes.
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        let mut def = Deflater::new(6, 15, false).unwrap();
        let stream = compressed_frames(&mut def, &data, 3);
        let mut r = make(12_000)();
        let (events, err) = feed(&mut r, &stream);
        assert_eq!(err, None);
        let joined: Vec<u8> = events
            .into_iter()
            .flat_map(|event| match event {
                Event::Fragment { data, .. } | Event::Binary(data) => data,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(joined, data);
        assert_eq!(
            error_code(make(8_000), &stream),
            1009,
            "a third of 30,000 bytes is more than 8,000"
        );
    }
}

#[test]
fn streamed_compressed_message_keeps_the_context() {
    // Context takeover across a streamed message, then compaction: the next message refers
    // back into the fragments and still decodes.
    let mut def = Deflater::new(6, 15, false).unwrap();
    let mut r =
        Reader::new(true, None, Some(Inflater::new(15, false).unwrap())).stream_fragments(true);
    let text = "Hello, κόσμε, hello! ".repeat(40);
    let stream = compressed_frames(&mut def, text.as_bytes(), 4);
    let (events, err) = feed(&mut r, &stream);
    assert_eq!(err, None);
    assert!(events.len() > 1);
    let mut joined = Vec::new();
    for event in events {
        let Event::Fragment { data, text, .. } = event else {
            panic!("not a fragment");
        };
        assert!(!text);
        joined.extend(data);
    }
    assert_eq!(joined, text.as_bytes());
    assert!(r.compact() > 0);
    assert!(!r.inflater_allocated());
    let again = compressed_frames(&mut def, text.as_bytes(), 1);
    assert!(again.len() < 40, "refers back: {} bytes", again.len());
    assert_eq!(
        feed(&mut r, &again),
        (vec![Event::Binary(text.into_bytes())], None)
    );
}

/// A frame description for property tests.
#[derive(Debug, Clone)]
struct Msg {
    text: bool,
    data: Vec<u8>,
    fragment: usize,
}

fn msg_strategy() -> impl Strategy<Value = Msg> {
    (
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..300),
        0usize..40,
    )
        .prop_map(|(text, data, fragment)| {
            let data = if text {
                String::from_utf8_lossy(&data).into_owned().into_bytes()
            } else {
                data
            };
            Msg {
                text,
                data,
                fragment,
            }
        })
}

// ------------------------------------------------------------------------------------------
// Payloads the caller receives into its own buffer (begin_direct)

/// Receive the rest of a large binary payload into a buffer of the caller's, in pieces of
/// `piece` bytes, as the Python glue does; then `rest` must hold a text frame "after".
fn finish_direct(reader: &mut Reader, mut rest: &[u8], piece: usize) -> Vec<u8> {
    let (len, already) = reader.begin_direct(1000).expect("a direct payload");
    let mut out = already.to_vec();
    assert_eq!(reader.direct_remaining(), Some(len - out.len()));
    assert!(reader.in_message());
    assert_eq!(
        reader.compact(),
        0,
        "nothing is freed in the middle of a message"
    );
    while out.len() < len {
        let n = piece.min(len - out.len());
        let start = out.len();
        assert_eq!(reader.direct_progress(), Some((start, len)));
        assert_eq!(reader.direct_next(n), Ok(start..start + n));
        out.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        let complete = reader.direct_received(&mut out[start..]).unwrap();
        assert_eq!(complete, out.len() == len);
    }
    assert_eq!(reader.direct_remaining(), None);
    assert_eq!(reader.direct_progress(), None);
    assert!(!reader.in_message());
    assert_eq!(
        feed(reader, rest),
        (vec![Event::Text("after".into())], None)
    );
    out
}

#[test]
fn direct_payload_masked_and_unmasked_at_any_phase() {
    let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7 + 1) as u8).collect();
    for client_side in [false, true] {
        let make = if client_side { client } else { server };
        let frame = if client_side { sframe } else { cframe };
        let mut stream = frame(Opcode::Binary, true, &payload);
        let header = stream.len() - payload.len();
        stream.extend(frame(Opcode::Text, true, b"after"));
        for piece in [1, 3, 1000, 5000] {
            // Stopped by feed_until_direct right after the header.
            let mut reader = make();
            let used = reader
                .feed_until_direct(&stream, &mut Vec::new(), 1000)
                .unwrap();
            assert_eq!(used, header);
            assert_eq!(finish_direct(&mut reader, &stream[used..], piece), payload);
            // Or part of the payload already fed, at every mask phase.
            for prefix in [header, header + 1, header + 2, header + 3, 2000, 4001] {
                let mut reader = make();
                reader.feed(&stream[..prefix], &mut Vec::new()).unwrap();
                let out = finish_direct(&mut reader, &stream[prefix..], piece);
                assert_eq!(out, payload, "prefix {prefix} piece {piece}");
            }
        }
    }
}

#[test]
fn feed_until_direct_stops_after_the_header() {
    let payload = vec![9u8; 3000];
    let mut stream = cframe(Opcode::Text, true, b"before");
    let first = stream.len();
    stream.extend(cframe(Opcode::Binary, true, &payload));
    let mut reader = server();
    let mut events = Vec::new();
    let used = reader
        .feed_until_direct(&stream, &mut events, 1000)
        .unwrap();
    assert_eq!(events, vec![Event::Text("before".into())]);
    assert_eq!(
        used,
        first + 8,
        "a 2-byte header, a 16-bit length and a key"
    );
    // Without the option it never stops.
    let mut reader = server();
    assert_eq!(
        reader
            .feed_until_direct(&stream, &mut events, usize::MAX)
            .unwrap(),
        stream.len()
    );
    // A received prefix is handed over unmasked.
    let mut reader = server();
    reader
        .feed(&stream[..first + 8 + 10], &mut Vec::new())
        .unwrap();
    let (len, already) = reader.begin_direct(1000).unwrap();
    assert_eq!((len, already), (3000, &payload[..10]));
}

#[test]
fn direct_only_for_large_plain_binary_messages() {
    let big = vec![1u8; 3000];
    let at_payload = |reader: &mut Reader, frame: &[u8], header: usize| {
        reader.feed(&frame[..header], &mut Vec::new()).unwrap();
        reader.direct_len(1000)
    };
    // Text, a first fragment, too little left, a control frame: no.
    assert_eq!(
        at_payload(&mut server(), &cframe(Opcode::Text, true, &big), 8),
        None
    );
    assert_eq!(
        at_payload(&mut server(), &cframe(Opcode::Binary, false, &big), 8),
        None
    );
    assert_eq!(
        at_payload(&mut server(), &cframe(Opcode::Binary, true, &big[..999]), 8),
        None
    );
    assert_eq!(
        at_payload(&mut server(), &cframe(Opcode::Binary, true, &big), 2008 + 1),
        None
    );
    assert_eq!(
        at_payload(&mut server(), &cframe(Opcode::Ping, true, &big[..100]), 6),
        None
    );
    assert_eq!(
        at_payload(&mut server(), &cframe(Opcode::Binary, true, &big), 8),
        Some(3000)
    );
    // A compressed message goes through the inflater.
    let mut def = Deflater::new(6, 15, false).unwrap();
    let noise: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut compressed = Vec::new();
    def.compress(&noise, &mut compressed).unwrap();
    assert!(compressed.len() > 1000);
    let mut frame = Vec::new();
    encode_frame(&mut frame, Opcode::Binary, true, true, &compressed, None);
    let mut reader = Reader::new(true, Some(1 << 20), Some(Inflater::new(15, false).unwrap()));
    assert_eq!(at_payload(&mut reader, &frame, 4), None);
    // Without max_size, a header cannot make the caller allocate more than 16 MiB.
    let len = (16 << 20) + 1;
    let mut huge = vec![0; crate::frames::header_len(len, false)];
    crate::frames::write_header(&mut huge, Opcode::Binary, true, false, len, None);
    let mut reader = Reader::new(true, None, None);
    assert_eq!(at_payload(&mut reader, &huge, huge.len()), None);
}

#[test]
fn direct_misuse_is_an_error() {
    let mut reader = server();
    assert!(matches!(
        reader.direct_received(&mut [0; 4]),
        Err(Error::InvalidArgument(_))
    ));
    let stream = cframe(Opcode::Binary, true, &[5; 2000]);
    reader.feed(&stream[..8], &mut Vec::new()).unwrap();
    assert!(reader.begin_direct(1000).is_some());
    assert!(reader.begin_direct(1000).is_none(), "already started");
    assert!(matches!(
        reader.feed(b"x", &mut Vec::new()),
        Err(Error::InvalidArgument(_))
    ));
    let mut reader = server();
    assert!(matches!(
        reader.direct_next(0),
        Err(Error::InvalidArgument(_))
    ));
    reader.feed(&stream[..8], &mut Vec::new()).unwrap();
    reader.begin_direct(1000).unwrap();
    // Asking where too many bytes would go changes nothing; receiving them fails the reader.
    assert!(matches!(
        reader.direct_next(2001),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(reader.direct_next(2000), Ok(0..2000));
    assert_eq!(reader.direct_progress(), Some((0, 2000)));
    assert!(!reader.is_failed());
    assert!(matches!(
        reader.direct_received(&mut [0; 2001]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(reader.is_failed());
}

proptest! {
    #[test]
    fn encode_then_parse_round_trips(
        msgs in proptest::collection::vec(msg_strategy(), 1..6),
        client_side in any::<bool>(),
        deflate in any::<bool>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let deflater = deflate.then(|| Deflater::new(6, 12, false).unwrap());
        let mut writer = crate::writer::Writer::new(client_side, deflater, 8);
        let mut stream = Vec::new();
        let mut expected = Vec::new();
        for m in &msgs {
            let op = if m.text { Opcode::Text } else { Opcode::Binary };
            writer.encode_message(op, &m.data, m.fragment, true, &mut stream).unwrap();
            expected.push(if m.text {
                Event::Text(String::from_utf8(m.data.clone()).unwrap())
            } else {
                Event::Binary(m.data.clone())
            });
        }
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort_unstable();
        let inflater = deflate.then(|| Inflater::new(12, false).unwrap());
        let mut reader = Reader::new(!client_side, Some(1 << 16), inflater);
        let mut events = Vec::new();
        let mut start = 0;
        for p in points.into_iter().chain([stream.len()]) {
            reader.feed(&stream[start..p], &mut events).unwrap();
            start = p;
        }
        prop_assert_eq!(events, expected);
    }

    #[test]
    fn streamed_fragments_join_to_the_message(
        msgs in proptest::collection::vec(msg_strategy(), 1..6),
        deflate in any::<bool>(),
    ) {
        let deflater = deflate.then(|| Deflater::new(6, 12, false).unwrap());
        let mut writer = crate::writer::Writer::new(true, deflater, 8);
        let mut stream = Vec::new();
        for m in &msgs {
            let op = if m.text { Opcode::Text } else { Opcode::Binary };
            writer.encode_message(op, &m.data, m.fragment, true, &mut stream).unwrap();
        }
        let inflater = deflate.then(|| Inflater::new(12, false).unwrap());
        let mut reader = Reader::new(false, Some(1 << 16), inflater).stream_fragments(true);
        let mut events = Vec::new();
        reader.feed(&stream, &mut events).unwrap();
        // Each message: one whole event, or fragments ending with `fin` that join to it.
        let mut events = events.into_iter();
        for m in &msgs {
            let mut joined = Vec::new();
            loop {
                match events.next() {
                    Some(Event::Text(s)) => { prop_assert!(m.text); joined = s.into_bytes(); break; }
                    Some(Event::Binary(b)) => { prop_assert!(!m.text); joined = b; break; }
                    Some(Event::Fragment { data, text, fin }) => {
                        prop_assert_eq!(text, m.text);
                        joined.extend(data);
                        if fin { break; }
                    }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert_eq!(&joined, &m.data);
        }
        prop_assert!(events.next().is_none());
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512),
                                client_side in any::<bool>(), deflate in any::<bool>()) {
        let inflater = deflate.then(|| Inflater::new(15, false).unwrap());
        let mut reader = Reader::new(client_side, Some(1000), inflater);
        let mut events = Vec::new();
        if let Err(e) = reader.feed(&data, &mut events) {
            prop_assert!(matches!(e.close_code(), 1002 | 1007 | 1009));
        }
    }
}

#[test]
fn a_lean_reader_keeps_only_small_buffers() {
    // An inflated message's buffer starts at 16 KiB; with a pooled inflater the reader does
    // not keep it between messages, but keeps a small one.
    for (pooled, kept) in [(false, true), (true, false)] {
        let inflater = Inflater::new(15, true).unwrap().pooled(pooled);
        let mut r = Reader::new(false, Some(1 << 20), Some(inflater));
        r.recycle(Vec::with_capacity(16 << 10));
        assert_eq!(r.compact() >= 16 << 10, kept);
        r.recycle(Vec::with_capacity(1024));
        assert!(r.compact() >= 1024);
        assert_eq!(r.compact(), 0);
    }
}
