//! The few RTP and SRTCP header fields SRTP needs, read straight from the wire with every length
//! checked, so no peer's bytes reach the SRTP transforms unless they are well formed.

/// The RTP version every packet we accept carries (RFC 3550 §5.1).
pub(crate) const RTP_VERSION: u8 = 2;

/// Bytes of the fixed RTP header.
pub(crate) const RTP_FIXED_HEADER_LEN: usize = 12;

/// Bytes of the RTCP header plus the sender's SSRC, which SRTCP leaves in the clear.
pub(crate) const RTCP_CLEAR_PREFIX_LEN: usize = 8;

/// Bytes of the `E || SRTCP index` word (RFC 3711 §3.4).
pub(crate) const SRTCP_INDEX_LEN: usize = 4;

/// What is wrong with a packet, for logs; the relay counts them all as `malformed`.
pub(crate) type Malformation = &'static str;

/// The fields of an RTP header that SRTP uses, and where the payload starts.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |V=2|P|X|  CC   |M|     PT      |       sequence number         |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                           timestamp                           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           synchronization source (SSRC) identifier            |
/// +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
/// |            contributing source (CSRC) identifiers             |
/// |                             ....  (CC of them)                |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |      defined by profile       |           length              |  (if X)
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                        header extension                       |
/// |                             .... (length 32-bit words)        |
/// ```
/// RFC 3550 §5.1 and §5.3.1. SRTP encrypts everything after this header (RFC 3711 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Synchronization source.
    pub ssrc: u32,
    /// The 16-bit sequence number (SEQ in RFC 3711).
    pub sequence: u16,
    /// Header bytes: fixed part, CSRCs and extension; the payload starts here.
    pub len: usize,
}

impl RtpHeader {
    /// Walks the header of `packet`, checking the version and that the CSRC list and header
    /// extension the header announces fit in the packet.
    pub fn parse(packet: &[u8]) -> Result<Self, Malformation> {
        if packet.len() < RTP_FIXED_HEADER_LEN {
            return Err("shorter than an RTP header");
        }
        if packet[0] >> 6 != RTP_VERSION {
            return Err("not RTP version 2");
        }
        let csrc_count = usize::from(packet[0] & 0x0F);
        let has_extension = packet[0] & 0x10 != 0;
        let mut len = RTP_FIXED_HEADER_LEN + 4 * csrc_count;
        if has_extension {
            // The extension's own 4-byte header must fit before we read its length.
            let words = packet
                .get(len + 2..len + 4)
                .ok_or("RTP header extension past the end of the packet")?;
            len += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        if len > packet.len() {
            return Err("RTP header longer than the packet");
        }
        Ok(Self {
            ssrc: u32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]),
            sequence: u16::from_be_bytes([packet[2], packet[3]]),
            len,
        })
    }
}

/// The clear prefix of an RTCP or SRTCP packet: version and the sender's SSRC.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |V=2|P|    RC   |   PT=SR or RR   |             length          |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         SSRC of sender                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
/// RFC 3550 §6.4.1.
pub fn check_rtcp_prefix(packet: &[u8]) -> Result<u32, Malformation> {
    if packet.len() < RTCP_CLEAR_PREFIX_LEN {
        return Err("shorter than an RTCP header");
    }
    if packet[0] >> 6 != RTP_VERSION {
        return Err("not RTCP version 2");
    }
    Ok(u32::from_be_bytes([
        packet[4], packet[5], packet[6], packet[7],
    ]))
}

/// Where the `E` flag of an SRTCP packet is, by suite family.
///
/// AES-CM with HMAC-SHA1 (RFC 3711 §3.4): the tag follows the index.
/// ```text
/// | RTCP header | encrypted payload |E| SRTCP index | auth tag (10) |
/// ```
/// AEAD (RFC 7714 §17): the GCM tag is part of the ciphertext, before the index.
/// ```text
/// | RTCP header | encrypted payload | GCM tag (16) |E| SRTCP index |
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtcpTrailer {
    /// Bytes after the encrypted payload that are not ciphertext: index word and HMAC tag
    /// (AES-CM), or just the index word (AEAD, whose tag is counted in `aead_tag_len`).
    pub hmac_tag_len: usize,
    /// GCM tag bytes at the end of the ciphertext (0 for AES-CM).
    pub aead_tag_len: usize,
}

impl SrtcpTrailer {
    /// Smallest possible SRTCP packet: clear prefix, tags and index word.
    pub fn min_packet_len(&self) -> usize {
        RTCP_CLEAR_PREFIX_LEN + self.aead_tag_len + SRTCP_INDEX_LEN + self.hmac_tag_len
    }

