//! One call as the B2BUA holds it: the caller's leg (A, whose INVITE we answer) and the callee's
//! leg (B, the INVITE we sent), each its own SIP dialog, and the phase the call is in.

use std::time::Instant;

use rand::rngs::StdRng;

use super::policy::{Decision, LegMedia};
use super::session_timer::{LegSession, LegTimer, UasAnswer};
use crate::peer::ConnId;
use crate::sdp::{CryptoAttribute, PeerSdp, Proto};
use crate::sip::outgoing::ReceivedRequest;

mod requests;

/// One of a call's two legs: the caller's (A: its INVITE we answer) or the callee's (B: the
/// INVITE we sent). Each is its own SIP dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Side {
    /// The caller's leg (A).
    Caller,
    /// The callee's leg (B).
    Callee,
}

impl Side {
    /// The other leg.
    pub(super) fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }

    /// 0 for the caller's leg, 1 for the callee's (arrays kept per leg).
    pub(super) fn index(self) -> usize {
        match self {
            Side::Caller => 0,
            Side::Callee => 1,
        }
    }

    /// `caller` or `callee`, for logs.
    pub(super) fn label(self) -> &'static str {
        match self {
            Side::Caller => "caller",
            Side::Callee => "callee",
        }
    }
}

/// Which way the call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A gateway called the internal side.
    FromGateway,
    /// The internal side called a gateway.
    FromNextHop,
}

impl Direction {
    /// The metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Direction::FromGateway => "inbound",
            Direction::FromNextHop => "outbound",
        }
    }
}

/// Where the call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// INVITE sent on B, no final answer yet.
    Proceeding,
    /// 200 relayed to A, waiting for A's ACK.
    Answered,
    /// ACK received: media flowing both ways.
    Confirmed,
    /// A gave up (CANCEL, timeout, connection loss): waiting for B's final answer to ACK it
    /// (and BYE it, if it was a 2xx) until the deadline.
    Abandoned,
}

/// How our side of a dialog is written on the wire.
#[derive(Debug, Clone)]
pub(super) struct Local {
    /// Our address on this leg: the `[media] advertise` address of the peer's family, in our
    /// SDP (`c=`, `o=`), Via and Contact; the leg's media ports come from that family's pool.
    pub address: std::net::IpAddr,
    /// `SIP/2.0/TLS` or `SIP/2.0/TCP` host:port for Via.
    pub via: String,
    /// Our Contact value.
    pub contact: String,
}

impl Local {
    /// The family of the leg's address, and of its media ports.
    pub(super) fn family(&self) -> crate::config::IpFamily {
        crate::config::IpFamily::of(self.address)
    }
}

/// The caller's leg.
pub(super) struct ALeg {
    /// The connection the INVITE came on; our responses and requests go back on it.
    pub conn: ConnId,
    /// The INVITE, for responses.
    pub invite: ReceivedRequest,
    /// Its Call-ID.
    pub call_id: String,
    /// The caller's tag (From of the INVITE).
    pub remote_tag: String,
    /// Our tag (To of our responses).
    pub local_tag: String,
    /// The caller's Contact URI: where in-dialog requests are addressed.
    pub remote_target: String,
    /// Our CSeq for requests we send on this leg.
    pub local_cseq: u32,
    /// How the 2xx answers the caller's session timer request (RFC 4028).
    pub timer_answer: UasAnswer,
    /// The session timer running on this leg.
    pub session: LegSession,
    /// The last SDP we sent on this leg (our refresh re-INVITEs repeat it).
    pub last_sdp: Option<String>,
    /// The caller's offer.
    pub offer: PeerSdp,
    /// The crypto attribute of the offer we accepted, if SRTP.
    pub chosen: Option<CryptoAttribute>,
    /// The crypto attribute we answered with (our key), if SRTP.
    pub ours: Option<CryptoAttribute>,
    /// `o=` session id of the SDP we send on this leg.
    pub sdp_session: u64,
    /// `o=` version of the last SDP we sent on this leg.
    pub sdp_version: u64,
    /// The encryption decision for this leg.
    pub decision: Decision,
    /// Our RTP port on this leg.
    pub port: u16,
    /// Our Via/Contact on this leg.
    pub local: Local,
}

