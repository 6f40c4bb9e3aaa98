//! Per-leg SRTP contexts: a [`Protector`] for what we send and an [`Unprotector`] for what we
//! receive (RFC 3711 §3.3 and §3.4), with session keys derived once, replay protection always
//! on, and per-SSRC state made only for streams whose packets authenticated.
//!
//! Each direction has a fast path that works on a caller-owned buffer and never allocates
//! ([`Protector::protect_rtp_into`], [`Unprotector::unprotect_rtp_in_place`] and their RTCP
//! twins); the `Bytes`-returning methods wrap it with one allocation for the result.

use std::fmt;

use bytes::Bytes;

use super::keys::{MasterKey, Mki};
use super::replay::{estimate_index, ReplayBitmap, Seen, MAX_SRTP_INDEX};
use super::ssrcs::{SsrcTable, MAX_SSRCS};
use super::transform::{RtcpLayout, RtpLayout, SessionKeys};
use super::window::{ReplayWindow, SentWindow};
use super::wire::{check_rtcp_prefix, RtpHeader, RTCP_CLEAR_PREFIX_LEN, SRTCP_INDEX_LEN};
use super::SrtpSuite;

/// Why a packet was not protected or unprotected. The relay counts drops by this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// The authentication tag did not verify (wrong key, tampering, an MKI we do not know, or an
    /// SRTCP packet that claims to be unencrypted, which we never negotiate).
    #[error("SRTP authentication failed")]
    AuthFailed,
    /// The packet index was already seen. On the sending side: the sequence number was
    /// already protected with this key.
    #[error("SRTP replay: packet index already used")]
    Replay,
    /// The packet index is older than the replay window (or from before the stream began):
    /// whether it is a replay cannot be told, so it is refused (RFC 3711 §3.3.2). Many of these
    /// on a leg mean the window is too small for its jitter (`[media] replay_window`).
    #[error("SRTP packet older than the replay window")]
    TooOld,
    /// Not a well-formed RTP/RTCP or SRTP/SRTCP packet (truncated, too short for its tag, bad
    /// version); the text says what is wrong.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// A new SSRC in a context that already holds state for `MAX_SSRCS` of them.
    #[error("more than {MAX_SSRCS} SSRCs under one SRTP key")]
    TooManySsrcs,
    /// The key protected as many packets as RFC 3711 §9.2 (2^48 SRTP, 2^31 SRTCP) or its
    /// `a=crypto` lifetime allows; new keys are needed.
    #[error("SRTP key exhausted; new keys are needed")]
    KeyExhausted,
}

/// An SRTP context could not be made (never happens with a valid [`MasterKey`]).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up an SRTP context for {suite}: {reason}")]
pub struct SetupError {
    /// The suite asked for.
    pub(crate) suite: SrtpSuite,
    /// What went wrong.
    pub(crate) reason: String,
}

/// RFC 3711 §9.2: "the master key MUST NOT be used ... more than 2^48 SRTP packets".
const MAX_SRTP_PACKETS: u64 = 1 << 48;
/// RFC 3711 §9.2: "... and 2^31 SRTCP packets".
const MAX_SRTCP_PACKETS: u64 = 1 << 31;
/// The largest SRTCP index (31 bits). Indices start at 1, as libsrtp's do.
const MAX_SRTCP_INDEX: u32 = 0x7FFF_FFFF;
/// Most bytes SRTP or SRTCP adds to a packet: GCM tag, `E || index` and a 4-byte MKI.
pub const MAX_TRAILER_LEN: usize = 16 + SRTCP_INDEX_LEN + Mki::MAX_LEN as usize;

fn session_keys(key: &MasterKey) -> Result<Box<SessionKeys>, SetupError> {
    SessionKeys::derive(key.suite(), key.key(), key.salt())
        .map(Box::new)
        .ok_or_else(|| SetupError {
            suite: key.suite(),
            reason: "master key or salt of the wrong length".into(),
        })
}

fn mki_len(mki: &Option<Mki>) -> usize {
    mki.as_ref().map_or(0, |m| m.as_bytes().len())
}

/// How many packets a key may still protect.
#[derive(Debug, Clone, Copy)]
struct Budget {
    used: u64,
    limit: u64,
}

