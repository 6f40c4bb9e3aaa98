//! Builds the SDP we send on one leg from the SDP the peer sent on the other leg, as a B2BUA
//! does.
//!
//! What crosses from the other leg is only what describes the *content* of the audio stream:
//! the payload types, `a=rtpmap`, `a=fmtp`, `a=ptime`, `a=maxptime`, `a=silenceSupp`, media
//! `b=` lines and the direction. Everything that describes the other leg's *transport* is ours
//! instead: origin, `c=`, port, transport, `a=crypto`, `a=rtcp` / `a=rtcp-mux`. Everything else
//! (ICE, DTLS, `a=ssrc`, `a=mid`, `a=rtcp-fb`, `k=`, capability negotiation, vendor `a=x-*`,
//! session-level attributes) is dropped: passing attributes by an allow-list is what guarantees
//! the peer's keys can never reach the other leg, whatever attribute carries them.
//!
//! Every `m=` line other than the audio one (the first active `m=audio`) is written back with
//! port 0 and its own media, transport and formats (RFC 3264 §5.1 in an offer: "offered but not
//! to be used"; §6 in an answer: declined), so the number and order of `m=` lines is always the
//! peer's.

use std::net::IpAddr;

use sdp::description::common::{Address, Attribute, ConnectionInformation};
use sdp::description::media::{MediaDescription, MediaName, RangedPort};
use sdp::description::session::{Origin, TimeDescription, Timing};
use sdp::SessionDescription;
use zeroize::Zeroize;

use super::crypto::CryptoAttribute;
use super::session::{Direction, Encryption, MediaBody, MediaLine, PeerSdp, Proto};

/// `o=` user name of every SDP we write.
pub(super) const ORIGIN_USERNAME: &str = "mediation";

/// Audio attributes passed from one leg to the other unchanged.
const PASSED_ATTRIBUTES: [&str; 5] = ["rtpmap", "fmtp", "ptime", "maxptime", "silenceSupp"];

/// What we put in the SDP of one leg.
///
/// `Debug` shows `crypto` redacted (keys are [`MasterKeySalt`](super::crypto::MasterKeySalt)s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegSdpParams {
    /// `o=` session id: fixed for the dialog.
    pub session_id: u64,
    /// `o=` session version: incremented whenever our SDP on this leg changes.
    pub version: u64,
    /// Our media address on this leg (`o=` and session-level `c=`).
    pub address: IpAddr,
    /// Our RTP port on this leg; 0 declines the audio stream.
    pub port: u16,
    /// Transport of the audio `m=` line (`RTP/AVP` or `RTP/SAVP`).
    pub proto: Proto,
    /// Our `a=crypto` lines, in order (empty for plain RTP).
    pub crypto: Vec<CryptoAttribute>,
    /// Write `a=rtcp-mux` (else `a=rtcp:<port+1>`).
    pub rtcp_mux: bool,
    /// Write `a=encryption:<value>` (Lync's dialect: SRTP offered on `RTP/AVP`).
    pub encryption: Option<Encryption>,
}

/// The SDP for one leg, built from the peer's SDP on the other leg: an offer built from the
/// other leg's offer, or an answer built from the other leg's answer when both have the same
/// `m=` lines (see [`answer_sdp`] when that cannot be relied on). The `m=` lines keep the peer's
/// number and order; the audio one (`PeerSdp::audio_index`) carries our transport, the
/// others port 0.
pub fn leg_sdp(peer: &PeerSdp, ours: &LegSdpParams) -> String {
    let audio = peer.audio_index();
    let mut desc = session_header(ours);
    for line in peer.media_lines() {
        let md = match (Some(line.index) == audio, peer.body(line.index)) {
            (true, Some(body)) => audio_section(line, body, peer.direction_of(line.index), ours),
            _ => declined_section(line),
        };
        desc.media_descriptions.push(md);
    }
    finish(desc)
}

