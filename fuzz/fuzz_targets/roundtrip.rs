//! Encoder round trip: any messages encoded by the writer (client or server, compressed or
//! not, fragmented or not, whole or streamed fragment by fragment) are read back unchanged by
//! the reader of the other side, whatever the window size and whichever side compacts its
//! compression state between messages.
#![no_main]

use _core::deflate::{Deflater, Inflater};
use _core::frames::Opcode;
use _core::reader::{Event, Reader};
use _core::writer::Writer;
use libfuzzer_sys::fuzz_target;

/// Messages per input: the payload is cut into this many pieces.
const MESSAGES: usize = 3;

fuzz_target!(|input: &[u8]| {
    let [flags, schedule, payload @ ..] = input else {
        return;
    };
    let client = flags & 1 != 0;
    let deflate = flags & 2 != 0;
    let text = flags & 4 != 0;
    let fragment_size = usize::from(flags >> 3) * 7;
    // Bits 0-2: compact the writer before message i; bits 3-5: the reader; bits 6-7: window.
    let bits = 9 + (schedule >> 6) * 2;
    let deflater = deflate
        .then(|| Deflater::new(6, bits, false).ok())
        .flatten();
    let inflater = deflate.then(|| Inflater::new(bits, false).ok()).flatten();
    let mut writer = Writer::new(client, deflater, 0);
    let mut reader = Reader::new(!client, None, inflater);
    let piece = payload.len().div_ceil(MESSAGES).max(1);
    for (i, message) in payload.chunks(piece).enumerate() {
        let (opcode, expected) = match (text, std::str::from_utf8(message)) {
            (true, Ok(s)) => (Opcode::Text, Event::Text(s.to_owned())),
            _ => (Opcode::Binary, Event::Binary(message.to_vec())),
        };
        if schedule & (1 << i) != 0 {
            writer.compact();
        }
        if schedule & (8 << i) != 0 {
            reader.compact();
        }
        let mut frames = Vec::new();
        if fragment_size > 0 && i % 2 == 1 {
            // Every other message streamed: pieces of the data as fragments, as websockets
            // sends an iterable, then an empty final continuation.
            for (j, piece) in message.chunks(fragment_size).enumerate() {
                let op = if j == 0 { opcode } else { Opcode::Continuation };
                writer
                    .encode_fragment(op, piece, false, true, &mut frames)
                    .expect("a fragment always encodes");
            }
            let op = if message.is_empty() {
                opcode
            } else {
                Opcode::Continuation
            };
            writer
                .encode_fragment(op, b"", true, true, &mut frames)
                .expect("a fragment always encodes");
        } else {
            writer
                .encode_message(opcode, message, fragment_size, true, &mut frames)
                .expect("a data message always encodes");
        }
        let mut events = Vec::new();
        reader
            .feed(&frames, &mut events)
            .expect("what the writer wrote reads back");
        assert_eq!(events, vec![expected]);
    }
});