/// The callee's leg.
pub(super) struct BLeg {
    /// The connection the INVITE went out on.
    pub conn: ConnId,
    /// Our Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The callee's tag, once it answered.
    pub remote_tag: Option<String>,
    /// Request-URI of the INVITE.
    pub uri: String,
    /// Branch of the INVITE.
    pub branch: String,
    /// From (with our tag) and To (without tag) of the INVITE.
    pub from: String,
    /// To of the INVITE.
    pub to: String,
    /// Where in-dialog requests go (the callee's Contact).
    pub remote_target: Option<String>,
    /// Record-Route of the 2xx, reversed: our Route set.
    pub route_set: Vec<String>,
    /// Our CSeq (the last request we sent in this dialog).
    pub local_cseq: u32,
    /// The crypto attributes we offered.
    pub offered: Vec<CryptoAttribute>,
    /// SRTP offered Lync's way on this leg (`RTP/AVP` with `a=crypto` and this
    /// `a=encryption:`, a gateway's `srtp_offer_style = "avp-crypto"`); `None`: `RTP/SAVP`.
    pub lync_style: Option<crate::sdp::Encryption>,
    /// The one the callee accepted (our key), once answered.
    pub ours: Option<CryptoAttribute>,
    /// The callee's key, once answered.
    pub theirs: Option<CryptoAttribute>,
    /// `o=` session id of the SDP we send on this leg.
    pub sdp_session: u64,
    /// `o=` version of the last SDP we sent on this leg.
    pub sdp_version: u64,
    /// The encryption decision, once the answer arrived.
    pub decision: Option<Decision>,
    /// Our RTP port on this leg.
    pub port: u16,
    /// Our Via/Contact on this leg.
    pub local: Local,
    /// A provisional response arrived (a CANCEL may be sent).
    pub provisional: bool,
    /// The session interval our INVITE asked for, when timers are enabled on this leg.
    pub timer_asked: Option<u32>,
    /// The session timer running on this leg.
    pub session: LegSession,
    /// The last SDP we sent on this leg.
    pub last_sdp: String,
    /// To tags of the early dialogs (forks) seen so far.
    pub early_tags: Vec<String>,
    /// The fork whose early SDP set up the media.
    pub early_tag: Option<String>,
    /// The early dialog our requests go to before the answer: its To tag and Contact (the
    /// media's fork, else the latest).
    pub early_dialog: Option<(String, Option<String>)>,
}

impl BLeg {
    /// The `m=` transport of our SDP on this leg: `RTP/SAVP` when it carries our key, unless
    /// SRTP is offered Lync's way; `RTP/AVP` otherwise.
    pub(super) fn srtp_proto(&self, with_key: bool) -> Proto {
        if with_key && self.lync_style.is_none() {
            Proto::Savp
        } else {
            Proto::Avp
        }
    }
}

/// What every INVITE toward the callee carries, kept for failover.
#[derive(Debug, Clone)]
pub(super) struct CalleeRequest {
    /// The called number, as the caller sent it (each gateway's number rules apply on the way
    /// to or from it).
    pub user: String,
    /// The caller's number (From user part), as sent.
    pub caller: String,
    /// Max-Forwards, already decremented.
    pub max_forwards: u32,
    /// The called number came as a tel: URI: the far leg gets `user=phone` (RFC 3261 §19.1.1).
    pub phone: bool,
    /// Header fields of the caller's INVITE passed on to the callee byte for byte
    /// (P-Asserted-Identity and Privacy, `[sip] pass_headers`).
    pub passed: Vec<String>,
    /// Its `History-Info` and `Diversion` fields not passed already: they go on only where the
    /// gateway's `forward_history` says so.
    pub history: Vec<String>,
}

/// A re-offer from one party waiting for the other party's answer.
#[derive(Debug)]
pub(super) struct RelayedOffer {
    /// The leg the re-offer came on (we re-offer on the other).
    pub side: Side,
    /// The request to answer.
    pub request: ReceivedRequest,
    /// Where it came from.
    pub conn: ConnId,
    /// Its SDP.
    pub offer: PeerSdp,
    /// Its new keys, taken once the far party accepts: (theirs, ours).
    pub rekey: Option<(CryptoAttribute, CryptoAttribute)>,
    /// The session timer for our answer, and whether to add `Require: timer`.
    pub timer: Option<(LegTimer, bool)>,
    /// The key we offered the far party (SRTP legs).
    pub our_key: Option<CryptoAttribute>,
    /// Our request on the far leg: CSeq number, method and Via branch.
    pub cseq: u32,
    /// `INVITE` or `UPDATE`.
    pub method: &'static str,
    /// Its branch (a non-2xx is acknowledged in the same transaction).
    pub branch: String,
    /// Our SDP in it, and its version.
    pub sdp: (String, u64),
}

/// A request of one party (INFO, NOTIFY, MESSAGE, OPTIONS) carried to the other as ours,
/// waiting for the other party's final response.
#[derive(Debug)]
pub(super) struct RelayedRequest {
    /// The leg it came on (ours went on the other).
    pub side: Side,
    /// The request, to answer, and where it came from.
    pub request: (ReceivedRequest, ConnId),
    /// Our request on the other leg: its CSeq number and method.
    pub cseq: (u32, crate::sip::Method),
    /// When it gets `408` if still unanswered.
    pub deadline: Instant,
}