/// The answer we send on the leg that made `offer`, built from `peer_answer` (the answer the
/// other leg gave to the offer we derived from `offer`). The `m=` lines are exactly those of
/// `offer` (RFC 3264 §6), whatever `peer_answer` contains: its audio stream supplies the
/// codecs and direction of our audio line; if it has none, our audio line is declined.
pub fn answer_sdp(offer: &PeerSdp, peer_answer: &PeerSdp, ours: &LegSdpParams) -> String {
    let offer_audio = offer.audio_index();
    let answer_audio = peer_answer.audio_index().and_then(|i| {
        let line = peer_answer.media_lines().get(i)?;
        let body = peer_answer.body(i)?;
        Some((line, body, peer_answer.direction_of(i)))
    });
    let mut desc = session_header(ours);
    for line in offer.media_lines() {
        let md = match (Some(line.index) == offer_audio, answer_audio) {
            (true, Some((answer_line, body, direction))) => {
                // Codecs from the answer, position and media type from the offer.
                let line = MediaLine {
                    index: line.index,
                    kind: line.kind.clone(),
                    port: answer_line.port,
                    proto: line.proto.clone(),
                    formats: answer_line.formats.clone(),
                };
                audio_section(&line, body, direction, ours)
            }
            _ => declined_section(line),
        };
        desc.media_descriptions.push(md);
    }
    finish(desc)
}

