//! `Debug` for the engine's input and output: SIP messages carry SDES keys (`a=crypto`
//! `inline:` in the SDP), so a message is shown as the SIP trace shows it, keys redacted
//! ([`crate::sip::trace::Redacted`]), never as raw bytes a log would keep.

use std::fmt;

use super::{Input, Output};
use crate::sip::trace::Redacted;

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Connect { conn, target } => f
                .debug_struct("Connect")
                .field("conn", conn)
                .field("target", target)
                .finish(),
            Output::Send { conn, bytes } => f
                .debug_struct("Send")
                .field("conn", conn)
                .field("bytes", &Redacted(bytes))
                .finish(),
            Output::Media(command) => f.debug_tuple("Media").field(command).finish(),
        }
    }
}

impl fmt::Debug for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Input::Opened { conn, peer } => f
                .debug_struct("Opened")
                .field("conn", conn)
                .field("peer", peer)
                .finish(),
            Input::Closed { conn } => f.debug_struct("Closed").field("conn", conn).finish(),
            Input::Drain => f.write_str("Drain"),
            Input::EndAll => f.write_str("EndAll"),
            Input::MediaTimeout { call, both } => f
                .debug_struct("MediaTimeout")
                .field("call", call)
                .field("both", both)
                .finish(),
            Input::Message { conn, msg } => f
                .debug_struct("Message")
                .field("conn", conn)
                .field("msg", &Redacted(&msg.encode()))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::peer::ConnId;

    const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

    fn message() -> String {
        let body = format!(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
             m=audio 4000 RTP/SAVP 0\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 INLINE:{KEY}|2^31\r\n"
        );
        format!(
            "INVITE sip:+15551234@192.0.2.10 SIP/2.0\r\n\
             Via: SIP/2.0/TLS 10.0.0.1:5067;branch=z9hG4bK-1\r\nMax-Forwards: 70\r\n\
             From: <sip:+15550001@10.0.0.1>;tag=a\r\nTo: <sip:+15551234@192.0.2.10>\r\n\
             Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    #[test]
    fn debug_of_what_is_sent_and_received_hides_the_keys() {
        let send = Output::Send {
            conn: ConnId(7),
            bytes: Bytes::from(message()),
        };
        let shown = format!("{send:?}");
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("INLINE:<redacted>|2^31"), "{shown}");
        assert!(shown.contains("Call-ID: c1"), "the rest is shown: {shown}");

        let msg = crate::sip::parse(message().as_bytes()).expect("parses");
        let received = Input::Message {
            conn: ConnId(7),
            msg,
        };
        let shown = format!("{received:?}");
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("INLINE:<redacted>|2^31"), "{shown}");
        assert!(shown.contains("Call-ID: c1"), "the rest is shown: {shown}");
    }
}