impl Budget {
    fn new(limit: u64, lifetime: Option<u64>) -> Self {
        Self {
            used: 0,
            limit: lifetime.map_or(limit, |l| l.min(limit)),
        }
    }

    fn check(&self) -> Result<(), SrtpError> {
        if self.used >= self.limit {
            Err(SrtpError::KeyExhausted)
        } else {
            Ok(())
        }
    }
}

/// What the sender knows about one of its RTP streams.
struct SentStream {
    /// Highest index protected: the rollover counter follows from it.
    highest: u64,
    /// Sequence numbers protected recently: one index never protects two packets.
    sent: SentWindow,
}

/// Protects what we send on one leg, with our key for that leg.
pub struct Protector {
    /// Boxed: key schedules are large, contexts move.
    keys: Box<SessionKeys>,
    mki: Option<Mki>,
    rtp: SsrcTable<SentStream>,
    /// Last SRTCP index used per RTCP SSRC.
    rtcp: SsrcTable<u32>,
    srtp_budget: Budget,
    srtcp_budget: Budget,
}

impl fmt::Debug for Protector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Protector")
            .field("suite", &self.keys.suite())
            .field("rtp_ssrcs", &self.rtp.len())
            .field("rtcp_ssrcs", &self.rtcp.len())
            .finish_non_exhaustive()
    }
}

impl Protector {
    /// A context that protects with `key` (ours: the one we sent in our `a=crypto`), at most
    /// the key's lifetime (`MasterKey::with_lifetime`) of SRTP and of SRTCP packets; past
    /// that, [`SrtpError::KeyExhausted`]. The limits of RFC 3711 §9.2 (2^48 SRTP, 2^31 SRTCP
    /// packets) apply in any case.
    pub fn new(key: &MasterKey) -> Result<Self, SetupError> {
        Ok(Self {
            keys: session_keys(key)?,
            mki: key.mki(),
            rtp: SsrcTable::new(),
            rtcp: SsrcTable::new(),
            srtp_budget: Budget::new(MAX_SRTP_PACKETS, key.lifetime()),
            srtcp_budget: Budget::new(MAX_SRTCP_PACKETS, key.lifetime()),
        })
    }

    /// The suite this context protects with.
    pub(crate) fn suite(&self) -> SrtpSuite {
        self.keys.suite()
    }

    /// Bytes `protect_rtp` adds to an RTP packet: the tag and the MKI.
    pub(crate) fn rtp_overhead(&self) -> usize {
        self.suite().srtp_overhead() + mki_len(&self.mki)
    }

    /// Bytes `protect_rtcp` adds to an RTCP packet: `E || index`, the tag and the MKI.
    pub(crate) fn rtcp_overhead(&self) -> usize {
        self.suite().srtcp_overhead() + mki_len(&self.mki)
    }

    /// RTP in, SRTP out: the payload encrypted and the tag appended (RFC 3711 §3.3).
    pub fn protect_rtp(&mut self, rtp: &[u8]) -> Result<Bytes, SrtpError> {
        let mut out = vec![0; rtp.len() + self.rtp_overhead()];
        let len = self.protect_rtp_into(rtp, &mut out)?;
        out.truncate(len);
        Ok(out.into())
    }

    /// Like [`protect_rtp`](Self::protect_rtp), writing the SRTP packet into `out` (at least
    /// `rtp_overhead` bytes longer than `rtp`) and returning its length.
    /// No allocation.
    pub fn protect_rtp_into(&mut self, rtp: &[u8], out: &mut [u8]) -> Result<usize, SrtpError> {
        let total = rtp.len() + self.rtp_overhead();
        let out = out.get_mut(..total).ok_or(SrtpError::Malformed(
            "no room for the SRTP tag in the output buffer",
        ))?;
        out[..rtp.len()].copy_from_slice(rtp);
        self.protect_rtp_in_place(out, rtp.len())
    }

