//! Per-leg SRTP contexts over webrtc-srtp: a [`Protector`] for what we send and an
//! [`Unprotector`] for what we receive, with replay protection always on and every packet checked
//! before the library sees it.

use bytes::Bytes;
use webrtc_srtp::context::Context;
use webrtc_srtp::option::{srtcp_replay_protection, srtp_replay_protection};
use webrtc_srtp::protection_profile::ProtectionProfile;

use super::keys::MasterKey;
use super::ssrcs::{SsrcTable, MAX_SSRCS};
use super::window::{ReplayWindow, SentWindow};
use super::wire::{check_rtcp_prefix, RtpHeader, SrtcpTrailer};
use super::SrtpSuite;

/// Why a packet was not protected or unprotected. The relay counts drops by this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// The authentication tag did not verify (wrong key, tampering, or an SRTCP packet that
    /// claims to be unencrypted, which we never negotiate).
    #[error("SRTP authentication failed")]
    AuthFailed,
    /// The packet index was already seen, or is older than the replay window. On the sending
    /// side: the sequence number was already protected with this key.
    #[error("SRTP replay: packet index already used or older than the replay window")]
    Replay,
    /// Not a well-formed RTP/RTCP or SRTP/SRTCP packet; the text says what is wrong.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// A new SSRC in a context that already holds state for [`MAX_SSRCS`] of them.
    #[error("more than {MAX_SSRCS} SSRCs under one SRTP key")]
    TooManySsrcs,
    /// The key protected as many packets as RFC 3711 §9.2 allows (2^48 SRTP, 2^31 SRTCP);
    /// new keys are needed.
    #[error("SRTP key exhausted; new keys are needed")]
    KeyExhausted,
}

/// An SRTP context could not be made (never happens with a valid [`MasterKey`]).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up an SRTP context for {suite}: {reason}")]
pub struct SetupError {
    /// The suite asked for.
    pub suite: SrtpSuite,
    /// What the SRTP library said.
    pub reason: String,
}

/// The library's name for our suite.
pub fn protection_profile(suite: SrtpSuite) -> ProtectionProfile {
    match suite {
        SrtpSuite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        SrtpSuite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        SrtpSuite::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
        SrtpSuite::AeadAes256Gcm => ProtectionProfile::AeadAes256Gcm,
    }
}

/// Where the SRTCP trailer fields are for `suite`. SRTCP always carries an 80-bit HMAC tag with
/// AES-CM, even in the `_32` suite (RFC 4568 §6.2.1, RFC 3711 §5.2).
fn srtcp_trailer(suite: SrtpSuite) -> SrtcpTrailer {
    match suite {
        SrtpSuite::AesCm128HmacSha1_80 | SrtpSuite::AesCm128HmacSha1_32 => SrtcpTrailer {
            hmac_tag_len: 10,
            aead_tag_len: 0,
        },
        SrtpSuite::AeadAes128Gcm | SrtpSuite::AeadAes256Gcm => SrtcpTrailer {
            hmac_tag_len: 0,
            aead_tag_len: 16,
        },
    }
}

/// The largest SRTCP index (31 bits). webrtc-srtp starts at 1 and silently wraps to 0 after this,
/// which would reuse keystream, so we stop first.
const MAX_SRTCP_PACKETS: u32 = 0x7FFF_FFFF;

/// Failed trial decryptions after which the [`Unprotector`]'s probe context is rebuilt.
const PROBE_FAILURES_BEFORE_RESET: u32 = 64;

fn new_context(key: &MasterKey, window: ReplayWindow) -> Result<Context, SetupError> {
    // The options must always be given: webrtc-srtp disables replay protection when they are
    // `None`.
    Context::new(
        key.key(),
        key.salt(),
        protection_profile(key.suite()),
        Some(srtp_replay_protection(window.packets())),
        Some(srtcp_replay_protection(window.packets())),
    )
    .map_err(|e| SetupError {
        suite: key.suite(),
        reason: e.to_string(),
    })
}

