//! The shapes of an offer and how we answer each: Lync's SRTP on RTP/AVP with `a=encryption:`,
//! the AVP-crypto offer style toward a gateway, rtcp-mux, and too many media lines.

use super::*;
use crate::config::SrtpOfferStyle;
use crate::srtp::SrtpSuite;

/// A gateway's offer in Lync's dialect: SRTP as an option on RTP/AVP, its key with a lifetime
/// and an MKI, and `a=encryption:`.
fn lync_offer(encryption: &str) -> String {
    sdp(4000, "RTP/AVP", None)
        + &format!(
            "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{GW_KEY}|2^31|1:1\r\na=encryption:{encryption}\r\n"
        )
}

#[test]
fn lync_style_offer_on_rtp_avp_is_answered_in_kind_with_its_mki_and_lifetime_kept() {
    let mut h = Harness::gw1();
    let Call {
        a: gw,
        b: nh,
        b_invite,
        ..
    } = h.call_to_next_hop("lync1", &lync_offer("optional"));
    assert!(b_invite.contains("m=audio 30004 RTP/SAVP"), "{b_invite}");
    assert!(!b_invite.contains("a=encryption"), "{b_invite}");
    let outs = h.next_hop_answers_srtp(nh, &b_invite);
    let ok = &sent(&outs, gw)[0];
    assert_eq!(status(ok), 200);
    // RFC 3264 keeps the offer's profile: RTP/AVP, with our key under the offer's tag.
    assert!(ok.contains("m=audio 30002 RTP/AVP 0 101"), "{ok}");
    assert!(
        ok.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"),
        "{ok}"
    );
    let legs = media_start(&outs).unwrap();
    let Protection::Srtp { rx, .. } = &legs[0].protection else {
        panic!("SRTP on the gateway leg");
    };
    assert_eq!(rx.mki(), crate::srtp::Mki::new(1, 1));
    assert_eq!(rx.lifetime(), Some(1 << 31));
    assert_eq!(
        h.metrics()
            .calls
            .with_label_values(&["inbound", "gw1", "srtp", "answered"])
            .get(),
        1
    );
}

#[test]
fn lync_encryption_required_needs_srtp_and_rejected_withdraws_the_keys() {
    let mut h = Harness::new(
        EncryptionLevel::Required,
        vec![
            gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional),
            gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional),
        ],
    );
    // Over plain TCP no key may be used: `required` cannot be met.
    let tcp = h.open_gateway("gw2", Signalling::Tcp);
    let outs = h.feed(
        tcp,
        &invite("lync2", "sip:+15551234@192.0.2.10", &lync_offer("required")),
    );
    assert_eq!(status(&sent(&outs, tcp)[0]), 488);
    assert!(connected(&outs).is_none());

    // `rejected` over MTLS: plain RTP on the gateway leg, answered without a key.
    let Call {
        a: gw,
        b: nh,
        b_invite,
        ..
    } = h.call_to_next_hop("lync3", &lync_offer("rejected"));
    let outs = h.next_hop_answers_srtp(nh, &b_invite);
    let ok = &sent(&outs, gw)[0];
    assert_eq!(status(ok), 200);
    assert!(ok.contains("RTP/AVP") && !ok.contains("a=crypto"), "{ok}");
    let legs = media_start(&outs).unwrap();
    assert!(matches!(legs[0].protection, Protection::Rtp));
    assert!(matches!(legs[1].protection, Protection::Srtp { .. }));
}

#[test]
fn avp_crypto_offer_style_and_gateway_suites_let_the_gateway_answer_either_way() {
    let mut gw1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    gw1.srtp_offer_style = SrtpOfferStyle::AvpCrypto;
    gw1.srtp_suites = Some(vec![SrtpSuite::AesCm128HmacSha1_32]);
    let mut h = Harness::new(EncryptionLevel::Required, vec![gw1]);
    let nh = h.open_next_hop();
    let nh_offer = nh_offer();
    let mut legs_by_answer = Vec::new();
    for (n, with_key) in [(1, false), (2, true)] {
        let call_id = format!("avp{n}");
        let outs = h.feed(
            nh,
            &invite(&call_id, "sip:+15551234@gw1.example.test", &nh_offer),
        );
        let gw = match connected(&outs) {
            Some((gw, _)) => {
                h.gateway_accepts(gw, "gw1", MTLS);
                gw
            }
            None => outs
                .iter()
                .find_map(|o| match o {
                    Output::Send { conn, bytes } if bytes.starts_with(b"INVITE ") => Some(*conn),
                    _ => None,
                })
                .unwrap(),
        };
        let offer = sent(&outs, gw).remove(0);
        assert!(offer.contains(" RTP/AVP 0 101\r\n"), "{offer}");
        assert!(offer.contains("a=encryption:optional\r\n"), "{offer}");
        // Only the gateway's own suite list, not [media]'s.
        assert_eq!(offer.matches("a=crypto:").count(), 1, "{offer}");
        let tag = offered_tag(&offer, "AES_CM_128_HMAC_SHA1_32");
        let answer = if with_key {
            sdp(
                5000,
                "RTP/AVP",
                Some((tag, "AES_CM_128_HMAC_SHA1_32", GW_KEY)),
            )
        } else {
            sdp(5000, "RTP/AVP", None)
        };
        let outs = h.feed(gw, &respond(&offer, 200, "OK", Some(&answer)));
        // Answered at once: no 488 and retry as with an RTP/SAVP offer.
        assert!(sent(&outs, gw)[0].contains("CSeq: 1 ACK"));
        assert_eq!(status(&sent(&outs, nh)[0]), 200);
        let legs = media_start(&outs).unwrap();
        legs_by_answer.push(legs[0].protection.label());
    }
    assert_eq!(legs_by_answer, ["rtp", "srtp"]);
}

#[test]
fn rtcp_mux_offered_by_the_caller_is_answered_and_relayed_muxed() {
    let mut h = Harness::gw1();
    let offer = gw_offer() + "a=rtcp-mux\r\n";
    let Call {
        a: gw,
        b: nh,
        b_invite,
        ..
    } = h.call_to_next_hop("c13", &offer);
    assert!(
        !b_invite.contains("a=rtcp-mux"),
        "the far leg is offered plain RTCP: {b_invite}"
    );
    assert!(b_invite.contains("a=rtcp:30005"), "{b_invite}");
    let outs = h.next_hop_answers_srtp(nh, &b_invite);
    let ok = &sent(&outs, gw)[0];
    assert!(ok.contains("a=rtcp-mux"), "{ok}");
    let legs = media_start(&outs).unwrap();
    assert!(legs[0].rtcp_mux, "gateway leg muxed");
    assert_eq!(legs[0].remote_rtcp, Some("10.0.0.1:4000".parse().unwrap()));
    assert!(!legs[1].rtcp_mux);
    assert_eq!(legs[1].remote_rtcp, Some("10.0.0.1:5001".parse().unwrap()));
}

#[test]
fn an_offer_with_too_many_media_lines_gets_488() {
    let mut h = Harness::gw1();
    let gw = h.open_gateway("gw1", MTLS);
    let mut offer = gw_offer();
    for i in 0..16 {
        offer.push_str(&format!("m=video {} RTP/AVP 96\r\n", 6000 + 2 * i));
    }
    let outs = h.feed(gw, &invite("c60", "sip:+15551234@192.0.2.10", &offer));
    let r = &sent(&outs, gw)[0];
    assert_eq!(status(r), 488, "{r}");
    assert!(r.contains("too many media lines"), "{r}");
    assert!(connected(&outs).is_none());
}