    /// Protects the RTP packet in `buf[..len]` in place; `buf` must have room for
    /// [`rtp_overhead`](Self::rtp_overhead) more bytes. Returns the SRTP packet's length.
    pub(crate) fn protect_rtp_in_place(
        &mut self,
        buf: &mut [u8],
        len: usize,
    ) -> Result<usize, SrtpError> {
        let rtp = buf
            .get(..len)
            .ok_or(SrtpError::Malformed("length beyond the buffer"))?;
        let header = RtpHeader::parse(rtp).map_err(SrtpError::Malformed)?;
        let total = len + self.rtp_overhead();
        if buf.len() < total {
            return Err(SrtpError::Malformed(
                "no room for the SRTP tag in the buffer",
            ));
        }
        self.srtp_budget.check()?;
        let stream = self
            .rtp
            .get_or_insert_with(header.ssrc, || SentStream {
                highest: u64::from(header.sequence),
                sent: SentWindow::default(),
            })
            .map_err(|_| SrtpError::TooManySsrcs)?;
        if !stream.sent.is_fresh(header.sequence) {
            return Err(SrtpError::Replay);
        }
        let index = estimate_index(stream.highest, header.sequence).ok_or(SrtpError::Replay)?;
        if index > MAX_SRTP_INDEX {
            return Err(SrtpError::KeyExhausted);
        }
        let layout = RtpLayout {
            header: header.len,
            payload_end: len,
            mki_len: mki_len(&self.mki),
        };
        let mki = self.mki.as_ref().map_or(&[][..], |m| m.as_bytes());
        self.keys
            .protect_rtp(&mut buf[..total], layout, header.ssrc, index, mki);
        stream.sent.mark(header.sequence);
        stream.highest = stream.highest.max(index);
        self.srtp_budget.used += 1;
        Ok(total)
    }

    /// RTCP in, SRTCP out: encrypted after the first 8 bytes, `E=1 || index`, MKI and tag
    /// appended (RFC 3711 §3.4; RFC 7714 §9 for AEAD).
    pub fn protect_rtcp(&mut self, rtcp: &[u8]) -> Result<Bytes, SrtpError> {
        let mut out = vec![0; rtcp.len() + self.rtcp_overhead()];
        let len = self.protect_rtcp_into(rtcp, &mut out)?;
        out.truncate(len);
        Ok(out.into())
    }

    /// Like [`protect_rtcp`](Self::protect_rtcp), into a caller's buffer. No allocation.
    pub fn protect_rtcp_into(&mut self, rtcp: &[u8], out: &mut [u8]) -> Result<usize, SrtpError> {
        let total = rtcp.len() + self.rtcp_overhead();
        let out = out.get_mut(..total).ok_or(SrtpError::Malformed(
            "no room for the SRTCP trailer in the output buffer",
        ))?;
        out[..rtcp.len()].copy_from_slice(rtcp);
        self.protect_rtcp_in_place(out, rtcp.len())
    }

    /// Protects the RTCP packet in `buf[..len]` in place; `buf` must have room for
    /// [`rtcp_overhead`](Self::rtcp_overhead) more bytes. Returns the SRTCP packet's length.
    pub(crate) fn protect_rtcp_in_place(
        &mut self,
        buf: &mut [u8],
        len: usize,
    ) -> Result<usize, SrtpError> {
        let rtcp = buf
            .get(..len)
            .ok_or(SrtpError::Malformed("length beyond the buffer"))?;
        let ssrc = check_rtcp_prefix(rtcp).map_err(SrtpError::Malformed)?;
        let total = len + self.rtcp_overhead();
        if buf.len() < total {
            return Err(SrtpError::Malformed(
                "no room for the SRTCP trailer in the buffer",
            ));
        }
        self.srtcp_budget.check()?;
        let last = self
            .rtcp
            .get_or_insert_with(ssrc, || 0)
            .map_err(|_| SrtpError::TooManySsrcs)?;
        if *last >= MAX_SRTCP_INDEX {
            return Err(SrtpError::KeyExhausted);
        }
        let index = *last + 1;
        let layout = RtcpLayout {
            payload_end: len,
            mki_len: mki_len(&self.mki),
        };
        let mki = self.mki.as_ref().map_or(&[][..], |m| m.as_bytes());
        self.keys
            .protect_rtcp(&mut buf[..total], layout, ssrc, index, mki);
        *last = index;
        self.srtcp_budget.used += 1;
        Ok(total)
    }
}

