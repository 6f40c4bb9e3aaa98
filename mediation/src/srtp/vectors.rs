//! Known-answer tests: our contexts against libsrtp's published test vectors, the RFC 3711
//! Appendix B.3 session keys (recomputed here with plain AES and HMAC-SHA1) and the RFC 7714
//! AES-GCM packets. The key derivation (RFC 3711 B.3, RFC 6188 §7.2) and AES-CM keystream
//! (RFC 3711 B.2, RFC 6188 §7.1) vectors are beside their code in `kdf.rs` and `aes_cm.rs`.

use aes::cipher::{BlockEncrypt, KeyInit};
use hmac::Mac;

use super::{MasterKey, Protector, ReplayWindow, SrtpSuite, Unprotector};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// RFC 3711 Appendix B.3 master key and salt (also libsrtp's `test_key`).
const B3_MASTER: &str = "e1f97a0d3e018be0d64fa32c06de4139 0ec675ad498afeebb6960b3aabe6";
/// libsrtp `srtp_driver.c` AEAD test key and salt.
const GCM_128_MASTER: &str = "000102030405060708090a0b0c0d0e0f a0a1a2a3a4a5a6a7a8a9aaab";
const GCM_256_MASTER: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f \
                              a0a1a2a3a4a5a6a7a8a9aaab";

/// libsrtp's reference plaintexts: SSRC 0xcafebabe, SEQ 0x1234, ROC 0, 16 bytes of 0xab.
const RTP_PLAIN: &str = "800f1234decafbadcafebabe abababababababababababababababab";
const RTCP_PLAIN: &str = "81c8000bcafebabe abababababababababababababababab";

struct Vector {
    suite: SrtpSuite,
    master: &'static str,
    srtp: &'static str,
    /// First SRTCP packet (index 1: libsrtp starts there, and so do we).
    srtcp: &'static str,
}

/// AES-CM-80 and AEAD-128 are libsrtp's `srtp_driver.c` vectors; AES-CM-32 and AEAD-256 were
/// computed with libsrtp 2.5.0 (Debian `libsrtp2-1`, via pylibsrtp), since libsrtp publishes
/// none for them.
const VECTORS: [Vector; 4] = [
    Vector {
        suite: SrtpSuite::AesCm128HmacSha1_80,
        master: B3_MASTER,
        srtp: "800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb",
        srtcp: "81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798",
    },
    Vector {
        suite: SrtpSuite::AesCm128HmacSha1_32,
        master: B3_MASTER,
        srtp: "800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc",
        // SRTCP keeps the 80-bit tag in the _32 suite.
        srtcp: "81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798",
    },
    Vector {
        suite: SrtpSuite::AeadAes128Gcm,
        master: GCM_128_MASTER,
        srtp: "800f1234decafbadcafebabe c5002ede04cfdd2eb91159e0880aa06e \
               d2976826f796b201df3131a127e8a392",
        srtcp: "81c8000bcafebabe c98b8b5df0392a55852b6c21ac8e7025 \
                c52c6fbea2b3b446ea31123ba88ce61e 80000001",
    },
    Vector {
        suite: SrtpSuite::AeadAes256Gcm,
        master: GCM_256_MASTER,
        srtp: "800f1234decafbadcafebabe 0af7f21e8a90bdad7a425c9c31ed4bb1 \
               d90238917e7390a2793500e1681acaea",
        srtcp: "81c8000bcafebabe 8abfafa780070a90e80f9161cf4aac08 \
                1ed93aaa53c15b0f3ed1a3b984167b03 80000001",
    },
];

#[test]
fn protect_matches_libsrtp_vectors() {
    for v in &VECTORS {
        let key = MasterKey::from_bytes(v.suite, &hex(v.master)).unwrap();
        let mut tx = Protector::new(&key).unwrap();
        assert_eq!(
            tx.protect_rtp(&hex(RTP_PLAIN)).unwrap().to_vec(),
            hex(v.srtp),
            "{} SRTP",
            v.suite
        );
        assert_eq!(
            tx.protect_rtcp(&hex(RTCP_PLAIN)).unwrap().to_vec(),
            hex(v.srtcp),
            "{} SRTCP",
            v.suite
        );
    }
}

