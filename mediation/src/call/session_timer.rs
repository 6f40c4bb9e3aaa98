//! RFC 4028 session timers, one per leg (each leg is its own dialog): how we answer a caller's
//! `Session-Expires`, what we ask for in our own INVITE, and when a leg must be refreshed by us
//! or has expired because its peer did not refresh it. Pure: times in, deadlines out.

use std::time::{Duration, Instant};

/// Our `Min-SE` (RFC 4028 §4: never below 90 s).
pub(super) const MIN_SE: u32 = 90;

/// The longest session interval we keep (a day, as `[sip] session_expires_secs` allows): a
/// peer asking for more gets this (RFC 4028 §9 lets the UAS lower it), and a callee answering
/// more than we asked is held to this too, so a refresher that stops is noticed within a day.
pub(super) const MAX_SE: u32 = 86_400;

/// Who refreshes a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refresher {
    /// The dialog's caller.
    Uac,
    /// The dialog's callee.
    Uas,
}

impl Refresher {
    /// The parameter value.
    pub(super) fn label(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// A `Session-Expires` value: delta-seconds and the optional `refresher`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SessionExpires {
    /// Seconds.
    pub interval: u32,
    /// `refresher=`, when given.
    pub refresher: Option<Refresher>,
}

impl SessionExpires {
    /// The Session-Expires of a message, when present and readable.
    pub(super) fn of(view: &crate::sip::View) -> Option<Self> {
        Self::parse(view.session_expires.as_deref()?)
    }

    /// Parses `1800;refresher=uac` (compact or not, parameters in any order). `None` when the
    /// delta-seconds are not a number.
    pub(super) fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let interval = parts.next()?.trim().parse().ok()?;
        let refresher = parts.find_map(|p| {
            let (name, v) = p.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("refresher") {
                return None;
            }
            match v.trim().to_ascii_lowercase().as_str() {
                "uac" => Some(Refresher::Uac),
                "uas" => Some(Refresher::Uas),
                _ => None,
            }
        });
        Some(Self {
            interval,
            refresher,
        })
    }

    /// The header value with the refresher named.
    pub(super) fn header(interval: u32, refresher: Refresher) -> String {
        format!("{interval};refresher={}", refresher.label())
    }
}

/// The session timer running on one leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LegTimer {
    /// Session interval, seconds.
    pub interval: u32,
    /// True when we refresh, false when the peer does.
    pub we_refresh: bool,
    /// The last refresh (or the answer that started the session).
    pub refreshed_at: Instant,
}

impl LegTimer {
    /// When we must send a refresh (we refresh at half the interval, RFC 4028 §10), or when the
    /// session has expired for want of the peer's refresh (the interval less a third of it, at
    /// most 32 s, §10).
    pub(super) fn due(&self) -> Instant {
        let interval = Duration::from_secs(u64::from(self.interval));
        if self.we_refresh {
            self.refreshed_at + interval / 2
        } else {
            self.refreshed_at + interval - (interval / 3).min(Duration::from_secs(32))
        }
    }

    /// When the session is over whoever refreshes: our own refreshes that fail end it here.
    pub(super) fn expires(&self) -> Instant {
        self.refreshed_at + Duration::from_secs(u64::from(self.interval))
    }

    /// The `Session-Expires` value for a message of ours on this leg. `refresher` names a
    /// side of the transaction the message belongs to (RFC 4028 §7, §9): in a request we send
    /// we are its `uac`, in a response we send its `uas`.
    pub(super) fn header(&self, in_our_request: bool) -> String {
        let refresher = if self.we_refresh == in_our_request {
            Refresher::Uac
        } else {
            Refresher::Uas
        };
        SessionExpires::header(self.interval, refresher)
    }

    /// Takes the `Session-Expires` of a 2xx to our refresh (`refresher` relative to our
    /// request: `uac` is us; absent means us) and restarts the interval.
    pub(super) fn refreshed_by_us(&mut self, answered: Option<SessionExpires>, now: Instant) {
        if let Some(a) = answered {
            self.interval = a.interval.clamp(MIN_SE, MAX_SE);
            self.we_refresh = a.refresher != Some(Refresher::Uas);
        }
        self.refreshed_at = now;
    }
}

/// How we answer an INVITE on a leg where we are the callee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum UasAnswer {
    /// No session timer on this leg.
    None,
    /// `422 Session Interval Too Small` with `Min-SE: 90`.
    TooSmall,
    /// A timer runs: put `Session-Expires` (and `Require: timer` when asked) in the 2xx.
    Timer {
        /// The timer (its `refreshed_at` is the time of the answer).
        timer: LegTimer,
        /// Add `Require: timer` (the caller supports timers and must refresh or know we do).
        require: bool,
    },
}