/// Unprotects what the peer of one leg sends, with the key it sent us.
///
/// State for an SSRC (its rollover counter and replay window) is made only once a packet of
/// it has authenticated, and for at most `MAX_SSRCS` of them: forged packets with ever new
/// SSRCs cost a tag check each and nothing else.
pub struct Unprotector {
    keys: Box<SessionKeys>,
    window: ReplayWindow,
    mki: Option<Mki>,
    rtp: SsrcTable<ReplayBitmap>,
    rtcp: SsrcTable<ReplayBitmap>,
    /// Packets accepted under the key, against its lifetime (libsrtp enforces a key's limit on
    /// receipt too).
    srtp_budget: Budget,
    srtcp_budget: Budget,
}

impl fmt::Debug for Unprotector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unprotector")
            .field("suite", &self.keys.suite())
            .field("window", &self.window)
            .field("rtp_ssrcs", &self.rtp.len())
            .field("rtcp_ssrcs", &self.rtcp.len())
            .finish_non_exhaustive()
    }
}

fn replay(seen: Seen) -> SrtpError {
    match seen {
        Seen::Duplicate => SrtpError::Replay,
        Seen::TooOld => SrtpError::TooOld,
    }
}

impl Unprotector {
    /// A context that checks and decrypts with `key` (the peer's, from its `a=crypto`).
    pub fn new(key: &MasterKey, window: ReplayWindow) -> Result<Self, SetupError> {
        Ok(Self {
            keys: session_keys(key)?,
            window,
            mki: key.mki(),
            rtp: SsrcTable::new(),
            rtcp: SsrcTable::new(),
            srtp_budget: Budget::new(MAX_SRTP_PACKETS, key.lifetime()),
            srtcp_budget: Budget::new(MAX_SRTCP_PACKETS, key.lifetime()),
        })
    }

    /// The suite this context unprotects.
    pub(crate) fn suite(&self) -> SrtpSuite {
        self.keys.suite()
    }

    /// SRTP in, RTP out, only if the tag verifies and the index is new.
    pub fn unprotect_rtp(&mut self, srtp: &[u8]) -> Result<Bytes, SrtpError> {
        let mut buf = srtp.to_vec();
        let len = self.unprotect_rtp_in_place(&mut buf)?;
        buf.truncate(len);
        Ok(buf.into())
    }

    /// Checks and decrypts the SRTP packet in `buf` in place and returns the length of the RTP
    /// packet now at its start. No allocation. A refused packet leaves the buffer as it was, so
    /// the caller may try it with another context (the keys before a rekey).
    ///
    /// The order is: lengths, MKI, tag (constant time), replay window, decryption; state
    /// changes only after all passed.
    pub fn unprotect_rtp_in_place(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let header = RtpHeader::parse(buf).map_err(SrtpError::Malformed)?;
        self.srtp_budget.check()?;
        let mki_len = mki_len(&self.mki);
        let trailer = self.suite().srtp_overhead() + mki_len;
        let Some(payload_end) = buf.len().checked_sub(trailer).filter(|&e| e >= header.len) else {
            return Err(SrtpError::Malformed(
                "shorter than its header, MKI and SRTP tag",
            ));
        };
        if let Some(mki) = &self.mki {
            let at = if self.suite().is_aead() {
                buf.len() - mki_len
            } else {
                payload_end
            };
            if buf[at..at + mki_len] != *mki.as_bytes() {
                return Err(SrtpError::AuthFailed);
            }
        }
        let layout = RtpLayout {
            header: header.len,
            payload_end,
            mki_len,
        };
        // RFC 3711 §3.3.1: the index from the highest authenticated one, or SEQ for a new
        // stream (rollover counter 0).
        let known = self.rtp.get_mut(header.ssrc);
        let index = match known.as_ref().and_then(|w| w.highest()) {
            Some(highest) => estimate_index(highest, header.sequence).ok_or(SrtpError::TooOld)?,
            None => u64::from(header.sequence),
        };
        self.keys
            .authenticate_rtp(buf, layout, header.ssrc, index)
            .map_err(|_| SrtpError::AuthFailed)?;
        let window = self.window.packets();
        let admitted = match self.rtp.get_mut(header.ssrc) {
            Some(stream) => Ok(stream),
            None => self
                .rtp
                .get_or_insert_with(header.ssrc, || ReplayBitmap::new(window))
                .map_err(|_| SrtpError::TooManySsrcs),
        };
        let stream = match admitted.and_then(|s| s.check(index).map_err(replay).map(|()| s)) {
            Ok(stream) => stream,
            Err(error) => {
                self.keys.restore_rtp(buf, layout, header.ssrc, index);
                return Err(error);
            }
        };
        self.keys.decrypt_rtp(buf, layout, header.ssrc, index);
        stream.accept(index);
        self.srtp_budget.used += 1;
        Ok(payload_end)
    }