/// One call.
pub(super) struct Call {
    /// Internal id (logs, media).
    pub id: u64,
    /// Which way.
    pub direction: Direction,
    /// The gateway on one side of it.
    pub gateway: String,
    /// Caller's leg.
    pub a: ALeg,
    /// Callee's leg.
    pub b: BLeg,
    /// Where it is.
    pub phase: Phase,
    /// When the INVITE arrived.
    pub started: Instant,
    /// Media relay running.
    pub media_started: bool,
    /// The answer the caller got in an early-media 18x (repeated in the 200).
    pub early_answer: Option<String>,
    /// The callee's answer (its codecs answer the caller's re-offers).
    pub b_answer: Option<PeerSdp>,
    /// A re-offer put the call on hold (exempt from the media timeout).
    pub on_hold: bool,
    /// Its log span.
    pub span: tracing::Span,
    /// What every INVITE toward the callee carries (kept for failover).
    pub callee: CalleeRequest,
    /// Gateways still to try if the current one fails (calls from the next hop).
    pub alternates: Vec<String>,
    /// When the callee answered.
    pub answered: Option<Instant>,
    /// A party's re-offer carried to the other party, waiting for its answer.
    pub relayed: Option<RelayedOffer>,
    /// Requests carried across the call, waiting for the far party's answers.
    pub in_dialog: Vec<RelayedRequest>,
    /// Draws the branches of the call's own requests (seeded from the engine's generator).
    pub rng: StdRng,
    /// Where each leg's peer (caller's, callee's) last asked for RTP, as the relay knows it.
    pub media_remotes: [Option<std::net::SocketAddr>; 2],
}

impl Call {
    /// True if leg `side` is the one toward the gateway.
    pub(super) fn is_gateway_leg(&self, side: Side) -> bool {
        (self.direction == Direction::FromGateway) == (side == Side::Caller)
    }

    /// `gateway` or `next_hop`: the leg's name in media commands and metric labels.
    pub(super) fn leg_label(&self, side: Side) -> &'static str {
        if self.is_gateway_leg(side) {
            "gateway"
        } else {
            "next_hop"
        }
    }

    /// The gateway leg's decision, once known.
    pub(super) fn gateway_media(&self) -> Option<LegMedia> {
        let d = match self.direction {
            Direction::FromGateway => Some(self.a.decision),
            Direction::FromNextHop => self.b.decision,
        };
        d.and_then(Decision::media)
    }

    /// The connection of leg `side`.
    pub(super) fn conn(&self, side: Side) -> ConnId {
        match side {
            Side::Caller => self.a.conn,
            Side::Callee => self.b.conn,
        }
    }

    /// The Call-ID of leg `side`'s dialog.
    pub(super) fn call_id(&self, side: Side) -> &str {
        match side {
            Side::Caller => &self.a.call_id,
            Side::Callee => &self.b.call_id,
        }
    }

    /// Our Via and Contact on leg `side`.
    pub(super) fn local(&self, side: Side) -> &Local {
        match side {
            Side::Caller => &self.a.local,
            Side::Callee => &self.b.local,
        }
    }

    /// Our media port on leg `side`, the `o=` session id and the version of the last SDP we
    /// sent there.
    pub(super) fn our_media(&self, side: Side) -> (u16, u64, u64) {
        match side {
            Side::Caller => (self.a.port, self.a.sdp_session, self.a.sdp_version),
            Side::Callee => (self.b.port, self.b.sdp_session, self.b.sdp_version),
        }
    }

    /// The SRTP keys in use on leg `side`: (theirs, ours). The caller's leg has theirs only
    /// when it is SRTP (ours is set).
    pub(super) fn keys(&self, side: Side) -> (Option<&CryptoAttribute>, Option<&CryptoAttribute>) {
        match side {
            Side::Caller => (
                self.a.chosen.as_ref().filter(|_| self.a.ours.is_some()),
                self.a.ours.as_ref(),
            ),
            Side::Callee => (self.b.theirs.as_ref(), self.b.ours.as_ref()),
        }
    }

    /// The session-timer state of leg `side`.
    pub(super) fn session(&self, side: Side) -> &LegSession {
        match side {
            Side::Caller => &self.a.session,
            Side::Callee => &self.b.session,
        }
    }

    /// As [`Call::session`], to change it.
    pub(super) fn session_mut(&mut self, side: Side) -> &mut LegSession {
        match side {
            Side::Caller => &mut self.a.session,
            Side::Callee => &mut self.b.session,
        }
    }

    /// Records that the SDP we send on leg `side` is now `sdp` at `version`.
    pub(super) fn set_our_sdp(&mut self, side: Side, sdp: String, version: u64) {
        match side {
            Side::Callee => {
                self.b.sdp_version = version;
                self.b.last_sdp = sdp;
            }
            Side::Caller => {
                self.a.sdp_version = version;
                self.a.last_sdp = Some(sdp);
            }
        }
    }

    /// Notes a hold or resume (media of a held call is exempt from the media timeout).
    pub(super) fn set_hold(&mut self, hold: bool) {
        if hold != self.on_hold {
            tracing::info!(
                call = self.id,
                hold,
                "call {}",
                if hold { "put on hold" } else { "resumed" }
            );
        }
        self.on_hold = hold;
    }
}
