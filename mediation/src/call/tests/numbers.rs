//! Trunk number rules on a call: the called and calling numbers translated on the way to a
//! gateway and from it, `remove_plus`, each gateway's rules again on failover, and
//! History-Info/Diversion forwarded or stripped by `forward_history`.

use super::*;
use crate::config::{NumberKind, NumberRule, RuleDirection};

fn rule(number: NumberKind, direction: RuleDirection, pattern: &str, replace: &str) -> NumberRule {
    NumberRule {
        number,
        direction,
        pattern: regex::Regex::new(pattern).unwrap(),
        replace: replace.into(),
    }
}

/// The user part of a header's (or the Request-URI's) SIP URI in `msg`.
fn user_of(msg: &str, name: &str) -> String {
    let line = if name == "Request-URI" {
        msg.lines().next().unwrap().to_string()
    } else {
        header_value(msg, name)
    };
    let start = line.find("sip:").expect("a sip: URI") + 4;
    line[start..].split('@').next().unwrap().to_string()
}

#[test]
fn numbers_toward_a_gateway_follow_its_rules_and_lose_the_plus_and_failover_applies_the_next_ones()
{
    let mut gw1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    gw1.number_rules = vec![
        rule(
            NumberKind::Called,
            RuleDirection::ToGateway,
            r"^\+1(\d{10})$",
            "1$1",
        ),
        rule(
            NumberKind::Called,
            RuleDirection::ToGateway,
            r"^\+(\d+)$",
            "011$1",
        ),
        rule(
            NumberKind::Calling,
            RuleDirection::ToGateway,
            r"^\+1(\d+)$",
            "$1",
        ),
        // Not for this direction: never applied to calls toward gw1.
        rule(NumberKind::Called, RuleDirection::FromGateway, r"^.*$", "0"),
    ];
    let mut gw2 = gateway("gw2", GatewayTransport::Tcp, SrtpMode::Optional);
    gw2.remove_plus = true;
    let mut h = Harness::new(EncryptionLevel::Required, vec![gw1, gw2]);
    routed(&mut h);
    let nh = h.open_next_hop();
    let inv = invite("num-1", "sip:+15551234567@anything", &nh_offer())
        .replace("From: <sip:+15550001@", "From: <sip:+15550009@");
    let outs = h.feed(nh, &inv);
    let (gw1_conn, _, first) = invite_on_new_connection(&outs);
    assert_eq!(user_of(&first, "Request-URI"), "15551234567", "{first}");
    assert_eq!(user_of(&first, "To"), "15551234567", "{first}");
    assert_eq!(user_of(&first, "From"), "5550009", "{first}");
    // gw1 fails; gw2 has no rules but removes the plus: the numbers as they came, without it.
    h.engine.handle(h.now, Input::Closed { conn: gw1_conn });
    let (_, who, second) = invite_on_new_connection(&h.drain());
    assert_eq!(who, Peer::Gateway("gw2".into()));
    assert_eq!(user_of(&second, "Request-URI"), "15551234567", "{second}");
    assert_eq!(user_of(&second, "From"), "15550009", "{second}");
}

#[test]
fn numbers_from_a_gateway_follow_its_from_gateway_rules() {
    let mut gw1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
    gw1.number_rules = vec![
        rule(
            NumberKind::Called,
            RuleDirection::FromGateway,
            r"^(\d{4})$",
            "+1555000$1",
        ),
        rule(
            NumberKind::Calling,
            RuleDirection::FromGateway,
            r"^0(\d+)$",
            "+44$1",
        ),
        rule(NumberKind::Called, RuleDirection::ToGateway, r"^.*$", "0"),
    ];
    // remove_plus is for numbers sent to the gateway, not from it.
    gw1.remove_plus = true;
    let mut h = Harness::new(EncryptionLevel::Required, vec![gw1]);
    let gw = h.open_gateway("gw1", MTLS);
    let inv = invite("num-2", "sip:4567@192.0.2.10", &gw_offer())
        .replace("From: <sip:+15550001@", "From: <sip:02071234567@");
    let Call { b_invite: b, .. } = h.call_from(gw, &inv);
    assert_eq!(user_of(&b, "Request-URI"), "+15550004567", "{b}");
    assert_eq!(user_of(&b, "To"), "+15550004567", "{b}");
    assert_eq!(user_of(&b, "From"), "+442071234567", "{b}");
}

#[test]
fn call_history_is_forwarded_only_where_the_gateway_says_so() {
    for forward in [false, true] {
        let mut gw1 = gateway("gw1", GatewayTransport::Tls, SrtpMode::Optional);
        gw1.forward_history = forward;
        let mut h = Harness::new(EncryptionLevel::Required, vec![gw1]);
        let gw = h.open_gateway("gw1", MTLS);
        let inv = invite("hist", "sip:+15551234@192.0.2.10", &gw_offer()).replace(
            "Max-Forwards: 70\r\n",
            "Max-Forwards: 70\r\nDiversion: <sip:+15559999@gw1.example.test>;reason=unconditional\r\n\
             History-Info: <sip:+15559999@gw1.example.test>;index=1\r\n",
        );
        let Call { b_invite: b, .. } = h.call_from(gw, &inv);
        let carried = [
            "Diversion: <sip:+15559999@gw1.example.test>;reason=unconditional\r\n",
            "History-Info: <sip:+15559999@gw1.example.test>;index=1\r\n",
        ]
        .map(|field| b.contains(field));
        assert_eq!(carried, [forward; 2], "forward_history = {forward}: {b}");
    }
}
