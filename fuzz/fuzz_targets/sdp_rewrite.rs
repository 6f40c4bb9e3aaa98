//! SDP from a peer: `mediation::sdp::parse`, then the SDP we would send on the other leg
//! (`leg_sdp` for an offer, `answer_sdp` for an answer), with fixed `LegSdpParams`.
//!
//! Input: byte 0 selects the parameters (bit 0 SAVP with our a=crypto / AVP, bit 1 rtcp-mux,
//! bit 2 answer mode, bit 3 our port 0, bit 4 `a=encryption:optional`); the rest is the peer's SDP, in answer mode the offer
//! and the peer's answer separated by a NUL byte.
//!
//! Checked beyond "no panic":
//! - what we write parses again with our own parser, with the same number of m= lines as the
//!   SDP it was built from (RFC 3264 §6: an answer has the offer's m= lines);
//! - it carries exactly our a=crypto lines, and no inline key from any of the peer's a=crypto
//!   lines appears anywhere in it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediation::sdp::{
    answer_sdp, leg_sdp, parse, CryptoAttribute, Encryption, LegSdpParams, MasterKeySalt, PeerSdp,
    Proto,
};
use mediation::srtp::SrtpSuite;

fn params(flags: u8) -> LegSdpParams {
    let savp = flags & 1 != 0;
    let suite = SrtpSuite::AesCm128HmacSha1_80;
    let key: Vec<u8> = (0u8..30)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    let crypto = if savp {
        vec![CryptoAttribute::new(
            1,
            suite,
            MasterKeySalt::from_bytes(suite, key).expect("30 bytes"),
        )]
    } else {
        Vec::new()
    };
    LegSdpParams {
        session_id: 4242,
        version: 7,
        address: "10.1.2.3".parse().expect("address"),
        port: if flags & 8 != 0 { 0 } else { 30000 },
        proto: if savp { Proto::Savp } else { Proto::Avp },
        crypto,
        rtcp_mux: flags & 2 != 0,
        encryption: (flags & 16 != 0).then_some(Encryption::Optional),
    }
}

fn is_crypto_line(line: &str) -> bool {
    line.trim_start()
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("a=crypto"))
}

/// The inline keys of the peers' a=crypto lines that must not reach what we write: those no
/// peer also wrote elsewhere (outside a=crypto lines our allow-list may pass them, but then
/// they were never secret), and long enough not to match by chance.
fn secret_keys(inputs: &[&str], ours: &[String]) -> Vec<String> {
    let lines = || inputs.iter().flat_map(|input| input.split(['\r', '\n']));
    let elsewhere: String = lines()
        .filter(|l| !is_crypto_line(l))
        .collect::<Vec<_>>()
        .join("\n");
    let mut keys = Vec::new();
    for line in lines().filter(|l| is_crypto_line(l)) {
        let lower = line.to_ascii_lowercase();
        for (at, _) in lower.match_indices("inline:") {
            let key: String = line[at + 7..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '|' && *c != ';')
                .collect();
            if key.len() >= 12
                && !elsewhere.contains(&key)
                && !ours.iter().any(|o| o.contains(&key))
            {
                keys.push(key);
            }
        }
    }
    keys
}

fn check_written(written: &str, expected_m_lines: usize, inputs: &[&str], ours: &LegSdpParams) {
    let back = match parse(written.as_bytes()) {
        Ok(back) => back,
        Err(e) => panic!("our SDP does not parse: {e}\n{written}"),
    };
    assert_eq!(
        back.media_count(),
        expected_m_lines,
        "m= lines changed\n{written}"
    );
    let ours_text: Vec<String> = ours.crypto.iter().map(ToString::to_string).collect();
    for line in written.lines() {
        if let Some(value) = line.strip_prefix("a=crypto:") {
            assert!(
                ours_text.iter().any(|o| o == value),
                "an a=crypto that is not ours\n{written}"
            );
        }
    }
    for key in secret_keys(inputs, &ours_text) {
        assert!(!written.contains(&key), "peer key {key} leaked\n{written}");
    }
}

fn parse_str(bytes: &[u8]) -> Option<(&str, PeerSdp)> {
    let text = std::str::from_utf8(bytes).ok()?;
    let sdp = parse(bytes).ok()?;
    Some((text, sdp))
}

fuzz_target!(|data: &[u8]| {
    let [flags, body @ ..] = data else {
        return;
    };
    let ours = params(*flags);
    if flags & 4 == 0 {
        let Some((text, peer)) = parse_str(body) else {
            return;
        };
        let _ = peer.audio();
        let _ = peer.other_active_media().count();
        let written = leg_sdp(&peer, &ours);
        check_written(&written, peer.media_count(), &[text], &ours);
    } else {
        let split = body.iter().position(|&b| b == 0).unwrap_or(body.len());
        let (offer, answer) = (&body[..split], body.get(split + 1..).unwrap_or(&[]));
        let Some((offer_text, offer)) = parse_str(offer) else {
            return;
        };
        let Some((answer_text, answer)) = parse_str(answer) else {
            return;
        };
        let written = answer_sdp(&offer, &answer, &ours);
        check_written(
            &written,
            offer.media_count(),
            &[offer_text, answer_text],
            &ours,
        );
    }
});
