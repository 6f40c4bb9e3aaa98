//! RTCP sender reports (RFC 3550 §6.4.1) compounded with an SDES CNAME (§6.5), as this simulator
//! sends them every few seconds on the RTP port + 1.
//!
//! ```text
//!         0                   1                   2                   3
//!         0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//!        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! header |V=2|P|    RC   |   PT=SR=200   |             length            |
//!        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!        |                         SSRC of sender                        |
//!        +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! sender |              NTP timestamp, most significant word             |
//! info   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!        |             NTP timestamp, least significant word             |
//!        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!        |                         RTP timestamp                         |
//!        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!        |                     sender's packet count                     |
//!        +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!        |                      sender's octet count                     |
//!        +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RTCP packet type of a sender report.
pub(crate) const PT_SR: u8 = 200;
/// RTCP packet type of source description.
pub(crate) const PT_SDES: u8 = 202;
/// Seconds from the NTP epoch (1900) to the UNIX epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// The 64-bit NTP timestamp of `time`.
pub(crate) fn ntp_timestamp(time: SystemTime) -> u64 {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let seconds = since.as_secs() + NTP_UNIX_OFFSET;
    let fraction = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

/// What a sender report says about our stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SenderInfo {
    /// Our SSRC.
    pub(crate) ssrc: u32,
    /// Wallclock of the report.
    pub(crate) ntp: u64,
    /// The RTP timestamp that corresponds to `ntp`.
    pub(crate) rtp_timestamp: u32,
    /// RTP packets sent so far.
    pub(crate) packets: u32,
    /// Payload octets sent so far.
    pub(crate) octets: u32,
}

/// A compound RTCP packet: SR with no report blocks, then SDES with one CNAME item.
pub(crate) fn sender_report(info: &SenderInfo, cname: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(28 + 12 + cname.len());
    // SR: 7 words, length field is words - 1 = 6.
    out.extend_from_slice(&[0x80, PT_SR, 0, 6]);
    out.extend_from_slice(&info.ssrc.to_be_bytes());
    out.extend_from_slice(&info.ntp.to_be_bytes());
    out.extend_from_slice(&info.rtp_timestamp.to_be_bytes());
    out.extend_from_slice(&info.packets.to_be_bytes());
    out.extend_from_slice(&info.octets.to_be_bytes());

    // SDES: one chunk (SSRC, CNAME item, END item, padded to a word).
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    let sdes_start = out.len();
    out.extend_from_slice(&[0x81, PT_SDES, 0, 0]);
    out.extend_from_slice(&info.ssrc.to_be_bytes());
    out.push(1); // CNAME
    out.push(cname.len() as u8);
    out.extend_from_slice(cname);
    out.push(0); // END
    while (out.len() - sdes_start) % 4 != 0 {
        out.push(0);
    }
    let words = ((out.len() - sdes_start) / 4 - 1) as u16;
    out[sdes_start + 2..sdes_start + 4].copy_from_slice(&words.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compound_layout() {
        let info = SenderInfo {
            ssrc: 0x11223344,
            ntp: 0x0102030405060708,
            rtp_timestamp: 160,
            packets: 3,
            octets: 480,
        };
        let p = sender_report(&info, "gw@127.0.0.1");
        assert_eq!(&p[..4], &[0x80, 200, 0, 6]);
        assert_eq!(&p[8..16], &0x0102030405060708u64.to_be_bytes());
        assert_eq!(p[28], 0x81);
        assert_eq!(p[29], 202);
        let sdes_words = u16::from_be_bytes([p[30], p[31]]) as usize;
        assert_eq!(p.len(), 28 + (sdes_words + 1) * 4);
        assert_eq!(p.len() % 4, 0);
        assert_eq!(&p[38..38 + 12], b"gw@127.0.0.1");
        assert!(crate::rtp_packet::is_rtcp(&p));
    }

    #[test]
    fn ntp_of_the_unix_epoch() {
        assert_eq!(ntp_timestamp(UNIX_EPOCH), NTP_UNIX_OFFSET << 32);
        let half = UNIX_EPOCH + Duration::from_millis(500);
        assert_eq!(ntp_timestamp(half) & 0xFFFF_FFFF, 1 << 31);
    }
}
