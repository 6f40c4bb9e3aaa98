//! RTP packets as this simulator sends them (RFC 3550 §5.1: fixed header, PCMU payload) and
//! how it finds the payload of whatever arrives (CSRCs, header extension and padding skipped).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           timestamp                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           synchronization source (SSRC) identifier            |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |            contributing source (CSRC) identifiers             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use crate::tone::PAYLOAD_LEN;

/// Length of the fixed RTP header.
pub(crate) const HEADER_LEN: usize = 12;
/// Payload type of PCMU (RFC 3551 table 4).
pub(crate) const PT_PCMU: u8 = 0;
/// One packet as sent: header plus a 160-byte payload.
pub(crate) const PACKET_LEN: usize = HEADER_LEN + PAYLOAD_LEN;

/// Writes a 12-byte RTP header (V=2, no padding, extension or CSRC) into `out`.
pub(crate) fn write_header(
    out: &mut [u8; PACKET_LEN],
    marker: bool,
    sequence: u16,
    timestamp: u32,
    ssrc: u32,
) {
    out[0] = 0x80;
    out[1] = PT_PCMU | if marker { 0x80 } else { 0 };
    out[2..4].copy_from_slice(&sequence.to_be_bytes());
    out[4..8].copy_from_slice(&timestamp.to_be_bytes());
    out[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// The payload of an RTP packet (`None` if it is not a well-formed RTP version 2 packet).
pub(crate) fn payload(packet: &[u8]) -> Option<&[u8]> {
    let first = *packet.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let csrc_count = usize::from(first & 0x0F);
    let mut start = HEADER_LEN + 4 * csrc_count;
    if first & 0x10 != 0 {
        // Header extension: 16-bit profile, 16-bit length in 32-bit words (RFC 3550 §5.3.1).
        let ext = packet.get(start..start + 4)?;
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        start += 4 + 4 * words;
    }
    let mut end = packet.len();
    if first & 0x20 != 0 {
        // Padding: the last byte counts the padding bytes, itself included.
        let pad = usize::from(*packet.last()?);
        end = end.checked_sub(pad)?;
    }
    packet.get(start..end)
}

/// True if `packet` looks like RTCP (RFC 5761 §4: payload types 192..=223 are RTCP's).
pub(crate) fn is_rtcp(packet: &[u8]) -> bool {
    packet.len() >= 8 && packet[0] >> 6 == 2 && (192..=223).contains(&packet[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut p = [0xAAu8; PACKET_LEN];
        write_header(&mut p, true, 0x1234, 0xDEADBEEF, 0x01020304);
        assert_eq!(
            &p[..12],
            &[0x80, 0x80, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4]
        );
        assert_eq!(payload(&p).unwrap().len(), PAYLOAD_LEN);
        assert!(!is_rtcp(&p));
    }

    #[test]
    fn payload_skips_csrc_extension_and_padding() {
        // CC=1, X=1, P=1: header 12 + CSRC 4 + extension 4 + 4, payload 3, padding 2.
        let mut p = vec![0xB1, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
        p.extend_from_slice(&[7, 7, 7, 7]);
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 1, 2, 3, 4]);
        p.extend_from_slice(&[5, 6, 7]);
        p.extend_from_slice(&[0, 2]);
        assert_eq!(payload(&p), Some(&[5u8, 6, 7][..]));
        assert_eq!(payload(&[0x40; 20]), None);
        assert_eq!(payload(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), None);
    }
}
