//! SIP over a stream: arbitrary bytes pushed into the `StreamFramer` in arbitrary chunks, every
//! framed message parsed, and on what parses the typed view and our 4xx answer. (The parser's
//! own properties are `sip_message`'s.)
//!
//! Input: byte 0 picks the framing limits, byte 1 seeds the chunking and the response code, the
//! rest is the stream.
//!
//! Checked beyond "no panic":
//! - the messages cut from the stream do not depend on how it was chunked (up to the first
//!   error of either run, which may legitimately depend on it);
//! - no message is larger than the limit and the buffered bytes stay bounded;
//! - every response we build (`ReceivedRequest::respond`, `response_for`) frames as exactly one
//!   message of its own length, so it cannot desynchronize the peer's stream;
//! - the SIP trace (`sip::Redacted`) of every message — the bytes as framed or built (as
//!   sent messages are traced) and a parsed message printed again (as received ones are) —
//!   shows no key the `a=crypto` parser would accept after an `inline:` in any case, unless the
//!   same text also stands outside every key field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediation::sdp::CryptoAttribute;
use mediation::sip::ReceivedRequest;
use mediation::sip::Redacted;
use mediation::sip::{
    parse, response_for, Frame, FramingError, FramingLimits, ResponseExtras, StreamFramer,
};

fn limits(selector: u8) -> FramingLimits {
    match selector % 3 {
        0 => FramingLimits::default(),
        1 => FramingLimits {
            max_message_bytes: 512,
            max_headers: 8,
            max_discard_bytes: 1024,
        },
        _ => FramingLimits {
            max_message_bytes: 128,
            max_headers: 4,
            max_discard_bytes: 64,
        },
    }
}

/// What a run produced: the messages before the first error, and that error.
struct Run {
    messages: Vec<Vec<u8>>,
    first_error: bool,
    errors: Vec<FramingError>,
}

fn drain(f: &mut StreamFramer, limits: &FramingLimits, run: &mut Run) {
    // Every call consumes bytes or returns; bounded anyway so a framer loop is a finding.
    for _ in 0..100_000 {
        match f.next_message() {
            Ok(Some(Frame::Message(m))) => {
                assert!(
                    m.len() <= limits.max_message_bytes,
                    "message over the limit"
                );
                if !run.first_error {
                    run.messages.push(m.to_vec());
                }
            }
            Ok(Some(Frame::KeepAlive(_))) => {}
            Ok(None) => return,
            Err(e) => {
                run.first_error = true;
                let fatal = e.is_fatal();
                run.errors.push(e);
                if fatal {
                    return;
                }
            }
        }
    }
    panic!("framer did not settle");
}

fn frame(chunks: &mut dyn Iterator<Item = &[u8]>, limits: FramingLimits) -> Run {
    let mut f = StreamFramer::with_limits(limits);
    let mut run = Run {
        messages: Vec::new(),
        first_error: false,
        errors: Vec::new(),
    };
    let mut largest_push = 0;
    for chunk in chunks {
        largest_push = largest_push.max(chunk.len());
        f.push(chunk);
        drain(&mut f, &limits, &mut run);
        assert!(
            f.buffered_len() <= limits.max_message_bytes + largest_push + 4,
            "framer buffers {} bytes",
            f.buffered_len()
        );
        if f.is_desynchronized() {
            f.push(chunk);
            assert!(matches!(
                f.next_message(),
                Err(FramingError::Desynchronized)
            ));
            break;
        }
    }
    run
}

/// Byte ranges of the key fields of `text`: after each `inline:` in any case, up to `|`, `;`,
/// ASCII white space or the end — where `CryptoAttribute::parse` reads a key (RFC 4568 key
/// parameters; the ABNF's literals are case-insensitive).
fn key_fields(text: &str) -> Vec<(usize, usize)> {
    // ASCII lowercasing keeps every byte offset.
    let lower = text.to_ascii_lowercase();
    lower
        .match_indices("inline:")
        .map(|(at, mark)| {
            let start = at + mark.len();
            let len = text[start..]
                .find(|c: char| c.is_ascii_whitespace() || matches!(c, '|' | ';'))
                .unwrap_or(text.len() - start);
            (start, start + len)
        })
        .collect()
}