#[test]
fn unprotect_matches_libsrtp_vectors() {
    for v in &VECTORS {
        let key = MasterKey::from_bytes(v.suite, &hex(v.master)).unwrap();
        let mut rx = Unprotector::new(&key, ReplayWindow::DEFAULT).unwrap();
        assert_eq!(
            rx.unprotect_rtp(&hex(v.srtp)).unwrap().to_vec(),
            hex(RTP_PLAIN),
            "{} SRTP",
            v.suite
        );
        assert_eq!(
            rx.unprotect_rtcp(&hex(v.srtcp)).unwrap().to_vec(),
            hex(RTCP_PLAIN),
            "{} SRTCP",
            v.suite
        );
    }
}

/// RFC 3711 Appendix B.3 derives, from [`B3_MASTER`] with kdr 0 and index 0:
/// ```text
/// Cipher key:  C61E7A93744F39EE10734AFE3FF7A087
/// Cipher salt: 30CBBC08863D8C85D49DB34A9AE1
/// Auth key:    CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4
/// ```
/// We rebuild the packet from these session keys with plain AES-CM (RFC 3711 §4.1.1) and the
/// `hmac` crate's HMAC-SHA1 (§4.2.1): if our derivation were wrong, either the payload or the tag
/// would differ.
#[test]
fn key_derivation_matches_rfc3711_b3() {
    let session_key = hex("C61E7A93744F39EE10734AFE3FF7A087");
    let session_salt = hex("30CBBC08863D8C85D49DB34A9AE1");
    let auth_key = hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4");

    let plain = hex(RTP_PLAIN);
    let (ssrc, seq, roc) = (0xcafe_babeu32, 0x1234u16, 0u32);

    // IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (i * 2^16), i = 2^16 * ROC + SEQ.
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(&session_salt);
    for (b, x) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= x;
    }
    let index = (u64::from(roc) << 16) | u64::from(seq);
    for (b, x) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= x;
    }
    let mut keystream = aes::cipher::generic_array::GenericArray::from(iv);
    aes::Aes128::new_from_slice(&session_key)
        .unwrap()
        .encrypt_block(&mut keystream);

    let mut expected = plain.clone();
    for (b, k) in expected[12..].iter_mut().zip(keystream.iter()) {
        *b ^= k;
    }
    // Authenticated portion || ROC, HMAC-SHA1 truncated to 80 bits.
    let mut mac = <hmac::Hmac<sha1::Sha1> as Mac>::new_from_slice(&auth_key).unwrap();
    mac.update(&expected);
    mac.update(&roc.to_be_bytes());
    expected.extend_from_slice(&mac.finalize().into_bytes()[..10]);

    let key = MasterKey::from_bytes(SrtpSuite::AesCm128HmacSha1_80, &hex(B3_MASTER)).unwrap();
    let srtp = Protector::new(&key).unwrap().protect_rtp(&plain).unwrap();
    assert_eq!(srtp.to_vec(), expected);
    assert_eq!(
        expected,
        hex(VECTORS[0].srtp),
        "RFC 3711 B.3 and libsrtp agree"
    );
}

/// RFC 7714 §16 and §17 start from session keys (no key derivation): key `00 01 .. 0f` (or
/// `.. 1f`), salt "Quid pro quo".
mod rfc7714 {
    use super::super::transform::{RtcpLayout, RtpLayout, SessionKeys};
    use super::super::SrtpSuite;
    use super::hex;

    const KEY_128: &str = "000102030405060708090a0b0c0d0e0f";
    const KEY_256: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const SALT: &str = "517569642070726f2071756f";

    /// "Gallia est omnis divisa in partes tres", SSRC 0x5501a0b2, SEQ 0xf17b, ROC 0.
    const RTP: &str = "8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973
                       20646976 69736120 696e2070 61727465 73207472 6573";
    /// A sender report from SSRC "Mars", SRTCP index 0x5d4.
    const RTCP: &str = "81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930
                        4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef";

