//! In-dialog offers (re-INVITE, UPDATE) as a real gateway handles them: the answer to a peer's
//! re-offer (same codec, mirrored direction, SRTP keys kept or changed, RFC 3264 §8 and
//! RFC 4568 §7.1.4), our own re-offer to put the call on hold and resume it, and what an answer
//! changes for the media. Pure: text in, decisions out.

use std::net::SocketAddr;

use mediation::sdp::{
    choose_crypto, AudioStream, CryptoAttribute, Direction, MasterKeySalt, Proto,
};
use mediation::srtp::{MasterKey, SrtpSuite};

use crate::negotiate::{audio_of, key_of, render, LocalMedia, MediaPlan, SdpSpec, PCMU};

/// Payload types the simulator can send and verify, in preference order.
pub(crate) const SUPPORTED_CODECS: &[&str] = &[PCMU];

/// The SDP state of an established call: enough to answer or make a re-offer.
#[derive(Debug, Clone)]
pub(crate) struct SdpState {
    /// Our media address and port (they never change).
    pub(crate) local: LocalMedia,
    /// `o=` session id.
    pub(crate) session_id: u64,
    /// `o=` version of the last SDP we sent.
    pub(crate) version: u64,
    /// Transport on our `m=` line.
    pub(crate) proto: String,
    /// Payload type in use.
    pub(crate) codec: String,
    /// The key we protect with (`None`: plain RTP).
    pub(crate) ours: Option<MasterKey>,
    /// The key the peer protects with.
    pub(crate) theirs: Option<MasterKey>,
    /// Tag of the `a=crypto` in use.
    pub(crate) tag: u32,
    /// Our direction, as last sent.
    pub(crate) direction: Direction,
    /// Where the peer wants RTP and RTCP.
    pub(crate) remote: (SocketAddr, SocketAddr),
}

impl SdpState {
    /// The state right after the INVITE's offer/answer (first SDP version, `sendrecv`).
    pub(crate) fn after_setup(local: LocalMedia, session_id: u64, plan: &MediaPlan) -> Self {
        Self {
            local,
            session_id,
            version: 1,
            proto: plan.profile().into(),
            codec: PCMU.into(),
            ours: plan.srtp.as_ref().map(|k| k.ours.clone()),
            theirs: plan.srtp.as_ref().map(|k| k.theirs.clone()),
            tag: 1,
            direction: Direction::SendRecv,
            remote: (plan.remote_rtp, plan.remote_rtcp),
        }
    }

    /// Our `a=crypto`, if SRTP.
    fn crypto(&self) -> Vec<CryptoAttribute> {
        self.ours
            .as_ref()
            .and_then(|key| attribute(self.tag, key))
            .into_iter()
            .collect()
    }

    /// Our SDP for this state.
    pub(crate) fn sdp(&self) -> String {
        render(&SdpSpec {
            local: self.local,
            session_id: self.session_id,
            version: self.version,
            proto: &self.proto,
            crypto: &self.crypto(),
            direction: self.direction,
        })
    }
}

/// An `a=crypto` carrying `key`.
fn attribute(tag: u32, key: &MasterKey) -> Option<CryptoAttribute> {
    let key_salt = MasterKeySalt::from_bytes(key.suite(), key.key_and_salt().to_vec()).ok()?;
    Some(CryptoAttribute::new(tag, key.suite(), key_salt))
}

/// What an offer/answer exchange changes for the media of a call.
#[derive(Debug, Clone)]
pub(crate) struct MediaChange {
    /// We may send (our direction and the peer's allow it, and the peer has an address).
    pub(crate) send: bool,
    /// The call is on hold (either side's direction is not `sendrecv`).
    pub(crate) held: bool,
    /// Where to send RTP and RTCP now.
    pub(crate) remote: (SocketAddr, SocketAddr),
    /// A new key to unprotect with (the old one stays valid a little longer).
    pub(crate) new_theirs: Option<MasterKey>,
    /// A new key to protect with.
    pub(crate) new_ours: Option<MasterKey>,
}

/// The answer direction for an offered one (RFC 3264 §6.1).
pub(crate) fn mirror(offered: Direction) -> Direction {
    match offered {
        Direction::SendRecv => Direction::SendRecv,
        Direction::SendOnly => Direction::RecvOnly,
        Direction::RecvOnly => Direction::SendOnly,
        Direction::Inactive => Direction::Inactive,
    }
}

