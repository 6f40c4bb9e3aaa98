//! The SIP parser on arbitrary bytes (one message or datagram), and the URI grammar on
//! arbitrary text.
//!
//! Checked beyond "no panic":
//! - a message that parses writes back ([`Message::encode`]) to bytes that parse to the same
//!   message, and its start line and headers come back byte for byte;
//! - the door ([`parse`]) refuses only what [`Message::parse`] refuses, plus unknown methods
//!   (501) and Request-URI schemes (416);
//! - every refusal gets a 4xx or 5xx naming a part, and the answer built for it frames as one
//!   message of its own length (or, echoing bytes that are not UTF-8, is skipped whole);
//! - a URI that parses prints to text that parses to the same URI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediation::sip::{
    parse, response_for, Frame, FramingError, Message, ResponseExtras, StreamFramer, Uri,
};

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(m) => {
            let written = m.encode();
            let again = Message::parse(&written).expect("what we wrote parses");
            assert_eq!(again, m, "the message changed on its way back");
            for (a, b) in m.headers().iter().zip(again.headers()) {
                assert_eq!(a.raw(), b.raw());
            }
            if let Err(e) = parse(data) {
                let (code, _) = e.response_status();
                assert!(code == 501 || code == 416, "door refused what parses: {e}");
            }
        }
        Err(e) => {
            assert!(
                parse(data).is_err(),
                "the door took what the parser refused"
            );
            let (code, reason) = e.response_status();
            assert!((400..600).contains(&code), "{code}");
            assert!(!e.part().is_empty());
            let extras = ResponseExtras::default();
            if let Some(answer) = response_for(data, code, &reason, &extras) {
                let mut f = StreamFramer::new();
                f.push(&answer);
                match f.next_message() {
                    Ok(Some(Frame::Message(m))) => assert_eq!(&m[..], &answer[..]),
                    // The answer echoes the request's headers as they came, bytes that are not
                    // UTF-8 included: it is then skipped whole, as the request was.
                    Err(e @ FramingError::NotUtf8 { .. }) => {
                        assert_eq!(e.head().map(<[u8]>::len), Some(answer.len()), "{e}");
                    }
                    other => panic!("our answer does not frame: {other:?}"),
                }
                assert_eq!(f.buffered_len(), 0, "our answer leaves bytes behind");
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(uri) = Uri::parse(text) {
            let printed = uri.to_string();
            assert_eq!(Uri::parse(&printed), Ok(uri), "{text} printed as {printed}");
        }
    }
});
