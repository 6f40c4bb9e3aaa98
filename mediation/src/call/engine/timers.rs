//! The engine's one timer table. Every wake-up has a name — which call or gateway, and which
//! of its timers — and is set, replaced and cancelled by that name: setting a timer again moves
//! it, removing a call cancels all of its timers, and the table never holds more than one entry
//! per name, however often a peer refreshes. Pure: instants come from the caller.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// A named wake-up. At the same instant, timers fire in the order declared here.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Timer {
    /// The callee's final answer to our INVITE is due (`answer_timeout`): 408 and CANCEL.
    Answer(u64),
    /// The current gateway has sent no provisional response in `failover_timeout`: the next
    /// gateway is tried.
    Failover(u64),
    /// The caller has not acknowledged our 2xx in 64*T1 (RFC 3261 §13.3.1.4): the call ends.
    Ack(u64),
    /// An abandoned call stops waiting for the callee's final answer.
    Linger(u64),
    /// The far party has not answered the re-offer we relayed to it: 408, and the call ends.
    Relay(u64),
    /// The earliest of the requests we carried across the call (INFO, NOTIFY, MESSAGE,
    /// OPTIONS) is unanswered: 408 for each one due; the call goes on.
    InDialog(u64),
    /// A leg's session timer (RFC 4028): a refresh of ours is due, or a session expired.
    Session(u64),
    /// A gateway's OPTIONS probe counts as unanswered (judged before the next one is sent).
    ProbeAnswer(String),
    /// A gateway's next OPTIONS probe goes out.
    ProbeSend(String),
}

impl Timer {
    /// Every timer a call may have.
    fn of_call(id: u64) -> [Timer; 7] {
        [
            Timer::Answer(id),
            Timer::Failover(id),
            Timer::Ack(id),
            Timer::Linger(id),
            Timer::Relay(id),
            Timer::InDialog(id),
            Timer::Session(id),
        ]
    }
}

/// Named timers, in order of their instants.
#[derive(Debug, Default)]
pub(super) struct Timers {
    at: HashMap<Timer, Instant>,
    queue: BTreeSet<(Instant, Timer)>,
}

impl Timers {
    /// Sets `timer` to fire at `at`, replacing its earlier instant if it had one.
    pub(super) fn set(&mut self, timer: Timer, at: Instant) {
        if let Some(old) = self.at.insert(timer.clone(), at) {
            self.queue.remove(&(old, timer.clone()));
        }
        self.queue.insert((at, timer));
    }

    /// Sets `timer` when `at` is some, else cancels it.
    pub(super) fn set_or_cancel(&mut self, timer: Timer, at: Option<Instant>) {
        match at {
            Some(at) => self.set(timer, at),
            None => self.cancel(&timer),
        }
    }

    /// Cancels `timer` if it is set.
    pub(super) fn cancel(&mut self, timer: &Timer) {
        if let Some(old) = self.at.remove(timer) {
            self.queue.remove(&(old, timer.clone()));
        }
    }

    /// Cancels every timer of call `id`.
    pub(super) fn cancel_call(&mut self, id: u64) {
        for timer in Timer::of_call(id) {
            self.cancel(&timer);
        }
    }

    /// When `timer` fires, if it is set.
    pub(super) fn get(&self, timer: &Timer) -> Option<Instant> {
        self.at.get(timer).copied()
    }

    /// The earliest instant set.
    pub(super) fn next(&self) -> Option<Instant> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// Removes and returns the earliest timer due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Timer> {
        let (at, _) = self.queue.first()?;
        if *at > now {
            return None;
        }
        let (_, timer) = self.queue.pop_first()?;
        self.at.remove(&timer);
        Some(timer)
    }

    /// Entries held (tests: bounded by the names in use).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        debug_assert_eq!(self.at.len(), self.queue.len());
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn setting_a_timer_again_moves_it_and_cancel_call_clears_a_call() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.set(Timer::Session(1), t0 + Duration::from_secs(10));
        timers.set(Timer::Session(1), t0 + Duration::from_secs(5));
        timers.set(Timer::Answer(1), t0 + Duration::from_secs(90));
        timers.set(Timer::Answer(2), t0 + Duration::from_secs(7));
        assert_eq!(timers.len(), 3);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(4)), None);
        assert_eq!(
            timers.pop_due(t0 + Duration::from_secs(8)),
            Some(Timer::Session(1))
        );
        assert_eq!(
            timers.pop_due(t0 + Duration::from_secs(8)),
            Some(Timer::Answer(2))
        );
        timers.cancel_call(1);
        assert_eq!((timers.len(), timers.next()), (0, None));
    }

    #[test]
    fn at_one_instant_a_probe_is_judged_before_the_next_is_sent() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.set(Timer::ProbeSend("gw1".into()), t0);
        timers.set(Timer::ProbeAnswer("gw1".into()), t0);
        assert_eq!(timers.pop_due(t0), Some(Timer::ProbeAnswer("gw1".into())));
        assert_eq!(timers.pop_due(t0), Some(Timer::ProbeSend("gw1".into())));
    }
}
