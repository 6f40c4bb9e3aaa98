//! RFC 3261 §17 transactions for an unreliable transport (UDP), sans-IO: messages and
//! `Instant`s go in, datagrams to transmit, messages to deliver upward and the next timer
//! deadline come out. It retransmits requests (timers A, E) and final responses (G, and the
//! core's 2xx retransmission of §13.3.1.4), absorbs retransmissions from the peer, ACKs non-2xx
//! answers itself and gives up with a synthesized `408 Request Timeout` (timers B, F). The call
//! engine above keeps thinking in reliable connections.
//!
//! ```text
//!   client INVITE  Calling --1xx--> Proceeding --300-699 / ACK--> Completed --D--> gone
//!                     |  A: resend, B: 408          \--2xx--> gone (ACK resent on 2xx repeats)
//!   server INVITE  Proceeding --300-699--> Completed --ACK--> Confirmed --I--> gone
//!                     |  G: resend, H: gone    \--2xx--> Accepted (resend 2xx until ACK)
//!   non-INVITE     Trying --1xx--> Proceeding --final--> Completed --K / J--> gone
//! ```

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Message as SipMessage;

/// The §17.1.1.1 timer values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timers {
    /// RTT estimate: the first retransmission interval (default 500 ms).
    pub(crate) t1: Duration,
    /// Longest retransmission interval for non-INVITE requests and INVITE responses (4 s).
    pub(crate) t2: Duration,
    /// How long the network may hold a message (5 s): timers I and K.
    pub(crate) t4: Duration,
    /// Timer D: how long a completed client INVITE absorbs answer retransmissions (32 s).
    pub(crate) d: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            d: Duration::from_secs(32),
        }
    }
}

impl Timers {
    /// 64*T1: timers B, F, H, J and the 2xx retransmission limit.
    pub(crate) fn give_up(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// Transactions held at once by default; beyond it the oldest is dropped.
pub(crate) const MAX_TRANSACTIONS: usize = 4096;

/// Which of the four §17 machines (plus the 2xx handling of the core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// (UAC = client, UAS = server; "other" = non-INVITE.)
enum Role {
    UacInvite,
    UacOther,
    UasInvite,
    UasOther,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Client INVITE `Calling`, non-INVITE `Trying` (client and server).
    Trying,
    Proceeding,
    Completed,
    /// Server INVITE after its ACK (timer I running).
    Confirmed,
    /// Server INVITE whose 2xx is retransmitted until the ACK arrives (§13.3.1.4).
    Accepted,
    /// Gave up (timer B or F); absorbs what still comes until it is forgotten.
    TimedOut,
}

/// §17.1.3 / §17.2.3 matching: the top Via branch and the CSeq method (an ACK matches the
/// INVITE).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    branch: String,
    method: String,
}

// No `Debug`: the messages kept may carry SDES keys.
struct Txn {
    role: Role,
    state: State,
    /// Order of creation, to drop the oldest when full.
    seq: u64,
    call_id: String,
    cseq: u32,
    /// The request (client) as sent, to retransmit and to build ACK and 408 from.
    request: Bytes,
    /// The last response sent (server), or the ACK sent (client INVITE), to resend.
    last: Option<Bytes>,
    interval: Duration,
    retransmit_at: Option<Instant>,
    give_up_at: Option<Instant>,
    end_at: Option<Instant>,
}

impl Txn {
    fn deadline(&self) -> Option<Instant> {
        [self.retransmit_at, self.give_up_at, self.end_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// The ACK the engine sent for a 2xx (UAC side), resent when the 2xx is retransmitted.
struct AckMemory {
    ack: Option<Bytes>,
    until: Instant,
}

/// What a message says about itself, for matching.
#[derive(Debug)]
struct Info {
    /// Request method, or `None` for a response.
    method: Option<String>,
    code: u16,
    call_id: String,
    cseq: u32,
    cseq_method: String,
    branch: Option<String>,
}

impl Info {
    fn of(msg: &SipMessage) -> Option<Info> {
        let v = msg.view();
        Some(Info {
            method: msg.method().map(|m| m.as_str().to_string()),
            code: msg.code().unwrap_or(0),
            call_id: v.call_id.clone(),
            cseq: v.cseq.seq,
            cseq_method: v.cseq.method.as_str().to_string(),
            branch: v.branch().map(str::to_string),
        })
    }

    fn key(&self) -> Option<Key> {
        let method = match self.method.as_deref() {
            Some("ACK") => "INVITE".to_string(),
            Some(m) => m.to_string(),
            None => self.cseq_method.clone(),
        };
        Some(Key {
            branch: self.branch.clone()?,
            method,
        })
    }

    fn dialog(&self) -> (String, u32) {
        (self.call_id.clone(), self.cseq)
    }
}

/// All transactions of one flow (one remote address). `Debug` shows counts, not the messages
/// kept (they may carry SDES keys).
pub(crate) struct Transactions {
    timers: Timers,
    max: usize,
    next_seq: u64,
    client: HashMap<Key, Txn>,
    server: HashMap<Key, Txn>,
    acks: HashMap<(String, u32), AckMemory>,
    transmit: VecDeque<Bytes>,
    deliver: VecDeque<SipMessage>,
    dropped: u64,
    /// The layer above sent an INVITE, or a provisional or 2xx answer to one, here.
    carried_call: bool,
}

impl std::fmt::Debug for Transactions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transactions")
            .field("timers", &self.timers)
            .field("max", &self.max)
            .field("client", &self.client.len())
            .field("server", &self.server.len())
            .field("acks", &self.acks.len())
            .field("transmit", &self.transmit.len())
            .field("deliver", &self.deliver.len())
            .field("dropped", &self.dropped)
            .finish()
    }
}

impl Transactions {
    /// No transactions yet, at most [`MAX_TRANSACTIONS`].
    pub(crate) fn new(timers: Timers) -> Self {
        Self::with_capacity(timers, MAX_TRANSACTIONS)
    }

