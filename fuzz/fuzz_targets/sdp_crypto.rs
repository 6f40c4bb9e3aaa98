//! The SDES `a=crypto` attribute value: `CryptoAttribute::parse`; what parses must print and
//! parse back to the same attribute (and print the same again), and its redacted form must not
//! show the key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediation::sdp::{choose_crypto, CryptoAttribute};
use mediation::srtp::SrtpSuite;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(attr) = CryptoAttribute::parse(text) else {
        return;
    };
    let printed = attr.to_string();
    let again = match CryptoAttribute::parse(&printed) {
        Ok(again) => again,
        Err(e) => panic!("printed attribute does not parse: {e}\n{printed}"),
    };
    assert_eq!(attr, again, "round trip changed the attribute\n{printed}");
    assert_eq!(printed, again.to_string(), "printing is not stable");

    // The redacted form is exactly the printed one with every key replaced by a marker:
    // nothing else changes and no key bytes are left (a lifetime's digits may happen to
    // spell a key's base64; only the inline: value is the key).
    let redacted = attr.redacted().to_string();
    // (The tag and suite name come first and may hold any text, even "inline:...".)
    let head = format!("{} {} ", attr.tag, attr.suite);
    let mut rest = printed[head.len()..].to_string();
    for key in &attr.keys {
        let b64 = mediation::sdp::base64::encode(key.key_salt.as_bytes());
        rest = rest.replacen(&format!("inline:{b64}"), "inline:<redacted>", 1);
    }
    let expected = head + &rest;
    assert_eq!(
        redacted, expected,
        "redacted form differs from the printed one beyond the keys"
    );
    let _ = attr.known_suite();
    let _ = attr.weakens_security();
    let _ = attr.has_unknown_mandatory_params();
    let _ = choose_crypto(std::slice::from_ref(&attr), &SrtpSuite::ALL);
});
