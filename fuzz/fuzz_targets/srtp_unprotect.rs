//! SRTP/SRTCP receive path with random bytes and random keys: `Unprotector::unprotect_rtp` and
//! `unprotect_rtcp` must refuse what was not protected with the key, and never panic.
//!
//! Input: byte 0 picks the suite, byte 1 the mode, then the suite's key||salt, then the packet.
//! Modes:
//! - 0 / 1: the bytes as a received SRTP / SRTCP packet. Accepted SRTP must be authentic: a
//!   fresh `Protector` with the same key turns the clear packet back into the same bytes.
//! - 2 / 3: the bytes as a clear RTP / RTCP packet that the relay protects for the other leg
//!   (`Protector`); what comes out must unprotect to the same packet, once only (replay), and
//!   must be refused after any single byte changes (position and XOR mask from the last two
//!   input bytes).
//! - 4: the bytes as a series of datagrams (each prefixed by a length byte, bit 7 = RTCP),
//!   unprotected in turn by one context (SSRC table, probe context rebuilds).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediation::srtp::{MasterKey, Protector, ReplayWindow, SrtpError, SrtpSuite, Unprotector};

fn unprotector(key: &MasterKey) -> Unprotector {
    Unprotector::new(key, ReplayWindow::DEFAULT).expect("context from a valid key")
}

fn tampered(packet: &[u8], position: u8, mask: u8) -> Vec<u8> {
    let mut out = packet.to_vec();
    let at = usize::from(position) % out.len();
    out[at] ^= if mask == 0 { 1 } else { mask };
    out
}

fuzz_target!(|data: &[u8]| {
    let [suite, mode, rest @ ..] = data else {
        return;
    };
    let suite = SrtpSuite::ALL[usize::from(*suite) % SrtpSuite::ALL.len()];
    let key_len = suite.key_len() + suite.salt_len();
    if rest.len() < key_len {
        return;
    }
    let (key, packet) = rest.split_at(key_len);
    let key = MasterKey::from_bytes(suite, key).expect("right length");

    match mode % 5 {
        0 => {
            if let Ok(clear) = unprotector(&key).unprotect_rtp(packet) {
                let mut tx = Protector::new(&key).expect("context");
                let again = tx.protect_rtp(&clear).expect("accepted RTP protects again");
                assert_eq!(
                    &again[..],
                    packet,
                    "accepted SRTP is not what the key makes"
                );
            }
        }
        1 => {
            if let Ok(clear) = unprotector(&key).unprotect_rtcp(packet) {
                assert_eq!(clear[..8], packet[..8], "SRTCP clear prefix changed");
                assert!(clear.len() < packet.len());
            }
        }
        2 | 3 => {
            let rtcp = mode % 5 == 3;
            let mut tx = Protector::new(&key).expect("context");
            let protected = if rtcp {
                tx.protect_rtcp(packet)
            } else {
                tx.protect_rtp(packet)
            };
            let Ok(protected) = protected else {
                return;
            };
            let unprotect = |rx: &mut Unprotector, bytes: &[u8]| {
                if rtcp {
                    rx.unprotect_rtcp(bytes)
                } else {
                    rx.unprotect_rtp(bytes)
                }
            };
            let mut rx = unprotector(&key);
            match unprotect(&mut rx, &protected) {
                Ok(clear) => assert_eq!(&clear[..], packet, "round trip changed the packet"),
                Err(e) => panic!("our own protected packet is refused: {e}"),
            }
            assert_eq!(
                unprotect(&mut rx, &protected),
                Err(SrtpError::Replay),
                "replayed packet accepted"
            );
            let (position, mask) = match data {
                [.., p, m] => (*p, *m),
                _ => (0, 1),
            };
            let bad = tampered(&protected, position, mask);
            assert!(
                unprotect(&mut unprotector(&key), &bad).is_err(),
                "tampered packet accepted"
            );
        }
        _ => {
            let mut rx = unprotector(&key);
            let mut rest = packet;
            while let [head, tail @ ..] = rest {
                let len = usize::from(head & 0x7F).min(tail.len());
                let (datagram, next) = tail.split_at(len);
                let result = if head & 0x80 != 0 {
                    rx.unprotect_rtcp(datagram)
                } else {
                    rx.unprotect_rtp(datagram)
                };
                // Nothing here was protected with the key (short of a forged tag).
                let _ = result;
                rest = next;
            }
        }
    }
});