fn sends(direction: Direction) -> bool {
    matches!(direction, Direction::SendRecv | Direction::SendOnly)
}

fn receives(direction: Direction) -> bool {
    matches!(direction, Direction::SendRecv | Direction::RecvOnly)
}

/// The codec of the answer: the current one if offered, else the first offered one we
/// support, else none.
pub(crate) fn choose_codec(
    current: &str,
    offered: &[String],
    supported: &[&str],
) -> Option<String> {
    if offered.iter().any(|f| f == current) && supported.contains(&current) {
        return Some(current.into());
    }
    offered
        .iter()
        .find(|f| supported.contains(&f.as_str()))
        .cloned()
}

/// The peer's direction as it affects us: `c=0.0.0.0` (RFC 2543 hold) means "do not send to
/// me", whatever the attribute says.
fn effective_direction(audio: &AudioStream) -> Direction {
    match (
        audio.address.is_some_and(|a| a.is_unspecified()),
        audio.direction,
    ) {
        (false, d) => d,
        (true, Direction::SendRecv | Direction::SendOnly) => Direction::SendOnly,
        (true, _) => Direction::Inactive,
    }
}

/// The peer's media addresses, or the current ones when the SDP has none usable (hold by
/// `c=0.0.0.0`).
fn remote_of(audio: &AudioStream, current: (SocketAddr, SocketAddr)) -> (SocketAddr, SocketAddr) {
    match audio.address {
        Some(ip) if !ip.is_unspecified() => {
            let rtcp = audio
                .rtcp_port
                .unwrap_or_else(|| audio.port.saturating_add(1));
            (SocketAddr::new(ip, audio.port), SocketAddr::new(ip, rtcp))
        }
        _ => current,
    }
}

/// Keys after a re-offer: our answer's `a=crypto` (tag, our key) and the keys that changed.
struct KeyAnswer {
    tag: u32,
    ours: Option<MasterKey>,
    theirs: Option<MasterKey>,
    new_ours: Option<MasterKey>,
    new_theirs: Option<MasterKey>,
}

/// SRTP in a re-offer on a call whose keys are `state.ours`/`state.theirs`: a key different
/// from the current one becomes the new receive key; ours is kept unless `rekey` (or the suite
/// changes).
fn answer_keys(state: &SdpState, audio: &AudioStream, rekey: bool) -> Result<KeyAnswer, String> {
    let (Some(current_theirs), Some(current_ours)) = (&state.theirs, &state.ours) else {
        if audio.proto == Proto::Savp {
            return Err("an SRTP-only re-offer on a plain RTP call".into());
        }
        return Ok(KeyAnswer {
            tag: state.tag,
            ours: None,
            theirs: None,
            new_ours: None,
            new_theirs: None,
        });
    };
    if audio.crypto.is_empty() {
        return Err("the re-offer drops SRTP (no a=crypto)".into());
    }
    let chosen = choose_crypto(&audio.crypto, &[current_theirs.suite()])
        .or_else(|| choose_crypto(&audio.crypto, &SrtpSuite::ALL))
        .ok_or("no usable a=crypto in the re-offer")?;
    let (suite, offered) = key_of(chosen)?;
    let same_theirs =
        suite == current_theirs.suite() && offered.key_and_salt() == current_theirs.key_and_salt();
    let new_ours = if rekey || suite != current_ours.suite() {
        Some(MasterKey::generate(suite).map_err(|e| e.to_string())?)
    } else {
        None
    };
    Ok(KeyAnswer {
        tag: chosen.tag,
        ours: Some(new_ours.clone().unwrap_or_else(|| current_ours.clone())),
        theirs: Some(offered.clone()),
        new_ours,
        new_theirs: (!same_theirs).then_some(offered),
    })
}

/// What to do with a peer's re-offer.
#[derive(Debug, Clone)]
pub(crate) enum Reanswer {
    /// Answer 200 with `sdp`; the call's state becomes `state`, its media changes so.
    Accept {
        /// Our answer.
        sdp: String,
        /// The state after the exchange.
        state: Box<SdpState>,
        /// What the media does now.
        change: MediaChange,
    },
    /// Answer 488 for this reason.
    Reject(String),
}

