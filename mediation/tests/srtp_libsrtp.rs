//! Interop with libsrtp, the reference SRTP implementation (docs/design.md §4): packets we protect
//! must unprotect with libsrtp and packets libsrtp protects must unprotect with us, for every
//! suite, for SRTP and SRTCP, across a sequence-number rollover.
//!
//! libsrtp is driven through Debian's `python3-pylibsrtp` by a small script run with
//! `/usr/bin/python3` (the Debian interpreter that has the module); packets go over stdin and
//! stdout as hex. pylibsrtp names no AES-256-CM profile, so for those two suites the script sets
//! libsrtp's own AES-256-CM policy on the `srtp_policy_t` through ctypes. A missing interpreter
//! or module fails the test: it is never skipped.
//!
//! SRTP is deterministic for a given key, SSRC and index, so besides unprotecting each other's
//! packets both implementations must produce the very same bytes.

mod common;

use std::process::Command;

use common::libsrtp::{hex, libsrtp, Kind, PYTHON};
use mediation::srtp::{MasterKey, Mki, Protector, ReplayWindow, SrtpSuite, Unprotector};

/// RTP packets across a sequence-number rollover (so the rollover counter must agree), one
/// with CSRCs and a header extension, one with the marker bit and a 20 ms G.711 payload each.
fn rtp_packets() -> Vec<Vec<u8>> {
    let ssrc = 0x5EED_F00Du32;
    let mut packets = Vec::new();
    for (i, seq) in [65532u16, 65533, 65534, 65535, 0, 1, 2, 3]
        .into_iter()
        .enumerate()
    {
        let mut p = vec![0x80, if i == 0 { 0x80 } else { 0x00 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(160 * i as u32).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend((0..160).map(|n| (n as u8).wrapping_mul(i as u8 + 1)));
        packets.push(p);
    }
    // CC=1, X=1: CSRC, then a one-byte-profile extension of one word, then payload.
    let mut p = vec![0x91, 0x08, 0x00, 0x04, 0, 0, 0x05, 0x00];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&0x0102_0304u32.to_be_bytes());
    p.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x10, 0x7F, 0x00, 0x00]);
    p.extend_from_slice(&[0xD5; 160]);
    packets.push(p);
    packets
}

/// A compound RTCP packet: sender report and SDES CNAME (RFC 3550 §6.1).
fn rtcp_packets() -> Vec<Vec<u8>> {
    (0..3u8)
        .map(|i| {
            let mut p = vec![0x80, 200, 0x00, 0x06];
            p.extend_from_slice(&0x5EED_F00Du32.to_be_bytes());
            p.extend_from_slice(&[0xE8, 0x00, 0x00, i, 0, 0, 0, 0]); // NTP timestamp
            p.extend_from_slice(&[0, 0, 0x1F, 0x40]); // RTP timestamp
            p.extend_from_slice(&[0, 0, 0, 50 * (i + 1)]); // packets sent
            p.extend_from_slice(&[0, 0, 0x1F, 0x40]); // octets sent

            // SDES (RFC 3550 §6.5): one chunk, CNAME "mediation", END; 20 bytes, length 4.
            p.extend_from_slice(&[0x81, 202, 0x00, 0x04]);
            p.extend_from_slice(&0x5EED_F00Du32.to_be_bytes());
            p.extend_from_slice(&[1, 9]);
            p.extend_from_slice(b"mediation");
            p.push(0);
            assert_eq!(p.len(), 28 + 20);
            p
        })
        .collect()
}

fn all_packets() -> Vec<(Kind, Vec<u8>)> {
    let rtcp = rtcp_packets();
    let mut all: Vec<_> = rtp_packets().into_iter().map(|p| (Kind::Rtp, p)).collect();
    // Interleave the RTCP packets between the RTP ones.
    for (i, p) in rtcp.into_iter().enumerate() {
        all.insert(3 * i + 1, (Kind::Rtcp, p));
    }
    all
}