    /// At most `max` transactions (and as many remembered ACKs).
    pub(crate) fn with_capacity(timers: Timers, max: usize) -> Self {
        Self {
            timers,
            max: max.max(1),
            next_seq: 0,
            client: HashMap::new(),
            server: HashMap::new(),
            acks: HashMap::new(),
            transmit: VecDeque::new(),
            deliver: VecDeque::new(),
            dropped: 0,
            carried_call: false,
        }
    }

    /// Transactions in progress (client and server).
    pub(crate) fn len(&self) -> usize {
        self.client.len() + self.server.len()
    }

    /// True when nothing is in progress and nothing is remembered.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0 && self.acks.is_empty()
    }

    /// Transactions (or remembered ACKs) dropped because the table was full.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// True when a transaction here owns this response (or absorbs it: a repeated 2xx).
    pub(crate) fn owns_response(&self, msg: &SipMessage) -> bool {
        let Some(info) = Info::of(msg) else {
            return false;
        };
        info.key().is_some_and(|k| self.client.contains_key(&k))
            || info.cseq_method == "INVITE" && self.acks.contains_key(&info.dialog())
    }

    /// True when a client transaction for this top Via branch and CSeq method is in progress.
    pub(crate) fn has_client(&self, branch: &str, method: &str) -> bool {
        self.client.contains_key(&Key {
            branch: branch.to_string(),
            method: method.to_ascii_uppercase(),
        })
    }

    /// True once the layer above has sent an INVITE here, or a provisional or 2xx answer to
    /// one: a call (early or confirmed) may live on this peer, so the layer above may send here
    /// again long after the last transaction ended.
    pub(crate) fn carried_call(&self) -> bool {
        self.carried_call
    }

    /// The next datagram to put on the wire.
    pub(crate) fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// The next message for the layer above that no received datagram carried (a `408` when
    /// timer B or F fired).
    pub(crate) fn poll_deliver(&mut self) -> Option<SipMessage> {
        self.deliver.pop_front()
    }

    /// When [`Transactions::handle_timeout`] must be called next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let txns = self.client.values().chain(self.server.values());
        txns.filter_map(Txn::deadline)
            .chain(self.acks.values().map(|a| a.until))
            .min()
    }

