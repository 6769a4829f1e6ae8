//! The frame reader, as client and as server, with and without permessage-deflate, fed the
//! input in arbitrary pieces. The only allowed outcomes are events or a documented error
//! (close code 1002, 1007 or 1009), the same whatever the split (but for a compressed message
//! both corrupt and too big, see below), and no message over `max_size`. The split run also
//! compacts the reader after every piece (as an idle connection does), and receives binary
//! payloads of 16 bytes or more into a buffer of its own as the Python glue does
//! (`feed_until_direct`, `begin_direct`, `direct_received`), which must not change anything
//! either. A third run streams fragmented messages frame by frame (`stream_fragments`): its
//! fragments, joined, must give the same messages.
#![no_main]

use _core::deflate::Inflater;
use _core::reader::{Event, Reader};
use libfuzzer_sys::fuzz_target;

const MAX_SIZE: usize = 4096;

fn run(
    data: &[u8],
    client: bool,
    deflate: bool,
    cuts: &[usize],
    compact: bool,
    stream: bool,
) -> (Vec<Event>, Option<u16>) {
    let inflater = if deflate {
        Inflater::new(15, false).ok()
    } else {
        None
    };
    let mut reader = Reader::new(client, Some(MAX_SIZE), inflater).stream_fragments(stream);
    let mut events = Vec::new();
    let mut start = 0;
    // The message received in place (as the glue does with a `bytes`): its buffer and length.
    let mut direct: Option<(Vec<u8>, usize)> = None;
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let mut piece = &data[start..cut];
        start = cut;
        loop {
            if let Some((buffer, len)) = direct.as_mut() {
                let n = piece.len().min(*len - buffer.len());
                let at = buffer.len();
                buffer.extend_from_slice(&piece[..n]);
                piece = &piece[n..];
                let complete = reader.direct_received(&mut buffer[at..]).expect("glue use");
                assert_eq!(complete, buffer.len() == *len);
                if complete {
                    if let Some((buffer, _)) = direct.take() {
                        events.push(Event::Binary(buffer));
                    }
                }
                if piece.is_empty() {
                    break;
                }
            }
            let result = if compact {
                reader.feed_until_direct(piece, &mut events, 16)
            } else {
                reader.feed(piece, &mut events).map(|()| piece.len())
            };
            match result {
                Err(error) => {
                    assert!(
                        matches!(error.close_code(), 1002 | 1007 | 1009),
                        "{error:?}"
                    );
                    return (events, Some(error.close_code()));
                }
                Ok(used) => {
                    piece = &piece[used..];
                    if piece.is_empty() {
                        break;
                    }
                    let (len, already) = reader.begin_direct(16).expect("stopped for it");
                    direct = Some((already.to_vec(), len));
                }
            }
        }
        if compact && direct.is_none() {
            // What the glue's receive_buffer() does between reads.
            if let Some((len, already)) = reader.begin_direct(16) {
                direct = Some((already.to_vec(), len));
            }
        }
        if compact {
            reader.compact();
        }
    }
    (events, None)
}

fuzz_target!(|input: &[u8]| {
    let Some((&flags, data)) = input.split_first() else {
        return;
    };
    let client = flags & 1 != 0;
    let deflate = flags & 2 != 0;
    // Cut points derived from the flags byte, so the same input also runs split.
    let step = usize::from(flags >> 2) + 1;
    let cuts: Vec<usize> = (step..data.len()).step_by(step).collect();
    let whole = run(data, client, deflate, &[], false, false);
    let split = run(data, client, deflate, &cuts, true, false);
    let streamed = run(data, client, deflate, &cuts, false, true);
    // Joined, the fragments give the messages; a message cut short by an error was never
    // delivered whole, so its fragments are dropped.
    let mut joined = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    for event in streamed.0 {
        match event {
            Event::Fragment { data, text, fin } => {
                pending.extend_from_slice(&data);
                if fin {
                    let data = std::mem::take(&mut pending);
                    joined.push(if text {
                        Event::Text(String::from_utf8(data).expect("validated text"))
                    } else {
                        Event::Binary(data)
                    });
                }
            }
            other => joined.push(other),
        }
    }
    assert_eq!(whole.0, joined);
    assert_eq!(whole.1.is_some(), streamed.1.is_some());
    assert_eq!(whole.0, split.0);
    assert_eq!(whole.1.is_some(), split.1.is_some());
    // A compressed message that is both corrupt and too big may be caught as either,
    // depending on how much zlib had to inflate before it saw the corrupt bytes.
    if !(deflate && matches!((whole.1, split.1), (Some(1007 | 1009), Some(1007 | 1009)))) {
        assert_eq!(whole.1, split.1);
    }
    for event in &whole.0 {
        match event {
            Event::Text(text) => assert!(text.len() <= MAX_SIZE),
            Event::Binary(bytes) => assert!(bytes.len() <= MAX_SIZE),
            Event::Ping(payload) | Event::Pong(payload) => assert!(payload.len() <= 125),
            Event::Close { reason, .. } => assert!(reason.len() <= 123),
            Event::Fragment { .. } => unreachable!("fragments are streamed only on request"),
        }
    }
});