    fn keys(suite: SrtpSuite, key: &str) -> SessionKeys {
        SessionKeys::from_session_keys(suite, &hex(key), &hex(SALT), &[])
    }

    fn rtp_round_trip(suite: SrtpSuite, key: &str, expected: &str) {
        let keys = keys(suite, key);
        let plain = hex(RTP);
        let mut packet = plain.clone();
        packet.resize(plain.len() + 16, 0);
        let layout = RtpLayout {
            header: 12,
            payload_end: plain.len(),
            mki_len: 0,
        };
        keys.protect_rtp(&mut packet, layout, 0x5501_a0b2, 0xf17b, &[]);
        assert_eq!(packet, hex(expected), "{suite} SRTP");
        keys.authenticate_rtp(&mut packet, layout, 0x5501_a0b2, 0xf17b)
            .unwrap();
        assert_eq!(packet[..plain.len()], plain[..], "{suite} decrypted");
        let mut again = hex(expected);
        again[20] ^= 1;
        assert!(keys
            .authenticate_rtp(&mut again, layout, 0x5501_a0b2, 0xf17b)
            .is_err());
    }

    fn rtcp_round_trip(suite: SrtpSuite, key: &str, expected: &str) {
        let keys = keys(suite, key);
        let plain = hex(RTCP);
        let mut packet = plain.clone();
        packet.resize(plain.len() + 20, 0);
        let layout = RtcpLayout {
            payload_end: plain.len(),
            mki_len: 0,
        };
        keys.protect_rtcp(&mut packet, layout, 0x4d61_7273, 0x5d4, &[]);
        assert_eq!(packet, hex(expected), "{suite} SRTCP");
        keys.authenticate_rtcp(&mut packet, layout, 0x4d61_7273, 0x8000_05d4)
            .unwrap();
        assert_eq!(packet[..plain.len()], plain[..], "{suite} decrypted");
    }

    /// §16.1.1: AEAD_AES_128_GCM, SRTP.
    #[test]
    fn srtp_aes_128_gcm() {
        rtp_round_trip(
            SrtpSuite::AeadAes128Gcm,
            KEY_128,
            "8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca be633bd5
             0d294e6f 42a5f47a 51c7d19b 36de3adf 8833 899d7f27 beb16a91 52cf765e e4390cce",
        );
    }

    /// §16.2.1: AEAD_AES_256_GCM, SRTP.
    #[test]
    fn srtp_aes_256_gcm() {
        rtp_round_trip(
            SrtpSuite::AeadAes256Gcm,
            KEY_256,
            "8040f17b 8041f8d3 5501a0b2 32b1de78 a822fe12 ef9f78fa 332e33aa b1801238
             9a58e2f3 b50b2a02 76ffae0f 1ba63799 b87b 7aa3db36 dfffd6b0 f9bb7878 d7a76c13",
        );
    }

    /// §17.1.1: AEAD_AES_128_GCM, SRTCP (E=1, index 0x5d4).
    #[test]
    fn srtcp_aes_128_gcm() {
        rtcp_round_trip(
            SrtpSuite::AeadAes128Gcm,
            KEY_128,
            "81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7 6c06f32d
             c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458 96cf4d2f c5abf872
             45d9eade 800005d4",
        );
    }

    /// §17.2.1: AEAD_AES_256_GCM, SRTCP.
    #[test]
    fn srtcp_aes_256_gcm() {
        rtcp_round_trip(
            SrtpSuite::AeadAes256Gcm,
            KEY_256,
            "81c8000d 4d617273 d50ae4d1 f5ce5d30 4ba297e4 7d470c28 2c3ece5d bffe0a50
             a2eaa5c1 110555be 8415f658 c61de047 6f1b6fad 1d1eb30c 4446839f 57ff6f6c
             b26ac3be 800005d4",
        );
    }
}