    /// The layer above sends `bytes`: they are queued for transmission (once, or not at all
    /// when the transaction already did the job) and tracked for retransmission.
    pub(crate) fn send(&mut self, now: Instant, bytes: Bytes) {
        let info = crate::sip::parse(&bytes).ok().and_then(|m| Info::of(&m));
        let Some(info) = info else {
            self.transmit.push_back(bytes);
            return;
        };
        let invite = info.cseq_method.eq_ignore_ascii_case("INVITE");
        match info.method.as_deref() {
            Some("INVITE") => self.carried_call = true,
            None if invite && (100..300).contains(&info.code) => self.carried_call = true,
            _ => {}
        }
        match info.method.as_deref() {
            Some("ACK") => self.send_ack(now, &info, bytes),
            Some(_) => self.send_request(now, &info, bytes),
            None => self.send_response(now, &info, bytes),
        }
    }

    fn send_ack(&mut self, now: Instant, info: &Info, bytes: Bytes) {
        if let Some(key) = info.key() {
            if self.client.contains_key(&key) {
                // The INVITE transaction ACKed the non-2xx itself (§17.1.1.3).
                return;
            }
        }
        self.transmit.push_back(bytes.clone());
        let until = now + self.timers.give_up();
        self.remember_ack(info.dialog(), Some(bytes), until);
    }

    fn send_request(&mut self, now: Instant, info: &Info, bytes: Bytes) {
        self.transmit.push_back(bytes.clone());
        let Some(key) = info.key() else { return };
        if self.client.contains_key(&key) {
            return;
        }
        let role = if key.method == "INVITE" {
            Role::UacInvite
        } else {
            Role::UacOther
        };
        let t1 = self.timers.t1;
        let txn = Txn {
            role,
            state: State::Trying,
            seq: 0,
            call_id: info.call_id.clone(),
            cseq: info.cseq,
            request: bytes,
            last: None,
            interval: t1,
            retransmit_at: Some(now + t1),
            give_up_at: Some(now + self.timers.give_up()),
            end_at: None,
        };
        self.insert(true, key, txn);
    }

    fn send_response(&mut self, now: Instant, info: &Info, bytes: Bytes) {
        self.transmit.push_back(bytes.clone());
        let Some(key) = info.key() else { return };
        let timers = self.timers;
        let Some(txn) = self.server.get_mut(&key) else {
            return;
        };
        txn.last = Some(bytes);
        let provisional = info.code < 200;
        match (txn.role, provisional, info.code < 300) {
            (_, true, _) => {
                txn.state = State::Proceeding;
                txn.end_at = Some(now + unanswered_limit(timers));
            }
            (Role::UasInvite, false, true) => {
                txn.state = State::Accepted;
                retransmit_from(txn, now, timers);
            }
            (Role::UasInvite, false, false) => {
                txn.state = State::Completed;
                retransmit_from(txn, now, timers);
            }
            (_, false, _) => {
                txn.state = State::Completed;
                txn.end_at = Some(now + timers.give_up());
            }
        }
    }

    /// A message arrived from the peer: `Some` to hand it up, `None` when it was a
    /// retransmission the transaction layer absorbed (answering it if needed).
    pub(crate) fn receive(&mut self, now: Instant, msg: SipMessage) -> Option<SipMessage> {
        let Some(info) = Info::of(&msg) else {
            return Some(msg);
        };
        let up = match info.method.as_deref() {
            Some("ACK") => self.receive_ack(now, &info),
            Some(_) => self.receive_request(now, &info),
            None => self.receive_response(now, &info, &msg),
        };
        up.then_some(msg)
    }