    /// Checks the length and reads the `E` flag ("1 if the current SRTCP packet is encrypted",
    /// RFC 3711 §3.4) and the 31-bit SRTCP index.
    pub fn read(&self, packet: &[u8]) -> Result<(bool, u32), Malformation> {
        if packet.len() < self.min_packet_len() {
            return Err("shorter than an SRTCP header and trailer");
        }
        let at = packet.len() - self.hmac_tag_len - SRTCP_INDEX_LEN;
        let word = u32::from_be_bytes([packet[at], packet[at + 1], packet[at + 2], packet[at + 3]]);
        Ok((word >> 31 == 1, word & 0x7FFF_FFFF))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(b0: u8, extra: &[u8], payload: usize) -> Vec<u8> {
        let mut p = vec![b0, 0, 0x12, 0x34, 0, 0, 0, 1, 0xCA, 0xFE, 0xBA, 0xBE];
        p.extend_from_slice(extra);
        p.resize(p.len() + payload, 0xAB);
        p
    }

    #[test]
    fn plain_header() {
        let h = RtpHeader::parse(&packet(0x80, &[], 160)).unwrap();
        assert_eq!(
            h,
            RtpHeader {
                ssrc: 0xCAFE_BABE,
                sequence: 0x1234,
                len: 12
            }
        );
    }

    #[test]
    fn csrcs_and_extension_count_in_the_header() {
        // CC=2, X=1 with a two-word one-byte-profile extension.
        let mut extra = vec![0; 8];
        extra.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x02, 0x10, 0xAA, 0, 0, 0x21, 1, 2, 0]);
        let h = RtpHeader::parse(&packet(0x92, &extra, 20)).unwrap();
        assert_eq!(h.len, 12 + 8 + 4 + 8);
    }

    #[test]
    fn truncated_headers_are_malformed() {
        assert!(RtpHeader::parse(&[0x80; 11]).is_err());
        assert!(
            RtpHeader::parse(&packet(0x40, &[], 10)).is_err(),
            "version 1"
        );
        assert!(
            RtpHeader::parse(&packet(0x8F, &[], 59)).is_err(),
            "15 CSRCs need 60 bytes"
        );
        assert!(
            RtpHeader::parse(&packet(0x90, &[0xBE], 0)).is_err(),
            "cut extension header"
        );
        assert!(
            RtpHeader::parse(&packet(0x90, &[0xBE, 0xDE, 0, 9], 35)).is_err(),
            "extension of 9 words in 35 bytes"
        );
        assert!(RtpHeader::parse(&packet(0x90, &[0xBE, 0xDE, 0, 9], 36)).is_ok());
    }

    /// The payload offset is checked end to end in `context` and against libsrtp.
    #[test]
    fn headers_of_every_shape_parse_to_their_length() {
        for cc in 0..=15u8 {
            for ext_words in [None, Some(0u16), Some(1), Some(7), Some(300)] {
                let mut extra = vec![0u8; 4 * usize::from(cc)];
                let mut b0 = 0x80 | cc;
                if let Some(words) = ext_words {
                    b0 |= 0x10;
                    extra.extend_from_slice(&[0x10, 0x00]);
                    extra.extend_from_slice(&words.to_be_bytes());
                    extra.resize(extra.len() + 4 * usize::from(words), 0);
                }
                let p = packet(b0, &extra, 3);
                let h = RtpHeader::parse(&p).unwrap();
                assert_eq!(h.len, p.len() - 3);
            }
        }
    }

    #[test]
    fn srtcp_trailer_reads_e_flag_and_index() {
        let aes = SrtcpTrailer {
            hmac_tag_len: 10,
            aead_tag_len: 0,
        };
        let mut p = vec![0x81, 0xC8, 0, 1, 1, 2, 3, 4, 9, 9];
        p.extend_from_slice(&[0x80, 0, 0, 5]);
        p.extend_from_slice(&[0; 10]);
        assert_eq!(aes.read(&p), Ok((true, 5)));
        assert!(aes.read(&p[..21]).is_err());

        let gcm = SrtcpTrailer {
            hmac_tag_len: 0,
            aead_tag_len: 16,
        };
        let mut p = vec![0x81, 0xC8, 0, 1, 1, 2, 3, 4];
        p.extend_from_slice(&[0; 16]);
        p.extend_from_slice(&[0x7F, 0xFF, 0xFF, 0xFF]);
        assert_eq!(gcm.read(&p), Ok((false, 0x7FFF_FFFF)));
        assert!(gcm.read(&p[..27]).is_err());
    }

    #[test]
    fn rtcp_prefix() {
        assert_eq!(
            check_rtcp_prefix(&[0x81, 0xC8, 0, 1, 0xCA, 0xFE, 0xBA, 0xBE]),
            Ok(0xCAFE_BABE)
        );
        assert!(check_rtcp_prefix(&[0x81, 0xC8, 0, 1, 0xCA, 0xFE, 0xBA]).is_err());
        assert!(check_rtcp_prefix(&[0x01, 0xC8, 0, 1, 0xCA, 0xFE, 0xBA, 0xBE]).is_err());
    }
}