#[test]
fn pylibsrtp_offers_every_suite_we_implement() {
    let output = Command::new(PYTHON)
        .args([
            "-c",
            "import pylibsrtp; print(' '.join(dir(pylibsrtp.Policy)))",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON} ({e}): install python3-pylibsrtp"));
    let names = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "pylibsrtp is not importable by {PYTHON}: install python3-pylibsrtp. {}",
        String::from_utf8_lossy(&output.stderr)
    );
    for profile in [
        "SRTP_PROFILE_AES128_CM_SHA1_80",
        "SRTP_PROFILE_AES128_CM_SHA1_32",
        "SRTP_PROFILE_AEAD_AES_128_GCM",
        "SRTP_PROFILE_AEAD_AES_256_GCM",
    ] {
        assert!(
            names.contains(profile),
            "pylibsrtp lacks {profile}: {names}"
        );
    }
    // The AES-256-CM suites go through libsrtp's own policy setters.
    let output = Command::new(PYTHON)
        .args([
            "-c",
            "import ctypes; l = ctypes.CDLL('libsrtp2.so.1'); \
             l.srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80; \
             l.srtp_crypto_policy_set_aes_cm_256_hmac_sha1_32",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "libsrtp2.so.1 lacks the AES-256-CM policies: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn libsrtp_unprotects_what_we_protect() {
    for suite in SrtpSuite::ALL {
        let key = MasterKey::generate(suite).unwrap();
        let mut tx = Protector::new(&key).unwrap();
        let plain = all_packets();
        let mut protected: Vec<_> = plain
            .iter()
            .map(|(kind, p)| {
                let srtp = match kind {
                    Kind::Rtp => tx.protect_rtp(p),
                    Kind::Rtcp => tx.protect_rtcp(p),
                }
                .unwrap();
                assert_ne!(&srtp[..p.len()], &p[..], "{suite}: not encrypted");
                (*kind, srtp.to_vec())
            })
            .collect();
        // Then a replay of the first packet and a tampered new one.
        protected.push(protected[0].clone());
        let mut fresh = plain[0].1.clone();
        fresh[2..4].copy_from_slice(&5u16.to_be_bytes()); // not sent yet
        let mut tampered = tx.protect_rtp(&fresh).unwrap().to_vec();
        tampered[20] ^= 0x04;
        protected.push((Kind::Rtp, tampered));

        let answers = libsrtp("unprotect", &key, &protected);
        for (i, ((kind, expected), answer)) in plain.iter().zip(&answers).enumerate() {
            assert_eq!(
                answer.as_ref().map(Vec::as_slice),
                Ok(&expected[..]),
                "{suite}: libsrtp unprotecting our {kind:?} packet #{i}"
            );
        }
        let n = plain.len();
        assert!(
            answers[n].as_ref().is_err_and(|e| e.contains("replay")),
            "{suite}: libsrtp accepted our packet twice: {:?}",
            answers[n]
        );
        assert!(
            answers[n + 1]
                .as_ref()
                .is_err_and(|e| e.contains("authentication")),
            "{suite}: libsrtp accepted a tampered packet: {:?}",
            answers[n + 1]
        );
    }
}

#[test]
fn we_unprotect_what_libsrtp_protects() {
    for suite in SrtpSuite::ALL {
        let key = MasterKey::generate(suite).unwrap();
        let plain = all_packets();
        let protected = libsrtp("protect", &key, &plain);
        let mut rx = Unprotector::new(&key, ReplayWindow::DEFAULT).unwrap();
        let mut tx = Protector::new(&key).unwrap();
        for (i, ((kind, expected), srtp)) in plain.iter().zip(protected).enumerate() {
            let srtp = srtp.unwrap_or_else(|e| panic!("{suite}: libsrtp protect #{i}: {e}"));
            let ours = match kind {
                Kind::Rtp => tx.protect_rtp(expected),
                Kind::Rtcp => tx.protect_rtcp(expected),
            }
            .unwrap();
            assert_eq!(
                hex(&ours),
                hex(&srtp),
                "{suite}: our {kind:?} #{i} differs from libsrtp's"
            );
            assert_ne!(
                &srtp[..expected.len()],
                &expected[..],
                "{suite}: not encrypted"
            );
            let unprotect = |rx: &mut Unprotector| match kind {
                Kind::Rtp => rx.unprotect_rtp(&srtp),
                Kind::Rtcp => rx.unprotect_rtcp(&srtp),
            };
            let clear = unprotect(&mut rx)
                .unwrap_or_else(|e| panic!("{suite}: unprotecting libsrtp's {kind:?} #{i}: {e}"));
            assert_eq!(&clear[..], &expected[..], "{suite}: {kind:?} #{i}");
            assert!(
                unprotect(&mut rx).is_err(),
                "{suite}: replay of #{i} accepted"
            );
        }
    }
}

/// With an MKI of 1 to 4 bytes (RFC 3711 §3.1) on every packet, both ways: libsrtp and we put it
/// in the same place (before the HMAC tag, after the GCM tag and after `E || index`) and check
/// it. libsrtp only reads MKIs through its `_mki` calls, which the script makes with ctypes.
#[test]
fn mki_interop_both_ways() {
    for (i, suite) in SrtpSuite::ALL.into_iter().enumerate() {
        let len = 1 + (i % 4) as u8;
        let mki = Mki::new(0x5A5B_5C5D >> (8 * (4 - u32::from(len))), len).unwrap();
        let key = MasterKey::generate(suite).unwrap().with_mki(mki);
        let plain = all_packets();

        let mut tx = Protector::new(&key).unwrap();
        let ours: Vec<_> = plain
            .iter()
            .map(|(kind, p)| {
                let srtp = match kind {
                    Kind::Rtp => tx.protect_rtp(p),
                    Kind::Rtcp => tx.protect_rtcp(p),
                }
                .unwrap();
                (*kind, srtp.to_vec())
            })
            .collect();
        let theirs = libsrtp("protect", &key, &plain);
        for (i, ((kind, ours), theirs)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(
                Ok(hex(ours)),
                theirs.as_ref().map(|t| hex(t)),
                "{suite} MKI {len} bytes: {kind:?} #{i}"
            );
        }
        let answers = libsrtp("unprotect", &key, &ours);
        let short_tag = suite.srtp_overhead() == 4;
        for (i, ((kind, expected), answer)) in plain.iter().zip(&answers).enumerate() {
            if short_tag && *kind == Kind::Rtcp {
                // libsrtp 2.5 looks for an SRTCP packet's MKI as if its tag were the 32-bit SRTP
                // tag of the `_32` suites, not the 80-bit SRTCP one (RFC 4568 §6.2.1), so it
                // refuses even its own such packets: bad MKI (status 25). The bytes are right:
                // libsrtp's protect produced the very same packet above.
                assert_eq!(
                    answer.as_ref().map_err(String::as_str).err(),
                    Some("libsrtp_status_25"),
                    "{suite}: #{i}"
                );
                continue;
            }
            assert_eq!(answer.as_deref(), Ok(&expected[..]), "{suite}: #{i}");
        }
        let mut rx = Unprotector::new(&key, ReplayWindow::DEFAULT).unwrap();
        for ((kind, expected), srtp) in plain.iter().zip(theirs) {
            let srtp = srtp.unwrap();
            let clear = match kind {
                Kind::Rtp => rx.unprotect_rtp(&srtp),
                Kind::Rtcp => rx.unprotect_rtcp(&srtp),
            }
            .unwrap();
            assert_eq!(&clear[..], &expected[..], "{suite}");
        }
    }
}

/// A rekey in the middle of a stream that already rolled over (a re-INVITE with a new
/// `a=crypto`): the stream goes on with the next sequence numbers under new keys, and both
/// sides start the new keys with a rollover counter of 0 (RFC 3711 §3.3.1: a new master key
/// means a new cryptographic context), as libsrtp does. Ours and libsrtp's packets must be
/// byte-identical under the new key, and each side unprotects the other's, both ways.
#[test]
fn rekey_after_a_rollover_interoperates_both_ways() {
    for suite in SrtpSuite::ALL {
        let before = rtp_packets();
        // Sequence numbers 4.., after the wrap in `rtp_packets`, under the new key.
        let after: Vec<(Kind, Vec<u8>)> = (4u16..12)
            .map(|seq| {
                let mut p = before[1].clone();
                p[2..4].copy_from_slice(&seq.to_be_bytes());
                p[12] = seq as u8;
                (Kind::Rtp, p)
            })
            .chain(rtcp_packets().into_iter().take(1).map(|p| (Kind::Rtcp, p)))
            .collect();

        let old = MasterKey::generate(suite).unwrap();
        let mut tx = Protector::new(&old).unwrap();
        let under_old: Vec<_> = before
            .iter()
            .map(|p| (Kind::Rtp, tx.protect_rtp(p).unwrap().to_vec()))
            .collect();
        assert!(
            libsrtp("unprotect", &old, &under_old)
                .iter()
                .all(Result::is_ok),
            "{suite}: before the rekey"
        );

        // New keys: fresh contexts on both sides.
        let new = MasterKey::generate(suite).unwrap();
        let mut tx = Protector::new(&new).unwrap();
        let ours: Vec<(Kind, Vec<u8>)> = after
            .iter()
            .map(|(kind, p)| {
                let srtp = match kind {
                    Kind::Rtp => tx.protect_rtp(p),
                    Kind::Rtcp => tx.protect_rtcp(p),
                };
                (*kind, srtp.unwrap().to_vec())
            })
            .collect();
        let theirs = libsrtp("protect", &new, &after);
        let mut rx = Unprotector::new(&new, ReplayWindow::DEFAULT).unwrap();
        for (i, ((kind, mine), libs)) in ours.iter().zip(&theirs).enumerate() {
            let libs = libs
                .as_ref()
                .unwrap_or_else(|e| panic!("{suite}: #{i}: {e}"));
            assert_eq!(
                hex(mine),
                hex(libs),
                "{suite}: {kind:?} #{i} after the rekey"
            );
            let clear = match kind {
                Kind::Rtp => rx.unprotect_rtp(libs),
                Kind::Rtcp => rx.unprotect_rtcp(libs),
            }
            .unwrap_or_else(|e| panic!("{suite}: libsrtp's #{i} after the rekey: {e}"));
            assert_eq!(&clear[..], &after[i].1[..], "{suite}: #{i}");
        }
        for (i, answer) in libsrtp("unprotect", &new, &ours).iter().enumerate() {
            assert_eq!(
                answer.as_ref().map(Vec::as_slice),
                Ok(&after[i].1[..]),
                "{suite}: libsrtp unprotecting our #{i} after the rekey"
            );
        }
        // The old key no longer opens anything sent under the new one.
        let mut old_rx = Unprotector::new(&old, ReplayWindow::DEFAULT).unwrap();
        assert!(old_rx.unprotect_rtp(&ours[0].1).is_err(), "{suite}");
    }
}