    fn receive_ack(&mut self, now: Instant, info: &Info) -> bool {
        let t4 = self.timers.t4;
        if let Some(txn) = info.key().and_then(|k| self.server.get_mut(&k)) {
            match txn.state {
                State::Completed => {
                    txn.state = State::Confirmed;
                    txn.retransmit_at = None;
                    txn.give_up_at = None;
                    txn.end_at = Some(now + t4);
                    return false;
                }
                State::Confirmed => return false,
                _ => {}
            }
        }
        // An ACK for a 2xx is a new transaction of its own: it ends our 2xx retransmission.
        let accepted = self.server.iter().find_map(|(k, t)| {
            (t.state == State::Accepted && t.call_id == info.call_id && t.cseq == info.cseq)
                .then(|| k.clone())
        });
        if let Some(key) = accepted {
            self.server.remove(&key);
        }
        true
    }

    fn receive_request(&mut self, now: Instant, info: &Info) -> bool {
        let Some(key) = info.key() else { return true };
        if let Some(txn) = self.server.get(&key) {
            if let Some(last) = &txn.last {
                self.transmit.push_back(last.clone());
            }
            return false;
        }
        let role = if key.method == "INVITE" {
            Role::UasInvite
        } else {
            Role::UasOther
        };
        let txn = Txn {
            role,
            state: if role == Role::UasInvite {
                State::Proceeding
            } else {
                State::Trying
            },
            seq: 0,
            call_id: info.call_id.clone(),
            cseq: info.cseq,
            request: Bytes::new(),
            last: None,
            interval: self.timers.t1,
            retransmit_at: None,
            give_up_at: None,
            // Bounded even if the layer above never answers.
            end_at: Some(now + unanswered_limit(self.timers)),
        };
        self.insert(false, key, txn);
        true
    }

    fn receive_response(&mut self, now: Instant, info: &Info, msg: &SipMessage) -> bool {
        let key = info.key();
        let Some(txn) = key.as_ref().and_then(|k| self.client.get_mut(k)) else {
            return self.stray_response(info);
        };
        match txn.role {
            Role::UacInvite => {
                let step = invite_response(txn, info.code, now, self.timers, msg);
                self.apply(key, info, step)
            }
            Role::UacOther => {
                // Hand up provisional answers and the first final one; absorb repeats.
                let live = matches!(txn.state, State::Trying | State::Proceeding);
                non_invite_response(txn, info.code, now, self.timers);
                live
            }
            _ => true,
        }
    }

    /// Carries out what a client INVITE transaction decided about a response.
    fn apply(&mut self, key: Option<Key>, info: &Info, step: InviteStep) -> bool {
        match step {
            InviteStep::Deliver => true,
            InviteStep::Absorb => false,
            InviteStep::Ack { ack, deliver } => {
                self.transmit.push_back(ack);
                deliver
            }
            InviteStep::Accepted { until } => {
                if let Some(k) = key {
                    self.client.remove(&k);
                }
                self.remember_ack(info.dialog(), None, until);
                true
            }
        }
    }

    /// A response no client transaction owns: a retransmitted 2xx to an INVITE gets our ACK
    /// again (§13.2.2.4) and is absorbed.
    fn stray_response(&mut self, info: &Info) -> bool {
        let is_invite_2xx = info.cseq_method == "INVITE" && (200..300).contains(&info.code);
        if !is_invite_2xx {
            return true;
        }
        match self.acks.get(&info.dialog()) {
            Some(mem) => {
                if let Some(ack) = &mem.ack {
                    self.transmit.push_back(ack.clone());
                }
                false
            }
            None => true,
        }
    }