    /// SRTCP in, RTCP out, only if the tag verifies and the index is new.
    pub fn unprotect_rtcp(&mut self, srtcp: &[u8]) -> Result<Bytes, SrtpError> {
        let mut buf = srtcp.to_vec();
        let len = self.unprotect_rtcp_in_place(&mut buf)?;
        buf.truncate(len);
        Ok(buf.into())
    }

    /// Checks and decrypts the SRTCP packet in `buf` in place and returns the length of the
    /// RTCP packet now at its start. No allocation; as
    /// [`unprotect_rtp_in_place`](Self::unprotect_rtp_in_place) otherwise.
    pub fn unprotect_rtcp_in_place(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let ssrc = check_rtcp_prefix(buf).map_err(SrtpError::Malformed)?;
        self.srtcp_budget.check()?;
        let mki_len = mki_len(&self.mki);
        let suite = self.suite();
        let trailer = suite.srtcp_overhead() + mki_len;
        let Some(payload_end) = buf
            .len()
            .checked_sub(trailer)
            .filter(|&e| e >= RTCP_CLEAR_PREFIX_LEN)
        else {
            return Err(SrtpError::Malformed(
                "shorter than an SRTCP header and trailer",
            ));
        };
        // Where `E || index` and the MKI are.
        let (index_at, mki_at) = if suite.is_aead() {
            let at = payload_end + suite.srtcp_tag_len();
            (at, at + SRTCP_INDEX_LEN)
        } else {
            (payload_end, payload_end + SRTCP_INDEX_LEN)
        };
        if let Some(mki) = &self.mki {
            if buf[mki_at..mki_at + mki_len] != *mki.as_bytes() {
                return Err(SrtpError::AuthFailed);
            }
        }
        let e_index = u32::from_be_bytes([
            buf[index_at],
            buf[index_at + 1],
            buf[index_at + 2],
            buf[index_at + 3],
        ]);
        let layout = RtcpLayout {
            payload_end,
            mki_len,
        };
        self.keys
            .authenticate_rtcp(buf, layout, ssrc, e_index)
            .map_err(|_| SrtpError::AuthFailed)?;
        let index = e_index & MAX_SRTCP_INDEX;
        let window = self.window.packets();
        let admitted = if e_index >> 31 == 0 {
            // E=0, "not encrypted", needs the UNENCRYPTED_SRTCP session parameter (RFC 4568
            // §6.3.2), which we never negotiate.
            Err(SrtpError::AuthFailed)
        } else {
            match self.rtcp.get_mut(ssrc) {
                Some(stream) => Ok(stream),
                None => self
                    .rtcp
                    .get_or_insert_with(ssrc, || ReplayBitmap::new(window))
                    .map_err(|_| SrtpError::TooManySsrcs),
            }
        };
        let checked = admitted.and_then(|s| s.check(u64::from(index)).map_err(replay).map(|()| s));
        let stream = match checked {
            Ok(stream) => stream,
            Err(error) => {
                self.keys.restore_rtcp(buf, layout, ssrc, e_index);
                return Err(error);
            }
        };
        self.keys.decrypt_rtcp(buf, layout, ssrc, index);
        stream.accept(u64::from(index));
        self.srtcp_budget.used += 1;
        Ok(payload_end)
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
    fn packets_older_than_the_window_are_refused_as_too_old() {
        let (mut tx, mut rx) = pair(SrtpSuite::AesCm128HmacSha1_80);
        let old = tx.protect_rtp(&rtp(1, 7, &[1; 20])).unwrap();
        let newer = tx.protect_rtp(&rtp(1 + 128, 7, &[1; 20])).unwrap();
        assert!(rx.unprotect_rtp(&newer).is_ok());
        assert_eq!(rx.unprotect_rtp(&old), Err(SrtpError::TooOld));
        // A larger window takes a packet 200 late, once; 300 late is still too old.
        let key = MasterKey::generate(SrtpSuite::AesCm128HmacSha1_80).unwrap();
        let mut tx = Protector::new(&key).unwrap();
        let mut rx = Unprotector::new(&key, ReplayWindow::new(256).unwrap()).unwrap();
        let [too_old, late, newest] =
            [1000, 1100, 1300].map(|seq| tx.protect_rtp(&rtp(seq, 7, &[1; 20])).unwrap());
        assert!(rx.unprotect_rtp(&newest).is_ok());
        assert!(rx.unprotect_rtp(&late).is_ok());
        assert_eq!(rx.unprotect_rtp(&late), Err(SrtpError::Replay));
        assert_eq!(rx.unprotect_rtp(&too_old), Err(SrtpError::TooOld));
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
            let e_at = clear_e.len() - if suite.is_aead() { 4 } else { 14 };
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

    /// Every single-bit flip of an SRTP or SRTCP packet is refused: past the header always as
    /// an authentication failure, in the header possibly as malformed (version, CC, X).
    #[test]
    fn every_single_bit_flip_is_refused() {
        for suite in SrtpSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let srtp = tx.protect_rtp(&rtp(7, 0x0102_0304, &[0x5A; 160])).unwrap();
            let srtcp = tx.protect_rtcp(&sender_report(0x0102_0304)).unwrap();
            for (packet, is_rtcp) in [(&srtp, false), (&srtcp, true)] {
                for bit in 0..packet.len() * 8 {
                    let mut bad = packet.to_vec();
                    bad[bit / 8] ^= 1 << (bit % 8);
                    let result = if is_rtcp {
                        rx.unprotect_rtcp(&bad)
                    } else {
                        rx.unprotect_rtp(&bad)
                    };
                    match result {
                        Err(SrtpError::AuthFailed) => {}
                        Err(SrtpError::Malformed(_)) if bit < 8 => {}
                        other => panic!("{suite} rtcp={is_rtcp} bit {bit}: {other:?}"),
                    }
                }
            }
            // Nothing was admitted by the forgeries; the genuine packets still pass, once.
            assert!(rx.rtp.is_empty() && rx.rtcp.is_empty(), "{suite}");
            assert!(rx.unprotect_rtp(&srtp).is_ok(), "{suite}");
            assert!(rx.unprotect_rtcp(&srtcp).is_ok(), "{suite}");
        }
    }

    #[test]
    fn every_truncation_is_refused() {
        for suite in SrtpSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let srtp = tx.protect_rtp(&rtp(7, 7, &[0x5A; 40])).unwrap();
            let srtcp = tx.protect_rtcp(&sender_report(7)).unwrap();
            for len in 0..srtp.len() {
                let short = rx.unprotect_rtp(&srtp[..len]);
                assert!(
                    matches!(short, Err(SrtpError::Malformed(_) | SrtpError::AuthFailed)),
                    "{suite} SRTP cut to {len}: {short:?}"
                );
            }
            for len in 0..srtcp.len() {
                let short = rx.unprotect_rtcp(&srtcp[..len]);
                assert!(
                    matches!(short, Err(SrtpError::Malformed(_) | SrtpError::AuthFailed)),
                    "{suite} SRTCP cut to {len}: {short:?}"
                );
            }
            // Too short for even the tag: malformed, not an authentication failure.
            let tag_only = srtp.len() - 40;
            assert!(matches!(
                rx.unprotect_rtp(&srtp[..tag_only - 1]),
                Err(SrtpError::Malformed(_))
            ));
        }
    }