/// Sorts webrtc-srtp's errors into ours.
fn classify(error: webrtc_srtp::Error) -> SrtpError {
    use webrtc_srtp::Error as E;
    match error {
        E::RtpFailedToVerifyAuthTag
        | E::RtcpFailedToVerifyAuthTag
        | E::ErrFailedToVerifyAuthTag
        // aes-gcm reports a tag mismatch as its only error.
        | E::AesGcm(_) => SrtpError::AuthFailed,
        E::SrtpSsrcDuplicated(..) | E::SrtcpSsrcDuplicated(..) | E::ErrDuplicated => {
            SrtpError::Replay
        }
        E::ErrExceededMaxPackets => SrtpError::KeyExhausted,
        E::ErrTooShortRtp | E::SrtpTooSmall(..) => SrtpError::Malformed("SRTP packet too short"),
        E::ErrTooShortRtcp | E::SrtcpTooSmall(..) | E::RtcpInvalidLengthAuthTag(..) => {
            SrtpError::Malformed("SRTCP packet too short")
        }
        E::Util(_) | E::Rtcp(_) => SrtpError::Malformed("header refused by the SRTP library"),
        _ => SrtpError::Malformed("refused by the SRTP library"),
    }
}

/// Protects what we send on one leg, with our key for that leg.
pub struct Protector {
    suite: SrtpSuite,
    context: Context,
    /// Sequence numbers protected per RTP SSRC.
    rtp: SsrcTable<SentWindow>,
    /// Packets protected per RTCP SSRC.
    rtcp: SsrcTable<u32>,
}

impl Protector {
    /// A context that protects with `key` (ours: the one we sent in our `a=crypto`).
    pub fn new(key: &MasterKey) -> Result<Self, SetupError> {
        Ok(Self {
            suite: key.suite(),
            context: new_context(key, ReplayWindow::DEFAULT)?,
            rtp: SsrcTable::new(),
            rtcp: SsrcTable::new(),
        })
    }

    /// The suite this context protects with.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// RTP in, SRTP out: the payload encrypted and the tag appended (RFC 3711 §3.3).
    pub fn protect_rtp(&mut self, rtp: &[u8]) -> Result<Bytes, SrtpError> {
        let header = RtpHeader::parse(rtp).map_err(SrtpError::Malformed)?;
        let sent = self
            .rtp
            .get_or_insert_with(header.ssrc, SentWindow::default)
            .map_err(|_| SrtpError::TooManySsrcs)?;
        if !sent.is_fresh(header.sequence) {
            return Err(SrtpError::Replay);
        }
        let srtp = self
            .context
            .encrypt_rtp_with_header(rtp, &header.for_library())
            .map_err(classify)?;
        sent.mark(header.sequence);
        Ok(srtp)
    }

    /// RTCP in, SRTCP out: encrypted after the first 8 bytes, `E=1 || index` and tag appended
    /// (RFC 3711 §3.4; RFC 7714 §17 for AEAD).
    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Result<Bytes, SrtpError> {
        let ssrc = check_rtcp_prefix(rtcp).map_err(SrtpError::Malformed)?;
        let sent = self
            .rtcp
            .get_or_insert_with(ssrc, || 0)
            .map_err(|_| SrtpError::TooManySsrcs)?;
        if *sent >= MAX_SRTCP_PACKETS {
            return Err(SrtpError::KeyExhausted);
        }
        let srtcp = self.context.encrypt_rtcp(rtcp).map_err(classify)?;
        *sent += 1;
        Ok(srtcp)
    }
}

/// Unprotects what the peer of one leg sends, with the key it sent us.
///
/// webrtc-srtp creates state for an SSRC (replay window, rollover counter) *before* it checks the
/// packet's tag, and never forgets it, so forged packets with ever new SSRCs would grow memory
/// without bound. The first packet of an SSRC we have not seen authenticate is therefore tried
/// on a separate probe context, rebuilt from time to time; only authenticated SSRCs reach the
/// main context, and at most [`MAX_SSRCS`] of them.
pub struct Unprotector {
    suite: SrtpSuite,
    window: ReplayWindow,
    trailer: SrtcpTrailer,
    context: Context,
    probe: Context,
    probe_failures: u32,
    /// Kept to rebuild the probe; zeroed on drop like every `MasterKey`.
    key: MasterKey,
    rtp: SsrcTable<()>,
    rtcp: SsrcTable<()>,
}

