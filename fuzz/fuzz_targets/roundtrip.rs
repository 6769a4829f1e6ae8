//! Encoder round trip: any message encoded by the writer (client or server, compressed or
//! not, fragmented or not) is read back unchanged by the reader of the other side.
#![no_main]

use _core::deflate::{Deflater, Inflater};
use _core::frames::Opcode;
use _core::reader::{Event, Reader};
use _core::writer::Writer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&flags, payload)) = input.split_first() else {
        return;
    };
    let client = flags & 1 != 0;
    let deflate = flags & 2 != 0;
    let text = flags & 4 != 0;
    let fragment_size = usize::from(flags >> 3) * 7;
    let (opcode, expected) = match (text, std::str::from_utf8(payload)) {
        (true, Ok(s)) => (Opcode::Text, Event::Text(s.to_owned())),
        _ => (Opcode::Binary, Event::Binary(payload.to_vec())),
    };
    let deflater = if deflate {
        Deflater::new(6, 15, false).ok()
    } else {
        None
    };
    let inflater = if deflate {
        Inflater::new(15, false).ok()
    } else {
        None
    };
    let mut writer = Writer::new(client, deflater, 0);
    let mut reader = Reader::new(!client, None, inflater);
    let mut frames = Vec::new();
    writer
        .encode_message(opcode, payload, fragment_size, &mut frames)
        .expect("a data message always encodes");
    let mut events = Vec::new();
    reader
        .feed(&frames, &mut events)
        .expect("what the writer wrote reads back");
    assert_eq!(events, vec![expected]);
});