/// Answers a request's `Session-Expires` (`asked`) from a caller that does or does not list
/// `timer` in `Supported`; `ours` is our interval when the trunk enables session timers.
/// RFC 4028 §9: an interval below our Min-SE is refused with 422 (only a caller that supports
/// timers can retry); the refresher is kept when the caller named it, else the caller refreshes
/// when it supports timers and we do otherwise. A caller that asked nothing gets our timer with
/// us refreshing, when enabled.
pub(super) fn as_uas(
    asked: Option<SessionExpires>,
    caller_supports: bool,
    ours: Option<u32>,
    now: Instant,
) -> UasAnswer {
    let (interval, refresher) = match (asked, ours) {
        (None, None) => return UasAnswer::None,
        (None, Some(ours)) => (ours.max(MIN_SE), Refresher::Uas),
        (Some(a), _) if a.interval < MIN_SE && caller_supports => return UasAnswer::TooSmall,
        (Some(a), _) => {
            let chosen = match a.refresher {
                Some(Refresher::Uac) if caller_supports => Refresher::Uac,
                Some(r @ Refresher::Uas) => r,
                _ if caller_supports => Refresher::Uac,
                _ => Refresher::Uas,
            };
            (a.interval.clamp(MIN_SE, MAX_SE), chosen)
        }
    };
    UasAnswer::Timer {
        timer: LegTimer {
            interval,
            we_refresh: refresher == Refresher::Uas,
            refreshed_at: now,
        },
        require: caller_supports,
    }
}

/// The timer on a leg where we sent the INVITE asking for `asked` seconds, from the 2xx's
/// `Session-Expires` (`answered`). A callee that does not support timers leaves it out: we
/// refresh ourselves (RFC 4028 §7.2); a 2xx without `refresher` means us (§7.2).
pub(super) fn as_uac(asked: u32, answered: Option<SessionExpires>, now: Instant) -> LegTimer {
    let (interval, refresher) = match answered {
        Some(a) => (
            a.interval.clamp(MIN_SE, MAX_SE),
            a.refresher.unwrap_or(Refresher::Uac),
        ),
        None => (asked.max(MIN_SE), Refresher::Uac),
    };
    LegTimer {
        interval,
        we_refresh: refresher == Refresher::Uac,
        refreshed_at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn se(v: &str) -> Option<SessionExpires> {
        SessionExpires::parse(v)
    }

    #[test]
    fn parses_interval_and_refresher() {
        assert_eq!(
            se("1800;refresher=uas"),
            Some(SessionExpires {
                interval: 1800,
                refresher: Some(Refresher::Uas)
            })
        );
        assert_eq!(se(" 90 ").unwrap().refresher, None);
        assert_eq!(se("x;refresher=uac"), None);
        assert_eq!(
            se("600;REFRESHER=UAC").unwrap().refresher,
            Some(Refresher::Uac)
        );
    }

    #[test]
    fn uas_keeps_the_callers_choice_and_refreshes_for_callers_without_timer_support() {
        let now = Instant::now();
        let UasAnswer::Timer { timer, require } = as_uas(se("1800;refresher=uac"), true, None, now)
        else {
            panic!("no timer");
        };
        assert!(!timer.we_refresh && require);
        assert_eq!(
            timer.header(false),
            "1800;refresher=uac",
            "in our 2xx: the caller"
        );
        // Peer refreshes: we end it at 1800 - 32 s.
        assert_eq!(timer.due(), now + Duration::from_secs(1768));

        let UasAnswer::Timer { timer, require } = as_uas(se("1800"), false, None, now) else {
            panic!("no timer");
        };
        assert!(
            timer.we_refresh && !require,
            "a caller without timer support cannot refresh"
        );
        assert_eq!(timer.due(), now + Duration::from_secs(900));

        let UasAnswer::Timer { timer, .. } = as_uas(se("1800;refresher=uas"), true, None, now)
        else {
            panic!("no timer");
        };
        assert!(timer.we_refresh);
    }

    #[test]
    fn uas_refuses_too_small_intervals_and_starts_its_own_when_enabled() {
        let now = Instant::now();
        assert_eq!(as_uas(se("60"), true, None, now), UasAnswer::TooSmall);
        assert_eq!(as_uas(None, true, None, now), UasAnswer::None);
        let UasAnswer::Timer { timer, .. } = as_uas(None, false, Some(300), now) else {
            panic!("no timer");
        };
        assert_eq!((timer.interval, timer.we_refresh), (300, true));
        assert_eq!(timer.header(false), "300;refresher=uas", "in our 2xx: us");
        assert_eq!(
            timer.header(true),
            "300;refresher=uac",
            "in our refresh: us"
        );
    }

    #[test]
    fn uac_refreshes_unless_the_callee_takes_it() {
        let now = Instant::now();
        let t = as_uac(1800, None, now);
        assert!(t.we_refresh && t.interval == 1800);
        let t = as_uac(1800, se("900;refresher=uas"), now);
        assert!(!t.we_refresh && t.interval == 900);
        // 900 - min(32, 300) = 868 s.
        assert_eq!(t.due(), now + Duration::from_secs(868));
        assert_eq!(t.expires(), now + Duration::from_secs(900));
        let t = as_uac(1800, se("120"), now);
        assert!(t.we_refresh);
        // Short intervals: a third of it (40 s) is more than 32 s, so 32 s.
        let t = LegTimer {
            we_refresh: false,
            ..t
        };
        assert_eq!(t.due(), now + Duration::from_secs(88));
    }
}

/// Our refresh in flight on a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pending {
    /// Its CSeq number.
    pub cseq: u32,
    /// `INVITE` or `UPDATE`.
    pub method: &'static str,
    /// When it counts as unanswered (as a 408).
    pub deadline: Instant,
}