    /// The rollover counter follows the sequence number through several wraps, with packets
    /// late across a wrap, and the receiver agrees.
    #[test]
    fn rollover_counter_across_wraps() {
        for suite in [SrtpSuite::AesCm128HmacSha1_32, SrtpSuite::AeadAes128Gcm] {
            let (mut tx, mut rx) = pair(suite);
            let mut held = None;
            for n in 0..(2 * 65536u32 + 100) {
                let seq = (n.wrapping_add(65000) & 0xFFFF) as u16;
                let srtp = tx.protect_rtp(&rtp(seq, 9, &[n as u8; 8])).unwrap();
                if seq == 65535 {
                    // Delivered after 0 and 1 of the next cycle.
                    held = Some(srtp);
                    continue;
                }
                assert_eq!(
                    rx.unprotect_rtp(&srtp).unwrap()[12..],
                    [n as u8; 8],
                    "{suite} #{n}"
                );
                if seq == 1 {
                    let late = held.take().unwrap();
                    assert!(
                        rx.unprotect_rtp(&late).is_ok(),
                        "{suite}: late across the wrap"
                    );
                    assert_eq!(rx.unprotect_rtp(&late), Err(SrtpError::Replay));
                }
            }
            let highest = rx.rtp.get_mut(9).unwrap().highest().unwrap();
            assert_eq!(highest >> 16, 2, "{suite}: ROC");
        }
    }

