//! SDES offer/answer (RFC 4568 §7): which of a peer's `a=crypto` lines we accept, what we
//! answer, what we offer, and whether a peer's answer matches our offer.
//!
//! An attribute is usable when its suite is one we allow, it carries exactly one key, that key's
//! MKI (if any) is at most 4 bytes long, and no session parameter weakens SRTP or is unknown and
//! mandatory. `KDR` other than 0 is already refused when the attribute is parsed. A key lifetime
//! (Lync sends `|2^31`) and an MKI (Lync sends `|1:1`) are kept with the key: the SRTP contexts
//! expect the MKI in every packet and hold the key to its lifetime.
//!
//! Several keys in one attribute (RFC 4568 §6.1: MKI-selected key switching) are refused: no
//! deployed peer we know sends them, and one key per direction keeps the relay's contexts small.

use super::crypto::CryptoAttribute;
use crate::srtp::{Mki, SrtpSuite};

/// Why a peer's SDES answer cannot be used with our offer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NegotiationError {
    /// The answer has no `a=crypto` (that parsed).
    #[error("the answer has no usable a=crypto line")]
    NoCrypto,
    /// The answer has more than one `a=crypto`.
    #[error("the answer has {0} a=crypto lines, RFC 4568 §7.1.2 allows exactly one")]
    SeveralCrypto(usize),
    /// The answer's tag is not one we offered.
    #[error("the answer's a=crypto tag {0} is not one we offered")]
    UnknownTag(u32),
    /// The answer's suite differs from the one we offered under that tag.
    #[error(
        "the answer's a=crypto tag {tag} names {answered}, we offered {offered} under that tag"
    )]
    SuiteMismatch {
        /// The tag.
        tag: u32,
        /// Our suite under that tag.
        offered: String,
        /// The suite in the answer.
        answered: String,
    },
    /// The answer's attribute is not usable (several keys, MKI, weakening parameters...).
    #[error("the answer's a=crypto tag {tag} is not usable: {reason}")]
    Unusable {
        /// The tag.
        tag: u32,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Why an attribute is not usable, or the suite it uses.
fn usable(attr: &CryptoAttribute, allowed: &[SrtpSuite]) -> Result<SrtpSuite, &'static str> {
    let suite = attr
        .suite
        .known()
        .ok_or("its suite is not one we implement")?;
    if !allowed.contains(&suite) {
        return Err("its suite is not allowed here");
    }
    if attr.keys.len() != 1 {
        return Err("it carries more than one key");
    }
    if attr
        .keys
        .iter()
        .any(|k| k.mki.is_some_and(|(_, len)| len > Mki::MAX_LEN))
    {
        return Err("its MKI is longer than the 4 bytes we support");
    }
    if attr.weakens_security() {
        return Err("a session parameter turns off encryption or authentication");
    }
    if attr.has_unknown_mandatory_params() {
        return Err("it has a session parameter we do not understand");
    }
    Ok(suite)
}

/// The first of the peer's offered attributes, in the peer's order (RFC 4568 §7.1.1: the
/// order of the offer is its preference), that we can use with one of `allowed`.
pub fn choose_crypto<'a>(
    offered: &'a [CryptoAttribute],
    allowed: &[SrtpSuite],
) -> Option<&'a CryptoAttribute> {
    offered.iter().find(|attr| usable(attr, allowed).is_ok())
}

/// Our answer to the attribute we chose: same tag and suite, a fresh key from the OS CSPRNG, no
/// lifetime, MKI or session parameters.
///
/// `chosen` is meant to come from [`choose_crypto`], so its suite is one we implement. For a
/// suite we do not implement no key can be made: the result then has the tag and suite but no
/// key (`keys` empty), which [`CryptoAttribute::known_suite`] and any key lookup refuse.
pub fn answer_crypto(chosen: &CryptoAttribute) -> CryptoAttribute {
    match chosen.suite.known() {
        Some(suite) => CryptoAttribute::generate(chosen.tag, suite),
        None => CryptoAttribute {
            tag: chosen.tag,
            suite: chosen.suite.clone(),
            keys: Vec::new(),
            session_params: Vec::new(),
        },
    }
}

/// Our offer: one attribute per allowed suite (duplicates removed), in the given order, tags
/// from 1, each with a fresh key from the OS CSPRNG.
pub fn offer_crypto(allowed: &[SrtpSuite]) -> Vec<CryptoAttribute> {
    let mut suites: Vec<SrtpSuite> = Vec::with_capacity(allowed.len());
    for suite in allowed {
        if !suites.contains(suite) {
            suites.push(*suite);
        }
    }
    (1u32..)
        .zip(suites)
        .map(|(tag, suite)| CryptoAttribute::generate(tag, suite))
        .collect()
}