/// Session-timer state of one leg.
#[derive(Debug, Clone, Default)]
pub(super) struct LegSession {
    /// The timer, once the leg is answered with one.
    pub timer: Option<LegTimer>,
    /// Our refresh in flight.
    pub pending: Option<Pending>,
    /// When to try again after `491` or a failed refresh.
    pub retry_at: Option<Instant>,
    /// The peer listed UPDATE in `Allow` (refreshes go as UPDATE, without SDP).
    pub allows_update: bool,
}

/// What a leg's timer asks for at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Due {
    /// Nothing yet; look again at the instant given, if any.
    Wait(Option<Instant>),
    /// Send a refresh now.
    Refresh,
    /// The session expired (the peer did not refresh, or ours kept failing): end the call.
    Expired,
}

impl LegSession {
    /// What to do at `now`.
    pub(super) fn due(&self, now: Instant) -> Due {
        let Some(t) = &self.timer else {
            return Due::Wait(None);
        };
        if let Some(p) = &self.pending {
            return if p.deadline <= now || t.expires() <= now {
                Due::Expired
            } else {
                Due::Wait(Some(p.deadline.min(t.expires())))
            };
        }
        if !t.we_refresh {
            return if t.due() <= now {
                Due::Expired
            } else {
                Due::Wait(Some(t.due()))
            };
        }
        if t.expires() <= now {
            return Due::Expired;
        }
        let next = self.retry_at.unwrap_or_else(|| t.due());
        if next <= now {
            Due::Refresh
        } else {
            Due::Wait(Some(next.min(t.expires())))
        }
    }
}

#[cfg(test)]
mod due_tests {
    use super::*;

    #[test]
    fn refresher_sends_at_half_and_gives_up_at_expiry() {
        let t0 = Instant::now();
        let mut s = LegSession {
            timer: Some(as_uac(120, None, t0)),
            ..LegSession::default()
        };
        assert_eq!(s.due(t0), Due::Wait(Some(t0 + Duration::from_secs(60))));
        assert_eq!(s.due(t0 + Duration::from_secs(60)), Due::Refresh);
        s.pending = Some(Pending {
            cseq: 2,
            method: "UPDATE",
            deadline: t0 + Duration::from_secs(92),
        });
        assert_eq!(
            s.due(t0 + Duration::from_secs(61)),
            Due::Wait(Some(t0 + Duration::from_secs(92)))
        );
        assert_eq!(s.due(t0 + Duration::from_secs(92)), Due::Expired);
        // 491: wait and try again, but never past expiry.
        s.pending = None;
        s.retry_at = Some(t0 + Duration::from_secs(63));
        assert_eq!(
            s.due(t0 + Duration::from_secs(61)),
            Due::Wait(Some(t0 + Duration::from_secs(63)))
        );
        assert_eq!(s.due(t0 + Duration::from_secs(63)), Due::Refresh);
        assert_eq!(s.due(t0 + Duration::from_secs(120)), Due::Expired);
    }

    #[test]
    fn a_peer_that_does_not_refresh_expires_the_session() {
        let t0 = Instant::now();
        let s = LegSession {
            timer: Some(as_uac(1800, SessionExpires::parse("90;refresher=uas"), t0)),
            ..LegSession::default()
        };
        assert_eq!(s.due(t0), Due::Wait(Some(t0 + Duration::from_secs(60))));
        assert_eq!(s.due(t0 + Duration::from_secs(60)), Due::Expired);
        assert_eq!(LegSession::default().due(t0), Due::Wait(None));
    }
}
