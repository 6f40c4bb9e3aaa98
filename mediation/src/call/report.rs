//! What the engine reports about its calls, for the operator's counters: one [`Report`] per
//! thing worth counting (a request, a call's outcome, an encryption decision, a failover). The
//! engine only queues them; the driver turns each into Prometheus metrics (`metrics.rs`), so
//! the call layer does not depend on prometheus and its tests read the reports themselves.
//! Reports are made per SIP message, never per media packet.

use std::time::Duration;

use super::legs::Direction;
use super::policy::{Decision, LegMedia};
use crate::sip::Method;

/// One countable event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// A SIP request arrived (any method, in or out of a dialog).
    Request {
        /// Its method.
        method: Method,
    },
    /// A call reached an outcome: answered, refused, failed with a code, ended by a timer...
    Call {
        /// Which way it went.
        direction: Direction,
        /// The gateway on one side of it (empty when none was chosen).
        gateway: String,
        /// The gateway leg's media, once decided.
        media: Option<LegMedia>,
        /// The outcome (`answered`, `refused`, `cancelled`, a SIP code, a limit's name...).
        result: String,
    },
    /// The encryption decision of a gateway leg (refusals included).
    Decision {
        /// The gateway.
        gateway: String,
        /// What was decided and why.
        decision: Decision,
    },
    /// SDES keys a peer sent that were ignored and never used.
    SdesKeysIgnored {
        /// `plain_tcp`, `plain_udp` (they crossed plain signalling) or `not_offered` (an
        /// answer with keys to an offer without).
        reason: &'static str,
        /// How many `a=crypto` lines.
        count: u64,
    },
    /// An unanswered call moved on from this gateway to the next of its route.
    Failover {
        /// The gateway left.
        gateway: String,
    },
    /// A call was answered: it is active from now on.
    Answered {
        /// Which way it went.
        direction: Direction,
        /// The gateway leg's media.
        media: Option<LegMedia>,
        /// From the INVITE to the answer.
        setup: Duration,
    },
    /// An answered call is gone.
    Ended {
        /// The gateway leg's media.
        media: Option<LegMedia>,
    },
    /// An OPTIONS probe's verdict on a gateway.
    GatewayUp {
        /// The gateway.
        gateway: String,
        /// Answered (up) or not.
        up: bool,
    },
}

/// The `media` label of a leg: `srtp`, `rtp` or `none` (not decided, or refused).
pub fn media_label(media: Option<LegMedia>) -> &'static str {
    media.map_or("none", LegMedia::label)
}