impl Unprotector {
    /// A context that checks and decrypts with `key` (the peer's, from its `a=crypto`).
    pub fn new(key: &MasterKey, window: ReplayWindow) -> Result<Self, SetupError> {
        Ok(Self {
            suite: key.suite(),
            window,
            trailer: srtcp_trailer(key.suite()),
            context: new_context(key, window)?,
            probe: new_context(key, window)?,
            probe_failures: 0,
            key: key.clone(),
            rtp: SsrcTable::new(),
            rtcp: SsrcTable::new(),
        })
    }

    /// The suite this context unprotects.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// The replay window in use.
    pub fn window(&self) -> ReplayWindow {
        self.window
    }

    /// SRTP in, RTP out, only if the tag verifies and the index is new.
    pub fn unprotect_rtp(&mut self, srtp: &[u8]) -> Result<Bytes, SrtpError> {
        let header = RtpHeader::parse(srtp).map_err(SrtpError::Malformed)?;
        if srtp.len() < header.len + self.suite.srtp_overhead() {
            return Err(SrtpError::Malformed("shorter than its header and SRTP tag"));
        }
        let library_header = header.for_library();
        if !self.rtp.contains(header.ssrc) {
            let trial = self
                .probe
                .decrypt_rtp_with_header(srtp, &library_header)
                .map(drop);
            self.after_probe(trial)?;
            self.rtp
                .get_or_insert_with(header.ssrc, || ())
                .map_err(|_| SrtpError::TooManySsrcs)?;
        }
        self.context
            .decrypt_rtp_with_header(srtp, &library_header)
            .map_err(classify)
    }

    /// SRTCP in, RTCP out, only if the tag verifies and the index is new.
    pub fn unprotect_rtcp(&mut self, srtcp: &[u8]) -> Result<Bytes, SrtpError> {
        let ssrc = check_rtcp_prefix(srtcp).map_err(SrtpError::Malformed)?;
        let (encrypted, _index) = self.trailer.read(srtcp).map_err(SrtpError::Malformed)?;
        if !encrypted {
            // E=0 would mean "authenticated but not encrypted", which needs the
            // UNENCRYPTED_SRTCP session parameter (RFC 4568 §6.3.2) we never offer; and
            // webrtc-srtp returns such packets (AES-CM) without checking their tag at all.
            return Err(SrtpError::AuthFailed);
        }
        if !self.rtcp.contains(ssrc) {
            let trial = self.probe.decrypt_rtcp(srtcp).map(drop);
            self.after_probe(trial)?;
            self.rtcp
                .get_or_insert_with(ssrc, || ())
                .map_err(|_| SrtpError::TooManySsrcs)?;
        }
        self.context.decrypt_rtcp(srtcp).map_err(classify)
    }

    fn after_probe(&mut self, trial: Result<(), webrtc_srtp::Error>) -> Result<(), SrtpError> {
        let Err(error) = trial else {
            return Ok(());
        };
        self.probe_failures += 1;
        if self.probe_failures >= PROBE_FAILURES_BEFORE_RESET {
            self.probe_failures = 0;
            // Same key and window as at construction, which succeeded.
            if let Ok(fresh) = new_context(&self.key, self.window) {
                self.probe = fresh;
            }
        }
        Err(classify(error))
    }
}

/// Both directions of one leg: what we send and what we receive.
pub struct SrtpSession {
    /// Protects what we send, with our key.
    pub tx: Protector,
    /// Unprotects what the peer sends, with its key.
    pub rx: Unprotector,
}

impl SrtpSession {
    /// A session sending with `ours` and receiving with `theirs`.
    pub fn new(
        ours: &MasterKey,
        theirs: &MasterKey,
        window: ReplayWindow,
    ) -> Result<Self, SetupError> {
        Ok(Self {
            tx: Protector::new(ours)?,
            rx: Unprotector::new(theirs, window)?,
        })
    }