/// The trace of `bytes` shows none of their keys: every key field the `a=crypto` parser would
/// take as a key (any valid base64; an unknown suite takes any length) is absent from it,
/// unless that text also occurs with every key field blanked (then it is not only a key).
fn assert_trace_hides_keys(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let fields = key_fields(&text);
    if fields.is_empty() {
        return;
    }
    let mut blanked = text.as_bytes().to_vec();
    for &(start, end) in &fields {
        blanked[start..end].fill(0);
    }
    let elsewhere = String::from_utf8_lossy(&blanked);
    // Our marker's letters are not a key either.
    let shown = Redacted(bytes).to_string().replace("<redacted>", "\0");
    for &(start, end) in &fields {
        let key = &text[start..end];
        let accepted = CryptoAttribute::parse(&format!("1 X inline:{key}")).is_ok();
        if accepted && !elsewhere.contains(key) {
            assert!(
                !shown.contains(key),
                "key {key} in the trace\n{shown}\nof\n{text}"
            );
        }
    }
}

/// `bytes` must frame as one message covering all of it: taken whole, or refused on its own
/// without losing the stream position (a response echoes the request's header values, so one
/// that echoes non-UTF-8 bytes is skipped as `NotUtf8` like the request was).
fn assert_frames_alone(bytes: &[u8], what: &str) {
    let mut f = StreamFramer::new();
    f.push(bytes);
    match f.next_message() {
        Ok(Some(Frame::Message(m))) => {
            assert_eq!(&m[..], bytes, "{what} framed short");
        }
        Err(e @ FramingError::NotUtf8 { .. }) => {
            assert_eq!(e.head().map(<[u8]>::len), Some(bytes.len()), "{what}: {e}");
        }
        other => panic!(
            "{what} does not frame: {other:?}\n{}",
            String::from_utf8_lossy(bytes)
        ),
    }
    assert_eq!(f.buffered_len(), 0, "{what} leaves bytes behind");
    assert!(!f.is_desynchronized());
}

const EXTRAS: ResponseExtras<'static> = ResponseExtras {
    to_tag: Some("fuzztag"),
    server: Some("mediation-fuzz"),
    headers: &[("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS")],
};

fn answer_rejected(head: &[u8], code: u16, reason: &str) {
    if let Some(response) = response_for(head, code, reason, &EXTRAS) {
        assert_frames_alone(&response, "response_for");
        assert_trace_hides_keys(&response);
    }
}

fn handle_message(bytes: &[u8], code: u16) {
    assert_trace_hides_keys(bytes);
    match parse(bytes) {
        Ok(msg) => {
            assert_trace_hides_keys(&msg.encode());
            let _ = msg.view().supports("timer");
            if let Some(request) = ReceivedRequest::of(&msg) {
                let response = request.respond(code, "Bad Request", "fuzztag").encode();
                assert_frames_alone(&response, "ReceivedRequest::respond");
                assert_trace_hides_keys(&response);
                let _ = parse(&response);
            }
            if let Some(response) =
                mediation::sip::response_for_request(&msg, code, "Bad Request", &EXTRAS)
            {
                assert_frames_alone(&response, "response_for_request");
                assert_trace_hides_keys(&response);
            }
        }
        Err(e) => {
            let (code, reason) = e.response_status();
            answer_rejected(bytes, code, &reason);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [selector, seed, stream @ ..] = data else {
        return;
    };
    let limits = limits(*selector);
    let code = 400 + u16::from(*seed) % 100;

    // The same stream in one push and in pseudo-random chunks.
    let whole = frame(&mut std::iter::once(stream), limits);
    let mut state = u32::from(*seed) | 0x100;
    let mut rest = stream;
    let mut chunks = std::iter::from_fn(|| {
        if rest.is_empty() {
            return None;
        }
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (1 + state as usize % 67).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    });
    let chunked = frame(&mut chunks, limits);
    let n = whole.messages.len().min(chunked.messages.len());
    assert_eq!(
        whole.messages[..n],
        chunked.messages[..n],
        "chunking changed the messages"
    );
    if !whole.first_error && !chunked.first_error {
        assert_eq!(
            whole.messages, chunked.messages,
            "chunking changed the messages"
        );
    }

    for m in &whole.messages {
        handle_message(m, code);
    }
    for e in &whole.errors {
        if let Some(head) = e.head() {
            let (code, reason) = e.response_status();
            answer_rejected(head, code, reason);
        }
    }
    // The same bytes as one datagram.
    handle_message(stream, code);
});