    fn remember_ack(&mut self, dialog: (String, u32), ack: Option<Bytes>, until: Instant) {
        if !self.acks.contains_key(&dialog) && self.acks.len() >= self.max {
            let oldest = self
                .acks
                .iter()
                .min_by_key(|(_, m)| m.until)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.acks.remove(&k);
                self.dropped += 1;
            }
        }
        let mem = self
            .acks
            .entry(dialog)
            .or_insert(AckMemory { ack: None, until });
        if ack.is_some() {
            mem.ack = ack;
        }
        mem.until = mem.until.max(until);
    }

    fn insert(&mut self, client: bool, key: Key, mut txn: Txn) {
        if self.len() >= self.max {
            self.drop_oldest();
        }
        txn.seq = self.next_seq;
        self.next_seq += 1;
        let table = if client {
            &mut self.client
        } else {
            &mut self.server
        };
        table.insert(key, txn);
    }

    fn drop_oldest(&mut self) {
        let oldest = |t: &HashMap<Key, Txn>| {
            t.iter()
                .min_by_key(|(_, x)| x.seq)
                .map(|(k, x)| (k.clone(), x.seq))
        };
        let (c, s) = (oldest(&self.client), oldest(&self.server));
        let from_client = match (&c, &s) {
            (Some((_, a)), Some((_, b))) => a < b,
            (Some(_), None) => true,
            _ => false,
        };
        let removed = if from_client {
            c.and_then(|(k, _)| self.client.remove(&k))
        } else {
            s.and_then(|(k, _)| self.server.remove(&k))
        };
        if removed.is_some() {
            self.dropped += 1;
            tracing::warn!("SIP transaction table full: oldest transaction dropped");
        }
    }

    /// Fires every timer due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let timers = self.timers;
        let mut expired = Vec::new();
        for (key, txn) in self.client.iter_mut() {
            if client_timers(txn, now, timers, &mut self.transmit, &mut self.deliver) {
                expired.push(key.clone());
            }
        }
        for key in expired.drain(..) {
            self.client.remove(&key);
        }
        for (key, txn) in self.server.iter_mut() {
            if server_timers(txn, now, timers, &mut self.transmit) {
                expired.push(key.clone());
            }
        }
        for key in expired {
            self.server.remove(&key);
        }
        self.acks.retain(|_, m| m.until > now);
    }
}

/// What a client INVITE transaction does with a response.
enum InviteStep {
    Deliver,
    Absorb,
    /// Send this ACK (non-2xx); hand the response up if it is the first.
    Ack {
        ack: Bytes,
        deliver: bool,
    },
    /// A 2xx: the transaction ends; the core absorbs repeats until `until`.
    Accepted {
        until: Instant,
    },
}

fn invite_response(
    txn: &mut Txn,
    code: u16,
    now: Instant,
    timers: Timers,
    msg: &SipMessage,
) -> InviteStep {
    let live = matches!(txn.state, State::Trying | State::Proceeding);
    match code {
        _ if txn.state == State::TimedOut => InviteStep::Absorb,
        100..=199 if live => {
            txn.state = State::Proceeding;
            txn.retransmit_at = None;
            txn.give_up_at = None;
            InviteStep::Deliver
        }
        200..=299 => InviteStep::Accepted {
            until: now + timers.give_up(),
        },
        300..=699 if live => {
            let Some(ack) = ack_for(&txn.request, msg) else {
                return InviteStep::Deliver;
            };
            txn.state = State::Completed;
            txn.last = Some(ack.clone());
            txn.retransmit_at = None;
            txn.give_up_at = None;
            txn.end_at = Some(now + timers.d);
            InviteStep::Ack { ack, deliver: true }
        }
        300..=699 => match &txn.last {
            Some(ack) => InviteStep::Ack {
                ack: ack.clone(),
                deliver: false,
            },
            None => InviteStep::Absorb,
        },
        _ => InviteStep::Absorb,
    }
}

fn non_invite_response(txn: &mut Txn, code: u16, now: Instant, timers: Timers) {
    match (txn.state, code) {
        (State::Trying | State::Proceeding, 100..=199) => txn.state = State::Proceeding,
        (State::Trying | State::Proceeding, _) => {
            txn.state = State::Completed;
            txn.retransmit_at = None;
            txn.give_up_at = None;
            txn.end_at = Some(now + timers.t4);
        }
        _ => {}
    }
}

/// How long a server transaction waits for the layer above's next response before it is
/// forgotten (each provisional response starts it again).
fn unanswered_limit(timers: Timers) -> Duration {
    timers
        .give_up()
        .saturating_mul(4)
        .max(Duration::from_secs(180))
}

/// Starts retransmitting a server transaction's last response (timer G, or the 2xx of
/// §13.3.1.4) with the 64*T1 limit (timer H).
fn retransmit_from(txn: &mut Txn, now: Instant, timers: Timers) {
    txn.interval = timers.t1;
    txn.retransmit_at = Some(now + timers.t1);
    txn.give_up_at = Some(now + timers.give_up());
    txn.end_at = None;
}