/// Answers a re-offer (a re-INVITE or UPDATE with SDP) on a call in `state`. With `rekey`, our
/// answer carries a fresh key of ours.
pub(crate) fn answer_reoffer(state: &SdpState, offer: &[u8], rekey: bool) -> Reanswer {
    match try_answer(state, offer, rekey) {
        Ok((sdp, state, change)) => Reanswer::Accept {
            sdp,
            state: Box::new(state),
            change,
        },
        Err(reason) => Reanswer::Reject(reason),
    }
}

fn try_answer(
    state: &SdpState,
    offer: &[u8],
    rekey: bool,
) -> Result<(String, SdpState, MediaChange), String> {
    let audio = audio_of(offer, "re-offer")?;
    if audio.is_declined() {
        return Err("the re-offer declines audio (port 0)".into());
    }
    let codec = choose_codec(&state.codec, &audio.formats, SUPPORTED_CODECS)
        .ok_or_else(|| format!("no codec we support in {}", audio.formats.join(" ")))?;
    if let Proto::Other(other) = &audio.proto {
        return Err(format!("unsupported media transport {other}"));
    }
    let keys = answer_keys(state, &audio, rekey)?;
    let theirs_direction = effective_direction(&audio);
    let next = SdpState {
        version: state.version + 1,
        proto: audio.proto.as_str().into(),
        codec,
        ours: keys.ours,
        theirs: keys.theirs,
        tag: keys.tag,
        direction: mirror(theirs_direction),
        remote: remote_of(&audio, state.remote),
        ..state.clone()
    };
    let change = MediaChange {
        send: sends(next.direction) && receives(theirs_direction),
        held: next.direction != Direction::SendRecv,
        remote: next.remote,
        new_theirs: keys.new_theirs,
        new_ours: keys.new_ours,
    };
    Ok((next.sdp(), next, change))
}

/// Our re-offer setting our direction to `direction` (hold: `sendonly`; resume: `sendrecv`),
/// same codec and keys; returns the SDP and the state to check the answer against.
pub(crate) fn make_reoffer(state: &SdpState, direction: Direction) -> (String, SdpState) {
    let next = SdpState {
        version: state.version + 1,
        direction,
        ..state.clone()
    };
    (next.sdp(), next)
}