    /// See [`Protector::protect_rtp`].
    pub fn protect_rtp(&mut self, rtp: &[u8]) -> Result<Bytes, SrtpError> {
        self.tx.protect_rtp(rtp)
    }

    /// See [`Protector::protect_rtcp`].
    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Result<Bytes, SrtpError> {
        self.tx.protect_rtcp(rtcp)
    }

    /// See [`Unprotector::unprotect_rtp`].
    pub fn unprotect_rtp(&mut self, srtp: &[u8]) -> Result<Bytes, SrtpError> {
        self.rx.unprotect_rtp(srtp)
    }

    /// See [`Unprotector::unprotect_rtcp`].
    pub fn unprotect_rtcp(&mut self, srtcp: &[u8]) -> Result<Bytes, SrtpError> {
        self.rx.unprotect_rtcp(srtcp)
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, RngCore, SeedableRng};

    use super::*;

    fn rtp(seq: u16, ssrc: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn sender_report(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 200, 0, 6];
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(&[0x11; 20]);
        p
    }

    fn pair(suite: SrtpSuite) -> (Protector, Unprotector) {
        let key = MasterKey::generate(suite).unwrap();
        (
            Protector::new(&key).unwrap(),
            Unprotector::new(&key, ReplayWindow::DEFAULT).unwrap(),
        )
    }

    #[test]
    fn profiles_agree_on_lengths() {
        for suite in SrtpSuite::ALL {
            let profile = protection_profile(suite);
            assert_eq!(profile.key_len(), suite.key_len(), "{suite}");
            assert_eq!(profile.salt_len(), suite.salt_len(), "{suite}");
            assert_eq!(
                profile.rtp_auth_tag_len() + profile.aead_auth_tag_len(),
                suite.srtp_overhead(),
                "{suite}"
            );
            let trailer = srtcp_trailer(suite);
            assert_eq!(trailer.hmac_tag_len, profile.rtcp_auth_tag_len(), "{suite}");
            assert_eq!(trailer.aead_tag_len, profile.aead_auth_tag_len(), "{suite}");
        }
    }

