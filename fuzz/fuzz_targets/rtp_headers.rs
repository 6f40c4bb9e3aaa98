//! RTP/RTCP headers of received datagrams, read as the relay reads them: `media::packet::classify`
//! (RTP or RTCP on this port, with or without rtcp-mux), then the SRTP layer's header walkers
//! `srtp::wire::{RtpHeader::parse, check_rtcp_prefix, SrtcpTrailer::read}`.
//!
//! Input: byte 0 selects the port, rtcp-mux and the SRTCP trailer layout; the rest is the
//! datagram.
//!
//! Checked beyond "no panic": an accepted RTP header lies within the packet, is 12 bytes plus a
//! multiple of 4, and equal to the length RFC 3550 gives (CSRCs and extension);
//! what `classify` accepts has the version and length it promises.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mediation::media::{classify, looks_like_rtcp, PacketKind, Port};
use mediation::srtp::{check_rtcp_prefix, RtpHeader, SrtcpTrailer};

fuzz_target!(|data: &[u8]| {
    let [flags, datagram @ ..] = data else {
        return;
    };
    let port = if flags & 1 == 0 {
        Port::Rtp
    } else {
        Port::Rtcp
    };
    let rtcp_mux = flags & 2 != 0;
    let trailer = if flags & 4 == 0 {
        SrtcpTrailer {
            hmac_tag_len: 10,
            aead_tag_len: 0,
        }
    } else {
        SrtcpTrailer {
            hmac_tag_len: 0,
            aead_tag_len: 16,
        }
    };

    match classify(datagram, port, rtcp_mux) {
        Ok(PacketKind::Rtp) => {
            assert_eq!(port, Port::Rtp);
            assert!(datagram.len() >= 12 && datagram[0] >> 6 == 2);
            assert!(!looks_like_rtcp(datagram[1]));
        }
        Ok(PacketKind::Rtcp) => {
            assert!(datagram.len() >= 8 && datagram[0] >> 6 == 2);
            assert!(port == Port::Rtcp || (rtcp_mux && looks_like_rtcp(datagram[1])));
        }
        Err(_) => {}
    }

    if let Ok(header) = RtpHeader::parse(datagram) {
        assert!(header.len <= datagram.len(), "header past the packet");
        assert!(
            header.len >= 12 && (header.len - 12) % 4 == 0,
            "odd header length"
        );
        assert_eq!(
            header.sequence,
            u16::from_be_bytes([datagram[2], datagram[3]])
        );
        // The header length computed again from RFC 3550 §5.1/§5.3.1, independently.
        let csrcs = usize::from(datagram[0] & 0x0f);
        let mut expected = 12 + 4 * csrcs;
        if datagram[0] & 0x10 != 0 {
            let words = u16::from_be_bytes([datagram[expected + 2], datagram[expected + 3]]);
            expected += 4 + 4 * usize::from(words);
        }
        assert_eq!(expected, header.len, "header length differs from RFC 3550");
        assert_eq!(
            header.ssrc,
            u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]])
        );
    }

    if let Ok(ssrc) = check_rtcp_prefix(datagram) {
        assert_eq!(
            ssrc,
            u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]])
        );
    }
    if let Ok((_encrypted, index)) = trailer.read(datagram) {
        assert!(datagram.len() >= trailer.min_packet_len());
        assert!(index <= 0x7FFF_FFFF);
    }
});