    #[test]
    fn mki_is_sent_and_checked() {
        for suite in SrtpSuite::ALL {
            let key = MasterKey::generate(suite).unwrap();
            let with_mki = key.clone().with_mki(Mki::new(0x0A0B, 2).unwrap());
            let mut tx = Protector::new(&with_mki).unwrap();
            let mut rx = Unprotector::new(&with_mki, ReplayWindow::DEFAULT).unwrap();
            let plain = rtp(1, 7, &[3; 50]);
            let srtp = tx.protect_rtp(&plain).unwrap();
            assert_eq!(
                srtp.len(),
                plain.len() + suite.srtp_overhead() + 2,
                "{suite}"
            );
            let mki_at = if suite.is_aead() {
                srtp.len() - 2
            } else {
                plain.len()
            };
            assert_eq!(&srtp[mki_at..mki_at + 2], &[0x0A, 0x0B], "{suite}");
            assert_eq!(rx.unprotect_rtp(&srtp).unwrap(), plain, "{suite}");

            let sr = sender_report(7);
            let srtcp = tx.protect_rtcp(&sr).unwrap();
            assert_eq!(srtcp.len(), sr.len() + suite.srtcp_overhead() + 2);
            assert_eq!(rx.unprotect_rtcp(&srtcp).unwrap(), sr, "{suite}");

            // Another MKI, or none expected: refused.
            let other = key.clone().with_mki(Mki::new(0x0A0C, 2).unwrap());
            let mut rx_other = Unprotector::new(&other, ReplayWindow::DEFAULT).unwrap();
            let next = tx.protect_rtp(&rtp(2, 7, &[3; 50])).unwrap();
            assert_eq!(rx_other.unprotect_rtp(&next), Err(SrtpError::AuthFailed));
            let mut rx_none = Unprotector::new(&key, ReplayWindow::DEFAULT).unwrap();
            assert!(rx_none.unprotect_rtp(&next).is_err());
        }
    }

    #[test]
    fn key_lifetime_and_index_limits() {
        let short = MasterKey::generate(SrtpSuite::AesCm128HmacSha1_80)
            .unwrap()
            .with_lifetime(3);
        let mut tx = Protector::new(&short).unwrap();
        let mut rx = Unprotector::new(&short, ReplayWindow::DEFAULT).unwrap();
        for seq in 0..3 {
            let srtp = tx.protect_rtp(&rtp(seq, 7, &[0; 10])).unwrap();
            rx.unprotect_rtp(&srtp).unwrap();
        }
        assert_eq!(
            tx.protect_rtp(&rtp(3, 7, &[0; 10])),
            Err(SrtpError::KeyExhausted)
        );
        for _ in 0..3 {
            let srtcp = tx.protect_rtcp(&sender_report(7)).unwrap();
            rx.unprotect_rtcp(&srtcp).unwrap();
        }
        assert_eq!(
            tx.protect_rtcp(&sender_report(7)),
            Err(SrtpError::KeyExhausted)
        );
        // The receiver holds a peer to the lifetime it declared: a fourth packet under the key
        // (from a sender that ignores the limit) is refused.
        let mut unlimited = Protector::new(&short.clone().with_lifetime(10)).unwrap();
        let fourth = (0..4)
            .map(|seq| unlimited.protect_rtp(&rtp(seq, 8, &[0; 10])).unwrap())
            .last()
            .unwrap();
        assert_eq!(rx.unprotect_rtp(&fourth), Err(SrtpError::KeyExhausted));
        let key = MasterKey::generate(SrtpSuite::AesCm128HmacSha1_80).unwrap();

        // The 31-bit SRTCP index and the 48-bit SRTP index run out too.
        let mut tx = Protector::new(&key).unwrap();
        tx.protect_rtcp(&sender_report(7)).unwrap();
        *tx.rtcp.get_mut(7).unwrap() = MAX_SRTCP_INDEX;
        assert_eq!(
            tx.protect_rtcp(&sender_report(7)),
            Err(SrtpError::KeyExhausted)
        );
        tx.protect_rtp(&rtp(65535, 7, &[0; 10])).unwrap();
        tx.rtp.get_mut(7).unwrap().highest = MAX_SRTP_INDEX;
        assert_eq!(
            tx.protect_rtp(&rtp(0, 7, &[0; 10])),
            Err(SrtpError::KeyExhausted)
        );
    }