/// Checks a peer's answer against our offer: it must carry exactly one `a=crypto`, whose tag
/// is one we offered with the same suite, and which is usable. Returns copies of our attribute
/// (our key: what we protect what we send with) and theirs (their key: what we check what we
/// receive with).
///
/// Pass the stream's parsed attributes ([`AudioStream::crypto`](super::session::AudioStream));
/// an answer whose only `a=crypto` did not parse comes out as [`NegotiationError::NoCrypto`].
pub fn match_answer(
    our_offer: &[CryptoAttribute],
    answer: &[CryptoAttribute],
) -> Result<(CryptoAttribute, CryptoAttribute), NegotiationError> {
    let theirs = match answer {
        [] => return Err(NegotiationError::NoCrypto),
        [one] => one,
        several => return Err(NegotiationError::SeveralCrypto(several.len())),
    };
    let ours = our_offer
        .iter()
        .find(|o| o.tag == theirs.tag)
        .ok_or(NegotiationError::UnknownTag(theirs.tag))?;
    if ours.suite != theirs.suite {
        return Err(NegotiationError::SuiteMismatch {
            tag: theirs.tag,
            offered: ours.suite.to_string(),
            answered: theirs.suite.to_string(),
        });
    }
    let allowed: Vec<SrtpSuite> = ours.suite.known().into_iter().collect();
    usable(theirs, &allowed).map_err(|reason| NegotiationError::Unusable {
        tag: theirs.tag,
        reason,
    })?;
    Ok((ours.clone(), theirs.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::base64;
    use crate::sdp::session::{parse, tests::FREESWITCH_OFFER, tests::MKI_OFFER};

    fn attr(text: &str) -> CryptoAttribute {
        CryptoAttribute::parse(text).unwrap()
    }

    fn k(len: usize) -> String {
        base64::encode(&vec![9u8; len])
    }

    #[test]
    fn choose_follows_peer_order() {
        let audio = parse(FREESWITCH_OFFER.as_bytes()).unwrap().audio().unwrap();
        let all = SrtpSuite::ALL;
        assert_eq!(choose_crypto(&audio.crypto, &all).unwrap().tag, 1);
        let cm_only = [
            SrtpSuite::AesCm128HmacSha1_32,
            SrtpSuite::AesCm128HmacSha1_80,
        ];
        // Peer prefers _80 (tag 3) over _32 (tag 4); our list order does not matter.
        assert_eq!(choose_crypto(&audio.crypto, &cm_only).unwrap().tag, 3);
        assert!(choose_crypto(&audio.crypto, &[]).is_none());
    }

    #[test]
    fn choose_skips_unusable_attributes() {
        let offered = vec![
            attr(&format!(
                "1 AES_CM_128_HMAC_SHA1_80 inline:{}|2^31|1:5",
                k(30)
            )),
            attr(&format!(
                "2 AES_CM_128_HMAC_SHA1_80 inline:{} UNENCRYPTED_SRTP",
                k(30)
            )),
            attr(&format!("3 AES_CM_128_HMAC_SHA1_80 inline:{} FOO=1", k(30))),
            attr(&format!("4 F8_128_HMAC_SHA1_80 inline:{}", k(30))),
            attr(&format!(
                "5 AES_CM_128_HMAC_SHA1_80 inline:{}|1:1;inline:{}|2:1",
                k(30),
                k(30)
            )),
            attr(&format!(
                "6 AES_CM_128_HMAC_SHA1_80 inline:{}|2^31 KDR=0 -FOO",
                k(30)
            )),
        ];
        assert_eq!(choose_crypto(&offered, &SrtpSuite::ALL).unwrap().tag, 6);
        assert!(choose_crypto(&offered[..5], &SrtpSuite::ALL).is_none());
    }

    #[test]
    fn lync_offer_with_mki_and_lifetime_is_taken_in_its_order() {
        // Lync's first line carries `|2^31|1:1`: usable, and the peer's preference.
        let audio = parse(MKI_OFFER.as_bytes()).unwrap().audio().unwrap();
        let chosen = choose_crypto(&audio.crypto, &SrtpSuite::ALL).unwrap();
        assert_eq!(chosen.tag, 2);
        assert_eq!(chosen.keys[0].mki, Some((1, 1)));
        assert_eq!(chosen.keys[0].lifetime, Some(1 << 31));
    }

    #[test]
    fn answer_has_same_tag_and_suite_and_a_fresh_key() {
        let audio = parse(FREESWITCH_OFFER.as_bytes()).unwrap().audio().unwrap();
        let chosen = choose_crypto(&audio.crypto, &[SrtpSuite::AesCm128HmacSha1_32]).unwrap();
        let answer = answer_crypto(chosen);
        assert_eq!(answer.tag, 4);
        assert_eq!(answer.suite, chosen.suite);
        assert_eq!(answer.keys.len(), 1);
        assert_ne!(answer.keys[0].key_salt, chosen.keys[0].key_salt);
        assert!(answer.session_params.is_empty());
        // Our answer is accepted by our own answer check.
        let (o, t) = match_answer(&audio.crypto, std::slice::from_ref(&answer)).unwrap();
        assert_eq!((o.tag, t.tag), (4, 4));
    }

    #[test]
    fn answer_to_unknown_suite_is_an_error() {
        let unknown = attr(&format!("1 F8_128_HMAC_SHA1_80 inline:{}", k(30)));
        let answer = answer_crypto(&unknown);
        assert_eq!(answer.tag, 1);
        assert!(answer.keys.is_empty());
        assert!(answer.known_suite().is_err());
    }

    #[test]
    fn offer_has_tags_from_one_and_distinct_keys() {
        let offer = offer_crypto(&[
            SrtpSuite::AeadAes256Gcm,
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AeadAes256Gcm,
        ]);
        let tags: Vec<_> = offer.iter().map(|a| (a.tag, a.suite.to_string())).collect();
        assert_eq!(
            tags,
            [
                (1, "AEAD_AES_256_GCM".to_string()),
                (2, "AES_CM_128_HMAC_SHA1_80".to_string())
            ]
        );
        assert_eq!(offer[0].keys[0].key_salt.len(), 44);
        assert_ne!(
            offer[0].keys[0].key_salt.key()[..16],
            offer[1].keys[0].key_salt.key()[..]
        );
        assert!(offer_crypto(&[]).is_empty());
    }

    #[test]
    fn match_answer_checks_everything() {
        let offer = offer_crypto(&[SrtpSuite::AesCm128HmacSha1_80, SrtpSuite::AeadAes128Gcm]);
        let good = attr(&format!("2 AEAD_AES_128_GCM inline:{}", k(28)));
        let (o, t) = match_answer(&offer, std::slice::from_ref(&good)).unwrap();
        assert_eq!(o.tag, 2);
        assert_eq!(t, good);

        assert_eq!(match_answer(&offer, &[]), Err(NegotiationError::NoCrypto));
        assert_eq!(
            match_answer(&offer, &[good.clone(), good.clone()]),
            Err(NegotiationError::SeveralCrypto(2))
        );
        let wrong_tag = attr(&format!("3 AEAD_AES_128_GCM inline:{}", k(28)));
        assert_eq!(
            match_answer(&offer, &[wrong_tag]).unwrap_err().to_string(),
            "the answer's a=crypto tag 3 is not one we offered"
        );
        let wrong_suite = attr(&format!("1 AEAD_AES_128_GCM inline:{}", k(28)));
        assert_eq!(
            match_answer(&offer, &[wrong_suite]).unwrap_err().to_string(),
            "the answer's a=crypto tag 1 names AEAD_AES_128_GCM, we offered AES_CM_128_HMAC_SHA1_80 under that tag"
        );
        let weak = attr(&format!(
            "1 AES_CM_128_HMAC_SHA1_80 inline:{} UNAUTHENTICATED_SRTP",
            k(30)
        ));
        assert_eq!(
            match_answer(&offer, &[weak]).unwrap_err().to_string(),
            "the answer's a=crypto tag 1 is not usable: a session parameter turns off encryption or authentication"
        );
        let long_mki = attr(&format!("1 AES_CM_128_HMAC_SHA1_80 inline:{}|1:8", k(30)));
        assert_eq!(
            match_answer(&offer, &[long_mki]).unwrap_err().to_string(),
            "the answer's a=crypto tag 1 is not usable: its MKI is longer than the 4 bytes we support"
        );
        let mki = attr(&format!(
            "1 AES_CM_128_HMAC_SHA1_80 inline:{}|2^20|1:4",
            k(30)
        ));
        let (_, theirs) = match_answer(&offer, &[mki]).unwrap();
        assert_eq!(theirs.keys[0].mki, Some((1, 4)));
    }
}