fn address_type(address: IpAddr) -> &'static str {
    match address {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn session_header(ours: &LegSdpParams) -> SessionDescription {
    let addr_type = address_type(ours.address).to_string();
    SessionDescription {
        version: 0,
        origin: Origin {
            username: ORIGIN_USERNAME.to_string(),
            session_id: ours.session_id,
            session_version: ours.version,
            network_type: "IN".to_string(),
            address_type: addr_type.clone(),
            unicast_address: ours.address.to_string(),
        },
        session_name: "-".to_string(),
        connection_information: Some(ConnectionInformation {
            network_type: "IN".to_string(),
            address_type: addr_type,
            address: Some(Address {
                address: ours.address.to_string(),
                ttl: None,
                range: None,
            }),
        }),
        time_descriptions: vec![TimeDescription {
            timing: Timing {
                start_time: 0,
                stop_time: 0,
            },
            repeat_times: Vec::new(),
        }],
        ..SessionDescription::default()
    }
}

fn media_name(line: &MediaLine, port: u16, proto: &str, formats: &[String]) -> MediaName {
    MediaName {
        media: line.kind.as_str().to_string(),
        port: RangedPort {
            value: port as isize,
            range: None,
        },
        // One element: the crate joins elements with `/`, so the transport prints as written.
        protos: vec![proto.to_string()],
        formats: formats.to_vec(),
    }
}

/// `m=<media> 0 <proto> <formats>` and nothing else.
fn declined_section(line: &MediaLine) -> MediaDescription {
    MediaDescription {
        media_name: media_name(line, 0, line.proto.as_str(), &line.formats),
        ..MediaDescription::default()
    }
}

fn audio_section(
    line: &MediaLine,
    body: &MediaBody,
    direction: Option<Direction>,
    ours: &LegSdpParams,
) -> MediaDescription {
    // Declined by us, or disabled/declined by the peer: it stays at port 0.
    if ours.port == 0 || line.port == 0 || line.formats.is_empty() {
        return declined_section(line);
    }
    let mut md = MediaDescription {
        media_name: media_name(line, ours.port, ours.proto.as_str(), &line.formats),
        ..MediaDescription::default()
    };
    md.bandwidth = body.bandwidth.clone();
    for (key, value) in &body.attributes {
        if PASSED_ATTRIBUTES.contains(&key.as_str()) {
            md.attributes
                .push(Attribute::new(key.clone(), value.clone()));
        }
    }
    if let Some(direction) = direction {
        md.attributes
            .push(Attribute::new(direction.as_str().to_string(), None));
    }
    if ours.rtcp_mux {
        md.attributes
            .push(Attribute::new("rtcp-mux".to_string(), None));
    } else if let Some(rtcp) = ours.port.checked_add(1) {
        md.attributes
            .push(Attribute::new("rtcp".to_string(), Some(rtcp.to_string())));
    }
    for crypto in &ours.crypto {
        md.attributes.push(Attribute::new(
            "crypto".to_string(),
            Some(crypto.to_string()),
        ));
    }
    if let Some(encryption) = ours.encryption {
        md.attributes.push(Attribute::new(
            "encryption".to_string(),
            Some(encryption.as_str().to_string()),
        ));
    }
    md
}

/// Prints the SDP and wipes the copies of our keys held by the intermediate structure.
fn finish(mut desc: SessionDescription) -> String {
    let text = desc.marshal();
    for md in &mut desc.media_descriptions {
        for attribute in &mut md.attributes {
            if attribute.key == "crypto" {
                if let Some(value) = attribute.value.as_mut() {
                    value.zeroize();
                }
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sdp::session::tests::{
        BARESIP_OFFER, FREESWITCH_OFFER, HOLD_OFFER, MKI_OFFER, VIDEO_OFFER,
    };
    use crate::sdp::session::{parse, MediaKind};
    use crate::srtp::SrtpSuite;
    use std::io::Cursor;

    fn params(proto: Proto, crypto: Vec<CryptoAttribute>, rtcp_mux: bool) -> LegSdpParams {
        LegSdpParams {
            session_id: 4242,
            version: 7,
            address: "10.1.2.3".parse().unwrap(),
            port: 30000,
            proto,
            crypto,
            rtcp_mux,
            encryption: None,
        }
    }

    fn reparse_with_crate(text: &str) -> SessionDescription {
        SessionDescription::unmarshal(&mut Cursor::new(text.as_bytes())).unwrap()
    }

    /// Every base64 key of every `a=crypto`-like line of `body`.
    fn peer_keys(body: &str) -> Vec<String> {
        body.split("inline:")
            .skip(1)
            .map(|rest| {
                rest.split(|c: char| c == '|' || c.is_whitespace())
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn offer_round_trip_savp() {
        let peer = parse(FREESWITCH_OFFER.as_bytes()).unwrap();
        let ours = CryptoAttribute::generate(1, SrtpSuite::AesCm128HmacSha1_80);
        let p = params(Proto::Savp, vec![ours.clone()], false);
        let text = leg_sdp(&peer, &p);

        let desc = reparse_with_crate(&text);
        assert_eq!(desc.origin.username, "mediation");
        assert_eq!(desc.origin.session_id, 4242);
        assert_eq!(desc.origin.session_version, 7);
        assert_eq!(desc.origin.unicast_address, "10.1.2.3");
        assert_eq!(desc.session_name, "-");
        assert!(desc.attributes.is_empty());

        let back = parse(text.as_bytes()).unwrap();
        assert!(back.repairs().is_empty());
        let audio = back.audio().unwrap();
        assert_eq!(audio.port, 30000);
        assert_eq!(audio.proto, Proto::Savp);
        assert_eq!(audio.address, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(audio.formats, ["0", "8", "101"]);
        assert_eq!(audio.crypto, [ours]);
        assert_eq!(audio.rtcp_port, Some(30001));
        assert!(!audio.rtcp_mux);
        assert_eq!(audio.direction, Direction::SendRecv);

        let attrs: Vec<String> = desc.media_descriptions[0]
            .attributes
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(
            attrs[..6],
            [
                "rtpmap:0 PCMU/8000",
                "rtpmap:8 PCMA/8000",
                "rtpmap:101 telephone-event/8000",
                "fmtp:101 0-16",
                "ptime:20",
                "sendrecv",
            ]
        );
        assert_eq!(attrs[6], "rtcp:30001");
        assert!(attrs[7].starts_with("crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"));
        assert_eq!(attrs.len(), 8);

        for key in peer_keys(FREESWITCH_OFFER) {
            assert!(!text.contains(&key), "peer key leaked");
        }
        assert!(!text.contains("24681"), "peer's a=rtcp leaked: {text}");
        assert!(text.ends_with("\r\n"));
    }

    #[test]
    fn plain_rtp_toward_gateway() {
        let peer = parse(BARESIP_OFFER.as_bytes()).unwrap();
        let text = leg_sdp(&peer, &params(Proto::Avp, Vec::new(), false));
        assert!(
            text.contains("m=audio 30000 RTP/AVP 96 0 8 101\r\n"),
            "{text}"
        );
        assert!(text.contains("c=IN IP4 10.1.2.3\r\n"));
        // The peer's media-level c= is theirs; ours is only at session level.
        assert!(!text.contains("198.51.100"), "{text}");
        assert!(text.contains("b=AS:64\r\n"));
        assert!(text.contains("a=fmtp:96 stereo=1;sprop-stereo=1\r\n"));
        for dropped in ["crypto", "rtcp-mux", "ssrc", "label"] {
            assert!(
                !text.contains(&format!("a={dropped}")),
                "{dropped} in {text}"
            );
        }
        assert!(text.contains("a=rtcp:30001\r\n"));
        let audio = parse(text.as_bytes()).unwrap().audio().unwrap();
        assert_eq!(audio.proto, Proto::Avp);
        assert!(audio.crypto.is_empty());
    }

    #[test]
    fn srtp_offered_lync_style_on_rtp_avp() {
        // MS-SDPEXT / RFC 8643: RTP/AVP with a=crypto and a=encryption; the peer's own
        // a=encryption (Lync's MKI offer has none, FreeSWITCH's neither) is never copied.
        let peer = parse(MKI_OFFER.as_bytes()).unwrap();
        let ours = CryptoAttribute::generate(1, SrtpSuite::AesCm128HmacSha1_80);
        let mut p = params(Proto::Avp, vec![ours.clone()], false);
        p.encryption = Some(Encryption::Optional);
        let text = leg_sdp(&peer, &p);
        assert_eq!(text.matches("a=encryption:").count(), 1, "{text}");
        let audio = parse(text.as_bytes()).unwrap().audio().unwrap();
        assert_eq!(audio.proto, Proto::Avp);
        assert_eq!(audio.crypto, [ours]);
        assert_eq!(audio.encryption, Some(Encryption::Optional));
    }

    #[test]
    fn rtcp_mux_when_asked() {
        let peer = parse(FREESWITCH_OFFER.as_bytes()).unwrap();
        let text = leg_sdp(&peer, &params(Proto::Avp, Vec::new(), true));
        assert!(text.contains("a=rtcp-mux\r\n"));
        assert!(!text.contains("a=rtcp:"));
    }

    #[test]
    fn ice_dtls_and_vendor_lines_are_dropped() {
        let peer = parse(MKI_OFFER.as_bytes()).unwrap();
        let ours = CryptoAttribute::generate(1, SrtpSuite::AeadAes128Gcm);
        let text = leg_sdp(&peer, &params(Proto::Savp, vec![ours], false));
        for dropped in [
            "candidate",
            "ice-",
            "x-",
            "cryptoscale",
            "rtcp-fb",
            "fingerprint",
            "setup",
        ] {
            assert!(
                !text.contains(&format!("a={dropped}")),
                "{dropped} in {text}"
            );
        }
        assert!(!text.contains("b=CT"), "{text}");
        assert!(text.contains("a=maxptime:200\r\n"));
        assert!(text.contains("a=rtpmap:114 x-msrta/16000\r\n"));
        for key in peer_keys(MKI_OFFER) {
            assert!(!text.contains(&key), "peer key leaked");
        }
        let audio = parse(text.as_bytes()).unwrap().audio().unwrap();
        assert_eq!(audio.crypto.len(), 1);
        assert_eq!(audio.formats.len(), 13);
    }

    #[test]
    fn non_audio_lines_are_declined_in_place() {
        let peer = parse(VIDEO_OFFER.as_bytes()).unwrap();
        let text = leg_sdp(&peer, &params(Proto::Avp, Vec::new(), false));
        assert!(text.contains("m=video 0 RTP/AVP 99\r\n"), "{text}");
        assert!(text.contains("m=application 0 TCP/BFCP *\r\n"), "{text}");
        assert!(text.contains("m=audio 0 RTP/AVP 0\r\n"), "{text}");
        assert!(!text.contains("H264"));
        assert!(!text.contains("floorctrl"));
        let back = parse(text.as_bytes()).unwrap();
        let layout: Vec<_> = back
            .media_lines()
            .iter()
            .map(|m| (m.kind.clone(), m.port))
            .collect();
        assert_eq!(
            layout,
            [
                (MediaKind::Video, 0),
                (MediaKind::Audio, 30000),
                (MediaKind::Application, 0),
                (MediaKind::Audio, 0),
            ]
        );
        assert_eq!(back.audio().unwrap().formats, ["0", "8", "101"]);
    }

    #[test]
    fn hold_direction_passes_through() {
        let peer = parse(HOLD_OFFER.as_bytes()).unwrap();
        let text = leg_sdp(&peer, &params(Proto::Avp, Vec::new(), false));
        assert!(text.contains("a=sendonly\r\n"), "{text}");
        // Our address, not the peer's 0.0.0.0: the direction carries the hold.
        assert!(!text.contains("0.0.0.0"), "{text}");
        let audio = parse(text.as_bytes()).unwrap().audio().unwrap();
        assert_eq!(audio.direction, Direction::SendOnly);
    }

    #[test]
    fn ipv6_address() {
        let peer = parse(FREESWITCH_OFFER.as_bytes()).unwrap();
        let mut p = params(Proto::Avp, Vec::new(), false);
        p.address = "2001:db8::5".parse().unwrap();
        let text = leg_sdp(&peer, &p);
        assert!(
            text.contains("o=mediation 4242 7 IN IP6 2001:db8::5\r\n"),
            "{text}"
        );
        assert!(text.contains("c=IN IP6 2001:db8::5\r\n"));
        assert_eq!(
            parse(text.as_bytes()).unwrap().audio().unwrap().address,
            Some("2001:db8::5".parse().unwrap())
        );
    }

    #[test]
    fn port_zero_declines_audio() {
        let peer = parse(FREESWITCH_OFFER.as_bytes()).unwrap();
        let mut p = params(Proto::Savp, Vec::new(), false);
        p.port = 0;
        let text = leg_sdp(&peer, &p);
        assert!(text.contains("m=audio 0 RTP/SAVP 0 8 101\r\n"), "{text}");
        assert!(!text.contains("a="));
    }

    #[test]
    fn peer_declined_audio_stays_declined() {
        let answer = parse(
            FREESWITCH_OFFER
                .replace("m=audio 24680", "m=audio 0")
                .as_bytes(),
        )
        .unwrap();
        let p = params(Proto::Savp, Vec::new(), false);
        let text = leg_sdp(&answer, &p);
        assert!(text.contains("m=audio 0 RTP/SAVP 0 8 101\r\n"), "{text}");
        let offer = parse(FREESWITCH_OFFER.as_bytes()).unwrap();
        let text = answer_sdp(&offer, &answer, &p);
        assert!(text.contains("m=audio 0 RTP/SAVP 0 8 101\r\n"), "{text}");
    }

    #[test]
    fn answer_keeps_offer_layout() {
        // A offered video+audio+bfcp+audio; we offered B the same layout; B answers audio only
        // at a different position (a broken answer): our answer to A still has A's layout.
        let offer = parse(VIDEO_OFFER.as_bytes()).unwrap();
        let b_answer = parse(BARESIP_OFFER.as_bytes()).unwrap();
        let ours = CryptoAttribute::generate(3, SrtpSuite::AesCm128HmacSha1_32);
        let text = answer_sdp(&offer, &b_answer, &params(Proto::Savp, vec![ours], false));
        let back = parse(text.as_bytes()).unwrap();
        assert_eq!(back.media_count(), offer.media_count());
        let kinds: Vec<_> = back.media_lines().iter().map(|m| m.kind.clone()).collect();
        let offered: Vec<_> = offer.media_lines().iter().map(|m| m.kind.clone()).collect();
        assert_eq!(kinds, offered);
        let audio = back.audio().unwrap();
        assert_eq!(audio.index, 1);
        assert_eq!(audio.formats, ["96", "0", "8", "101"]);
        assert_eq!(audio.crypto[0].tag, 3);
        for key in peer_keys(BARESIP_OFFER) {
            assert!(!text.contains(&key));
        }
    }

    #[test]
    fn answer_without_audio_declines() {
        let offer = parse(FREESWITCH_OFFER.as_bytes()).unwrap();
        let b_answer = parse(VIDEO_OFFER.replace("m=audio", "m=text").as_bytes()).unwrap();
        let text = answer_sdp(&offer, &b_answer, &params(Proto::Savp, Vec::new(), false));
        assert!(text.contains("m=audio 0 RTP/SAVP 0 8 101\r\n"), "{text}");
    }
}