    #[test]
    fn the_fast_path_works_in_callers_buffers() {
        for suite in SrtpSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let plain = rtp(1, 7, &[8; 160]);
            let mut buf = [0u8; 300];
            let len = tx.protect_rtp_into(&plain, &mut buf).unwrap();
            assert_eq!(len, plain.len() + tx.rtp_overhead());
            assert_eq!(rx.unprotect_rtp_in_place(&mut buf[..len]), Ok(plain.len()));
            assert_eq!(buf[..plain.len()], plain[..]);
            // In place, with room for the trailer.
            buf[..plain.len()].copy_from_slice(&rtp(2, 7, &[8; 160]));
            let len = tx.protect_rtp_in_place(&mut buf, plain.len()).unwrap();
            assert!(rx.unprotect_rtp_in_place(&mut buf[..len]).is_ok());
            // No room: refused, nothing protected at that index.
            let mut small = [0u8; 172];
            assert!(matches!(
                tx.protect_rtp_into(&rtp(3, 7, &[8; 160]), &mut small),
                Err(SrtpError::Malformed(_))
            ));
            assert!(tx.protect_rtp_into(&rtp(3, 7, &[8; 160]), &mut buf).is_ok());

            let sr = sender_report(7);
            let len = tx.protect_rtcp_into(&sr, &mut buf).unwrap();
            assert_eq!(len, sr.len() + tx.rtcp_overhead());
            assert_eq!(rx.unprotect_rtcp_in_place(&mut buf[..len]), Ok(sr.len()));
        }
    }

    #[test]
    fn refused_packets_leave_the_buffer_as_it_was() {
        for suite in SrtpSuite::ALL {
            let (mut tx, mut rx) = pair(suite);
            let srtp = tx.protect_rtp(&rtp(1, 7, &[4; 60])).unwrap();
            let srtcp = tx.protect_rtcp(&sender_report(7)).unwrap();
            rx.unprotect_rtp(&srtp).unwrap();
            rx.unprotect_rtcp(&srtcp).unwrap();
            let mut again = srtp.to_vec();
            assert_eq!(
                rx.unprotect_rtp_in_place(&mut again),
                Err(SrtpError::Replay)
            );
            assert_eq!(again, srtp, "{suite}: replayed SRTP");
            let mut again = srtcp.to_vec();
            assert_eq!(
                rx.unprotect_rtcp_in_place(&mut again),
                Err(SrtpError::Replay)
            );
            assert_eq!(again, srtcp, "{suite}: replayed SRTCP");
            let mut forged = srtp.to_vec();
            forged[20] ^= 1;
            let copy = forged.clone();
            assert_eq!(
                rx.unprotect_rtp_in_place(&mut forged),
                Err(SrtpError::AuthFailed)
            );
            assert_eq!(forged, copy, "{suite}: forged SRTP");
        }
    }

    #[test]
    fn debug_shows_no_keys() {
        let key = MasterKey::from_bytes(SrtpSuite::AesCm128HmacSha1_80, &[0xAB; 30]).unwrap();
        let tx = Protector::new(&key).unwrap();
        let rx = Unprotector::new(&key, ReplayWindow::DEFAULT).unwrap();
        let shown = format!("{tx:?} {rx:?}");
        assert!(shown.contains("AesCm128HmacSha1_80"), "{shown}");
        for needle in ["171", "ab", "AB"] {
            assert!(!shown.contains(needle), "{shown}");
        }
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
