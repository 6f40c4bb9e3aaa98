//! Answering a re-offer (re-INVITE or UPDATE inside an established call) on the leg it came
//! from, without disturbing the other leg: session refreshes and hold/resume. We answer with
//! the SDP we last sent on that leg, its `o=` version raised (RFC 3264 §8) and its direction the
//! mirror of the offer's (RFC 3264 §6.1). New SRTP keys are taken by the engine before it asks
//! for the answer here, so `theirs` is the key the answer accepts.

use crate::sdp::{CryptoAttribute, Direction, PeerSdp};

/// What to do with a re-offer.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Answer with this SDP; `hold` tells whether the peer put the call on hold.
    Answer {
        /// Our answer.
        sdp: String,
        /// The offer was `sendonly` or `inactive`.
        hold: bool,
    },
    /// Refuse with 488 for this reason.
    Refuse(&'static str),
}

/// The answer direction for an offered one (RFC 3264 §6.1).
fn mirror(offered: Direction) -> &'static str {
    match offered {
        Direction::SendRecv => "sendrecv",
        Direction::SendOnly => "recvonly",
        Direction::RecvOnly => "sendonly",
        Direction::Inactive => "inactive",
    }
}

/// True when the offered audio stream still carries the key `current` (same suite and key).
pub(super) fn has_key(audio: &crate::sdp::AudioStream, current: &CryptoAttribute) -> bool {
    audio.crypto.iter().any(|c| same_key(c, current))
}

/// True when two crypto attributes carry the same suite and master key.
pub(super) fn same_key(a: &CryptoAttribute, b: &CryptoAttribute) -> bool {
    a.suite == b.suite
        && matches!((a.keys.first(), b.keys.first()),
            (Some(x), Some(y)) if x.key_salt.as_bytes() == y.key_salt.as_bytes())
}

/// Judges a re-offer on a leg whose current keys are `theirs` (the key they protect with;
/// `None` on a plain leg) and answers it from `last`, the SDP we last sent there.
pub(super) fn answer(
    offer: &PeerSdp,
    theirs: Option<&CryptoAttribute>,
    last: &str,
    version: u64,
) -> Verdict {
    let Some(audio) = offer.audio() else {
        return Verdict::Refuse("re-offer without audio");
    };
    if let Some(current) = theirs {
        let same_key = has_key(&audio, current);
        if audio.crypto.is_empty() {
            return Verdict::Refuse("re-offer drops SRTP on an SRTP leg");
        }
        if !same_key {
            return Verdict::Refuse("new SRTP keys in a re-offer (rekeying) are not supported yet");
        }
    }
    let hold = matches!(audio.direction, Direction::SendOnly | Direction::Inactive);
    Verdict::Answer {
        sdp: with_version_and_direction(last, version, mirror(audio.direction)),
        hold,
    }
}

/// `sdp` with the `o=` version set to `version` and the audio direction set to `direction`.
pub(super) fn with_version_and_direction(sdp: &str, version: u64, direction: &str) -> String {
    let mut out = String::with_capacity(sdp.len() + 16);
    let mut in_audio = false;
    let mut wrote_direction = false;
    let is_direction =
        |l: &str| matches!(l, "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive");
    for line in sdp.split("\r\n").filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("o=") {
            let mut f: Vec<&str> = rest.split(' ').collect();
            let v = version.to_string();
            if f.len() >= 3 {
                f[2] = &v;
            }
            out.push_str(&format!("o={}\r\n", f.join(" ")));
            continue;
        }
        if line.starts_with("m=") {
            if in_audio && !wrote_direction {
                out.push_str(&format!("a={direction}\r\n"));
            }
            in_audio = line.starts_with("m=audio") && !wrote_direction;
        }
        if in_audio && is_direction(line) {
            out.push_str(&format!("a={direction}\r\n"));
            wrote_direction = true;
            continue;
        }
        if !in_audio && is_direction(line) {
            continue; // session-level direction: the media-level one decides
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    if in_audio && !wrote_direction {
        out.push_str(&format!("a={direction}\r\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "v=0\r\no=mediation 77 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 30002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\na=rtcp:30003\r\n";

    fn offer(direction: &str) -> PeerSdp {
        let text = format!("v=0\r\no=gw 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na={direction}\r\n");
        crate::sdp::parse(text.as_bytes()).unwrap()
    }

    #[test]
    fn hold_and_resume_are_mirrored_with_the_version_raised() {
        let Verdict::Answer { sdp, hold } = answer(&offer("sendonly"), None, OURS, 2) else {
            panic!("refused");
        };
        assert!(hold);
        assert!(
            sdp.contains("o=mediation 77 2 IN IP4 192.0.2.10\r\n"),
            "{sdp}"
        );
        assert!(
            sdp.contains("a=recvonly\r\n") && !sdp.contains("a=sendrecv"),
            "{sdp}"
        );
        assert!(
            sdp.contains("m=audio 30002 RTP/AVP 0\r\n"),
            "same port and codecs: {sdp}"
        );
        let Verdict::Answer { sdp, hold } = answer(&offer("sendrecv"), None, &sdp, 3) else {
            panic!("refused");
        };
        assert!(!hold);
        assert!(
            sdp.contains("o=mediation 77 3 ") && sdp.contains("a=sendrecv\r\n"),
            "{sdp}"
        );
        let Verdict::Answer { sdp, .. } = answer(&offer("inactive"), None, OURS, 4) else {
            panic!("refused");
        };
        assert!(sdp.contains("a=inactive\r\n"), "{sdp}");
        crate::sdp::parse(sdp.as_bytes()).expect("our answer parses");
    }

    #[test]
    fn srtp_legs_need_the_same_keys() {
        let key = CryptoAttribute::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
        )
        .unwrap();
        let other = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz";
        let with = |k: &str| {
            let text = format!("v=0\r\no=gw 1 2 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{k}\r\n");
            crate::sdp::parse(text.as_bytes()).unwrap()
        };
        assert!(matches!(
            answer(
                &with("PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"),
                Some(&key),
                OURS,
                2
            ),
            Verdict::Answer { .. }
        ));
        assert!(matches!(
            answer(&with(other), Some(&key), OURS, 2),
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            answer(&offer("sendrecv"), Some(&key), OURS, 2),
            Verdict::Refuse(_)
        ));
    }
}
