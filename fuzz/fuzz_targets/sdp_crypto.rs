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

    let redacted = attr.redacted().to_string();
    for key in &attr.keys {
        let bytes = key.key_salt.as_bytes();
        if bytes.len() >= 6 {
            let b64 = mediation::sdp::base64::encode(bytes);
            // Unless the peer also wrote it as the tag, suite name or a session parameter.
            let public = format!(
                "{} {} {}",
                attr.tag,
                attr.suite,
                attr.session_params.join(" ")
            );
            assert!(
                !redacted.contains(&b64) || public.contains(&b64),
                "redacted form shows a key"
            );
        }
    }
    let _ = attr.known_suite();
    let _ = attr.weakens_security();
    let _ = attr.has_unknown_mandatory_params();
    let _ = choose_crypto(std::slice::from_ref(&attr), &SrtpSuite::ALL);
});