    #[test]
    fn round_trip_every_suite() {
        for suite in SrtpSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            for seq in [65530u16, 65531, 65535, 0, 1, 2] {
                let plain = rtp(seq, 0x1234_5678, &[seq as u8; 160]);
                let srtp = tx.protect_rtp(&plain).unwrap();
                assert_eq!(srtp.len(), plain.len() + suite.srtp_overhead(), "{suite}");
                assert_eq!(&srtp[..12], &plain[..12], "{suite}: header stays clear");
                assert_ne!(&srtp[12..172], &plain[12..], "{suite}: payload encrypted");
                assert_eq!(rx.unprotect_rtp(&srtp).unwrap(), plain, "{suite} seq {seq}");
            }
            let sr = sender_report(0x1234_5678);
            for _ in 0..3 {
                let srtcp = tx.protect_rtcp(&sr).unwrap();
                assert_ne!(&srtcp[8..sr.len()], &sr[8..], "{suite}: SRTCP encrypted");
                assert_eq!(rx.unprotect_rtcp(&srtcp).unwrap(), sr, "{suite}");
            }
        }
    }

    #[test]
    fn csrcs_and_header_extensions_stay_clear() {
        for suite in SrtpSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            // CC=2, X=1, one-byte-profile extension of 2 words, then 40 bytes of payload.
            let mut plain = vec![0x92, 0x00, 0x00, 0x07, 0, 0, 0, 0, 0xAA, 0xBB, 0xCC, 0xDD];
            plain.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]);
            plain.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x02, 0x10, 0xAA, 0x21, 1, 2, 0, 0, 0]);
            let header_len = plain.len();
            plain.extend_from_slice(&[0x55; 40]);
            let srtp = tx.protect_rtp(&plain).unwrap();
            assert_eq!(&srtp[..header_len], &plain[..header_len], "{suite}");
            assert_ne!(
                &srtp[header_len..header_len + 4],
                &plain[header_len..header_len + 4],
                "{suite}: payload starts right after the extension"
            );
            assert_eq!(rx.unprotect_rtp(&srtp).unwrap(), plain, "{suite}");
        }
    }

    #[test]
    fn tampering_fails_authentication() {
        for suite in SrtpSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let srtp = tx.protect_rtp(&rtp(1, 7, &[9; 160])).unwrap();
            for at in [1, 12, 100, srtp.len() - 1] {
                let mut bad = srtp.to_vec();
                bad[at] ^= 0x01;
                assert_eq!(
                    rx.unprotect_rtp(&bad),
                    Err(SrtpError::AuthFailed),
                    "{suite} @{at}"
                );
            }
            let srtcp = tx.protect_rtcp(&sender_report(7)).unwrap();
            let mut bad = srtcp.to_vec();
            bad[10] ^= 0x80;
            assert_eq!(
                rx.unprotect_rtcp(&bad),
                Err(SrtpError::AuthFailed),
                "{suite}"
            );
            // The genuine ones still pass after the forgeries.
            assert!(rx.unprotect_rtp(&srtp).is_ok(), "{suite}");
            assert!(rx.unprotect_rtcp(&srtcp).is_ok(), "{suite}");
        }
    }

    #[test]
    fn a_different_key_fails_authentication() {
        for suite in SrtpSuite::ALL {
            let (mut tx, _) = pair(suite);
            let (_, mut other) = pair(suite);
            let srtp = tx.protect_rtp(&rtp(1, 7, &[9; 160])).unwrap();
            assert_eq!(
                other.unprotect_rtp(&srtp),
                Err(SrtpError::AuthFailed),
                "{suite}"
            );
        }
    }

    #[test]
    fn the_same_packet_twice_is_a_replay() {
        for suite in SrtpSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let first = tx.protect_rtp(&rtp(10, 7, &[1; 20])).unwrap();
            let second = tx.protect_rtp(&rtp(11, 7, &[2; 20])).unwrap();
            assert!(rx.unprotect_rtp(&first).is_ok());
            assert!(rx.unprotect_rtp(&second).is_ok());
            assert_eq!(rx.unprotect_rtp(&first), Err(SrtpError::Replay), "{suite}");
            assert_eq!(rx.unprotect_rtp(&second), Err(SrtpError::Replay), "{suite}");

            let srtcp = tx.protect_rtcp(&sender_report(7)).unwrap();
            assert!(rx.unprotect_rtcp(&srtcp).is_ok());
            assert_eq!(rx.unprotect_rtcp(&srtcp), Err(SrtpError::Replay), "{suite}");
        }
    }

    #[test]
    fn packets_older_than_the_window_are_replays() {
        let (mut tx, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
        let old = tx.protect_rtp(&rtp(1, 7, &[1; 20])).unwrap();
        let newer = tx.protect_rtp(&rtp(1 + 128, 7, &[1; 20])).unwrap();
        assert!(rx.unprotect_rtp(&newer).is_ok());
        assert_eq!(rx.unprotect_rtp(&old), Err(SrtpError::Replay));
    }

    #[test]
    fn late_packets_inside_the_window_are_accepted_once() {
        let (mut tx, mut rx) = pair(SrtpSuite::AeadAes128Gcm);
        let packets: Vec<_> = (0..100u16)
            .map(|seq| tx.protect_rtp(&rtp(seq, 7, &[seq as u8; 20])).unwrap())
            .collect();
        for p in packets.iter().rev() {
            assert!(rx.unprotect_rtp(p).is_ok());
        }
        for p in &packets {
            assert_eq!(rx.unprotect_rtp(p), Err(SrtpError::Replay));
        }
    }

    #[test]
    fn sender_refuses_to_reuse_an_index() {
        let (mut tx, _) = pair(SrtpSuite::AesCm128HmacSha1_80);
        assert!(tx.protect_rtp(&rtp(5, 7, &[1; 20])).is_ok());
        assert_eq!(
            tx.protect_rtp(&rtp(5, 7, &[2; 20])),
            Err(SrtpError::Replay),
            "a second packet with the same index would reuse keystream"
        );
        assert!(tx.protect_rtp(&rtp(5, 8, &[2; 20])).is_ok(), "other SSRC");
    }

    #[test]
    fn short_and_malformed_packets() {
        for suite in SrtpSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            for short in [&[][..], &[0x80], &[0x80; 11]] {
                assert!(matches!(
                    tx.protect_rtp(short),
                    Err(SrtpError::Malformed(_))
                ));
                assert!(matches!(
                    rx.unprotect_rtp(short),
                    Err(SrtpError::Malformed(_))
                ));
                assert!(matches!(
                    tx.protect_rtcp(short[..short.len().min(7)].as_ref()),
                    Err(SrtpError::Malformed(_))
                ));
                assert!(matches!(
                    rx.unprotect_rtcp(short),
                    Err(SrtpError::Malformed(_))
                ));
            }
            // A whole RTP header but no room for the tag.
            let header_only = rtp(1, 7, &[]);
            assert!(matches!(
                rx.unprotect_rtp(&header_only),
                Err(SrtpError::Malformed(_))
            ));
            // Version 1.
            let mut v1 = rtp(1, 7, &[0; 40]);
            v1[0] = 0x40;
            assert!(matches!(tx.protect_rtp(&v1), Err(SrtpError::Malformed(_))));
            assert!(matches!(
                rx.unprotect_rtp(&v1),
                Err(SrtpError::Malformed(_))
            ));
        }
    }

    #[test]
    fn unencrypted_srtcp_is_refused() {
        for suite in SrtpSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let srtcp = tx.protect_rtcp(&sender_report(7)).unwrap();
            let mut clear_e = srtcp.to_vec();
            let e_at = clear_e.len() - srtcp_trailer(suite).hmac_tag_len - 4;
            clear_e[e_at] &= 0x7F;
            assert_eq!(
                rx.unprotect_rtcp(&clear_e),
                Err(SrtpError::AuthFailed),
                "{suite}"
            );
        }
    }

    #[test]
    fn forged_ssrcs_do_not_use_up_the_table() {
        let (mut tx, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..1000 {
            let mut forged = rtp(rng.gen(), rng.gen(), &[0; 30]);
            forged.truncate(12 + 20);
            forged.extend_from_slice(&[0; 10]);
            assert_eq!(rx.unprotect_rtp(&forged), Err(SrtpError::AuthFailed));
        }
        assert!(rx.rtp.is_empty(), "no forged SSRC admitted");
        let genuine = tx.protect_rtp(&rtp(1, 7, &[3; 20])).unwrap();
        assert!(rx.unprotect_rtp(&genuine).is_ok());
        assert_eq!(rx.unprotect_rtp(&genuine), Err(SrtpError::Replay));
    }

    #[test]
    fn ssrcs_per_context_are_bounded() {
        let (mut tx, mut rx) = pair(SrtpSuite::AeadAes256Gcm);
        for ssrc in 0..MAX_SSRCS as u32 {
            let srtp = tx.protect_rtp(&rtp(1, ssrc, &[0; 20])).unwrap();
            assert!(rx.unprotect_rtp(&srtp).is_ok());
        }
        assert_eq!(
            tx.protect_rtp(&rtp(1, 999, &[0; 20])),
            Err(SrtpError::TooManySsrcs)
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3711);
        for suite in SrtpSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let mut buf = [0u8; 200];
            for round in 0..20_000 {
                let len = rng.gen_range(0..buf.len());
                rng.fill_bytes(&mut buf[..len]);
                if round % 2 == 0 && len > 0 {
                    // Mostly version 2, so the checks past the first byte are exercised.
                    buf[0] = (buf[0] & 0x3F) | 0x80;
                }
                let p = &buf[..len];
                let _ = rx.unprotect_rtp(p);
                let _ = rx.unprotect_rtcp(p);
                let _ = tx.protect_rtp(p);
                let _ = tx.protect_rtcp(p);
            }
        }
    }
}