/// Timers A, B, D (INVITE) and E, F, K (non-INVITE). True when the transaction is over.
fn client_timers(
    txn: &mut Txn,
    now: Instant,
    timers: Timers,
    transmit: &mut VecDeque<Bytes>,
    deliver: &mut VecDeque<SipMessage>,
) -> bool {
    if txn.end_at.is_some_and(|t| t <= now) {
        return true;
    }
    if txn.give_up_at.is_some_and(|t| t <= now) {
        // Timer B or F: the peer never answered.
        if let Some(timeout) = request_timeout(&txn.request) {
            deliver.push_back(timeout);
        }
        txn.state = State::TimedOut;
        txn.retransmit_at = None;
        txn.give_up_at = None;
        txn.end_at = Some(now + timers.d.max(timers.t4));
        return false;
    }
    if let Some(at) = txn.retransmit_at.filter(|t| *t <= now) {
        transmit.push_back(txn.request.clone());
        txn.interval = match (txn.role, txn.state) {
            // Timer A doubles without a ceiling.
            (Role::UacInvite, _) => txn.interval.saturating_mul(2),
            (_, State::Proceeding) => timers.t2,
            _ => txn.interval.saturating_mul(2).min(timers.t2),
        };
        txn.retransmit_at = Some(at.max(now) + txn.interval);
    }
    false
}

/// Timers G, H, I, J and the 2xx retransmission. True when the transaction is over.
fn server_timers(
    txn: &mut Txn,
    now: Instant,
    timers: Timers,
    transmit: &mut VecDeque<Bytes>,
) -> bool {
    if txn.end_at.is_some_and(|t| t <= now) {
        return true;
    }
    if txn.give_up_at.is_some_and(|t| t <= now) {
        if txn.state == State::Accepted {
            tracing::warn!(call_id = %txn.call_id, "no ACK for our 2xx within 64*T1");
        }
        return true;
    }
    if let Some(at) = txn.retransmit_at.filter(|t| *t <= now) {
        if let Some(last) = &txn.last {
            transmit.push_back(last.clone());
        }
        txn.interval = txn.interval.saturating_mul(2).min(timers.t2);
        txn.retransmit_at = Some(at.max(now) + txn.interval);
    }
    false
}

/// The ACK a client INVITE transaction sends for a non-2xx final response (§17.1.1.3): the
/// INVITE's Request-URI, top Via, From, Call-ID, CSeq number and Route set, the response's To.
fn ack_for(invite: &Bytes, response: &SipMessage) -> Option<Bytes> {
    let request = crate::sip::parse(invite).ok()?;
    let text = std::str::from_utf8(invite).ok()?;
    let uri = text.lines().next()?.split_whitespace().nth(1)?;
    let value = |m: &'_ SipMessage, name| Some(m.headers_named(name).next()?.value().to_string());
    let via = value(&request, "Via")?;
    let cseq = request.view().cseq.seq;
    let mut out = format!("ACK {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n");
    out.push_str(&format!("From: {}\r\n", value(&request, "From")?));
    out.push_str(&format!("To: {}\r\n", value(response, "To")?));
    out.push_str(&format!("Call-ID: {}\r\n", request.view().call_id));
    out.push_str(&format!("CSeq: {cseq} ACK\r\n"));
    for route in request.headers_named("Route") {
        out.push_str(&format!("Route: {}\r\n", route.value()));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(Bytes::from(out))
}

/// The `408 Request Timeout` handed up when timer B or F fires (§17.1.1.2, §17.1.2.2).
fn request_timeout(request: &Bytes) -> Option<SipMessage> {
    let extras = crate::sip::ResponseExtras {
        to_tag: None,
        server: None,
        headers: &[],
    };
    let bytes = crate::sip::response_for(request, 408, "Request Timeout", &extras)?;
    crate::sip::parse(&bytes).ok()
}

#[cfg(test)]
mod tests;