/// Checks the answer to our (re-)offer made in state `offered`; the state after it and what
/// the media does now.
pub(crate) fn check_reanswer(
    offered: &SdpState,
    answer: &[u8],
) -> Result<(SdpState, MediaChange), String> {
    let audio = audio_of(answer, "answer")?;
    if audio.is_declined() {
        return Err("the answer declines audio (port 0)".into());
    }
    if !audio.formats.contains(&offered.codec) {
        return Err(format!(
            "the answer drops our codec {}: {}",
            offered.codec,
            audio.formats.join(" ")
        ));
    }
    let new_theirs = match &offered.theirs {
        None => None,
        Some(current) => {
            let attr = audio
                .crypto
                .iter()
                .find(|c| c.known_suite().ok() == Some(current.suite()))
                .ok_or("the answer drops SRTP (no a=crypto of our suite)")?;
            let (_, key) = key_of(attr)?;
            (key.key_and_salt() != current.key_and_salt()).then_some(key)
        }
    };
    let theirs_direction = effective_direction(&audio);
    let next = SdpState {
        theirs: new_theirs.clone().or_else(|| offered.theirs.clone()),
        remote: remote_of(&audio, offered.remote),
        ..offered.clone()
    };
    let change = MediaChange {
        send: sends(offered.direction) && receives(theirs_direction),
        held: offered.direction != Direction::SendRecv || theirs_direction != Direction::SendRecv,
        remote: next.remote,
        new_theirs,
        new_ours: None,
    };
    Ok((next, change))
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use mediation::sdp::offer_crypto;

    use super::*;
    use crate::negotiate::{sdp_text, SrtpKeys};

    const US: LocalMedia = LocalMedia {
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        rtp_port: 40_000,
    };
    const PEER: LocalMedia = LocalMedia {
        ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        rtp_port: 50_000,
    };
    const SUITE: SrtpSuite = SrtpSuite::AesCm128HmacSha1_80;

    fn state(srtp: bool) -> SdpState {
        let plan = MediaPlan {
            remote_rtp: "127.0.0.2:50000".parse().unwrap(),
            remote_rtcp: "127.0.0.2:50001".parse().unwrap(),
            srtp: srtp.then(|| SrtpKeys {
                suite: SUITE,
                ours: MasterKey::generate(SUITE).unwrap(),
                theirs: MasterKey::generate(SUITE).unwrap(),
            }),
        };
        SdpState::after_setup(US, 9, &plan)
    }

    /// The peer's offer with its current key (or `key`), direction `direction`.
    fn offer(
        st: &SdpState,
        direction: Direction,
        key: Option<&MasterKey>,
        formats: &str,
    ) -> String {
        let crypto: Vec<CryptoAttribute> = key
            .or(st.theirs.as_ref())
            .and_then(|k| attribute(3, k))
            .into_iter()
            .collect();
        let proto = if crypto.is_empty() {
            "RTP/AVP"
        } else {
            "RTP/SAVP"
        };
        render(&SdpSpec {
            local: PEER,
            session_id: 5,
            version: 2,
            proto,
            crypto: &crypto,
            direction,
        })
        .replace("RTP/SAVP 0\r\n", &format!("RTP/SAVP {formats}\r\n"))
        .replace("RTP/AVP 0\r\n", &format!("RTP/AVP {formats}\r\n"))
    }

    fn accepted(r: Reanswer) -> (String, SdpState, MediaChange) {
        match r {
            Reanswer::Accept { sdp, state, change } => (sdp, *state, change),
            Reanswer::Reject(why) => panic!("rejected: {why}"),
        }
    }

    fn direction_of(sdp: &str) -> Direction {
        mediation::sdp::parse(sdp.as_bytes())
            .unwrap()
            .audio()
            .unwrap()
            .direction
    }

    #[test]
    fn directions_are_mirrored_and_sending_follows() {
        let st = state(true);
        for (offered, answered, send, held) in [
            (Direction::SendOnly, Direction::RecvOnly, false, true),
            (Direction::Inactive, Direction::Inactive, false, true),
            (Direction::RecvOnly, Direction::SendOnly, true, true),
            (Direction::SendRecv, Direction::SendRecv, true, false),
        ] {
            let body = offer(&st, offered, None, "0");
            let (sdp, next, change) = accepted(answer_reoffer(&st, body.as_bytes(), false));
            assert_eq!(direction_of(&sdp), answered, "{offered}");
            assert_eq!((change.send, change.held), (send, held), "{offered}");
            assert_eq!(next.version, 2);
            assert!(sdp.contains("o=gateway-sim 9 2 "), "{sdp}");
            // Same keys both ways: nothing to switch, and our key is the one we had.
            assert!(change.new_theirs.is_none() && change.new_ours.is_none());
            assert!(sdp.contains(&format!(
                "a=crypto:{}",
                attribute(3, st.ours.as_ref().unwrap()).unwrap()
            )));
        }
    }

    #[test]
    fn no_direction_means_sendrecv_and_zero_address_means_hold() {
        let st = state(false);
        let plain = sdp_text(PEER, 5, "RTP/AVP", &[]).replace("a=sendrecv\r\n", "");
        let (sdp, _, change) = accepted(answer_reoffer(&st, plain.as_bytes(), false));
        assert_eq!(direction_of(&sdp), Direction::SendRecv);
        assert!(change.send && !change.held);
        let old_hold = plain.replace("c=IN IP4 127.0.0.2", "c=IN IP4 0.0.0.0");
        let (sdp, _, change) = accepted(answer_reoffer(&st, old_hold.as_bytes(), false));
        assert_eq!(direction_of(&sdp), Direction::RecvOnly);
        assert!(!change.send && change.held);
        assert_eq!(
            change.remote, st.remote,
            "an unspecified address keeps the old one"
        );
    }

    #[test]
    fn codec_rules() {
        let supported = ["0", "8"];
        let offered = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            choose_codec("8", &offered(&["0", "8"]), &supported),
            Some("8".into())
        );
        assert_eq!(
            choose_codec("8", &offered(&["18", "0"]), &supported),
            Some("0".into())
        );
        assert_eq!(choose_codec("0", &offered(&["18", "9"]), &supported), None);
        let st = state(false);
        let g729_only = offer(&st, Direction::SendRecv, None, "18");
        match answer_reoffer(&st, g729_only.as_bytes(), false) {
            Reanswer::Reject(why) => assert!(why.contains("codec"), "{why}"),
            Reanswer::Accept { sdp, .. } => panic!("accepted {sdp}"),
        }
        let both = offer(&st, Direction::SendRecv, None, "18 0");
        let (sdp, next, _) = accepted(answer_reoffer(&st, both.as_bytes(), false));
        assert!(sdp.contains("RTP/AVP 0\r\n") && next.codec == "0", "{sdp}");
    }

    #[test]
    fn new_key_switches_receive_context_and_ours_is_kept_unless_rekeying() {
        let st = state(true);
        let fresh = MasterKey::generate(SUITE).unwrap();
        let body = offer(&st, Direction::SendRecv, Some(&fresh), "0");
        let (sdp, next, change) = accepted(answer_reoffer(&st, body.as_bytes(), false));
        let new = change.new_theirs.expect("a new receive key");
        assert_eq!(new.key_and_salt(), fresh.key_and_salt());
        assert!(change.new_ours.is_none());
        assert_eq!(
            next.ours.as_ref().unwrap().key_and_salt(),
            st.ours.as_ref().unwrap().key_and_salt()
        );
        assert!(
            sdp.contains("a=crypto:3 AES_CM_128_HMAC_SHA1_80"),
            "tag echoed: {sdp}"
        );
        // With rekeying, our answer carries a new key too.
        let (_, next, change) = accepted(answer_reoffer(&st, body.as_bytes(), true));
        let ours = change.new_ours.expect("a new send key");
        assert_ne!(
            ours.key_and_salt(),
            st.ours.as_ref().unwrap().key_and_salt()
        );
        assert_eq!(next.ours.unwrap().key_and_salt(), ours.key_and_salt());
    }

    #[test]
    fn srtp_cannot_be_dropped_or_started_in_a_reoffer() {
        let srtp = state(true);
        let plain_offer = sdp_text(PEER, 5, "RTP/AVP", &[]);
        assert!(matches!(
            answer_reoffer(&srtp, plain_offer.as_bytes(), false),
            Reanswer::Reject(_)
        ));
        let plain = state(false);
        let srtp_offer = sdp_text(PEER, 5, "RTP/SAVP", &offer_crypto(&[SUITE]));
        assert!(matches!(
            answer_reoffer(&plain, srtp_offer.as_bytes(), false),
            Reanswer::Reject(_)
        ));
        assert!(matches!(
            answer_reoffer(&plain, b"garbage", false),
            Reanswer::Reject(_)
        ));
    }

    #[test]
    fn our_hold_and_resume_and_their_answers() {
        let st = state(true);
        let (hold, pending) = make_reoffer(&st, Direction::SendOnly);
        assert_eq!(direction_of(&hold), Direction::SendOnly);
        assert!(hold.contains("o=gateway-sim 9 2 "));
        // The peer answers recvonly with its current key: we keep sending (sendonly), held.
        let peer = SdpState {
            local: PEER,
            ours: st.theirs.clone(),
            theirs: st.ours.clone(),
            ..st.clone()
        };
        let (answer, _, _) = accepted(answer_reoffer(&peer, hold.as_bytes(), false));
        let (held, change) = check_reanswer(&pending, answer.as_bytes()).unwrap();
        assert!(change.send && change.held && change.new_theirs.is_none());
        let (resume, pending) = make_reoffer(&held, Direction::SendRecv);
        assert!(resume.contains("o=gateway-sim 9 3 "));
        // A peer that answers the resume with a new key of its own.
        let (answer, _, _) = accepted(answer_reoffer(&peer, resume.as_bytes(), true));
        let (_, change) = check_reanswer(&pending, answer.as_bytes()).unwrap();
        assert!(change.send && !change.held);
        assert!(change.new_theirs.is_some());
        // An answer without our codec or without keys is refused.
        let plain = sdp_text(PEER, 5, "RTP/AVP", &[]);
        assert!(check_reanswer(&pending, plain.as_bytes()).is_err());
    }
}
