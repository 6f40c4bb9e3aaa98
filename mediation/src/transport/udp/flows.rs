//! The UDP door's flow table, sans-IO: which remote addresses have a flow (their transactions
//! and the connection ids the call layer knows them by), how many each source IP may hold, which
//! flow is evicted or forgotten when, whose timers are due, and which flow a response belongs to.
//! `Instant`s go in; the endpoint in `udp.rs` does the socket and channel work.
//!
//! - A flow lives while it has transactions or activity (a datagram in, a message out) within
//!   the idle time (64*T1). An idle flow that never carried a call is forgotten with its
//!   connection ids (the call layer is told `Closed`). One that carried a call is parked: its
//!   transactions and table place go, its connection ids stay, so a later send on them (a BYE
//!   hours into the call) or a datagram from the same address brings the flow back under the
//!   same id, unseen by the call layer. Parked ids go when the call layer closes them (the
//!   driver's idle sweep, once no call uses them).
//! - Flows that never carried a call are capped per source IP; a new address from an IP at its
//!   cap evicts that IP's least recently active such flow, so spoofed ports cannot keep the real
//!   gateway out. Live flows in all are capped too; flows we open or bring back for the call
//!   layer are never refused.
//! - Deadlines are kept in order, so a timer touches only the flows that are due.
//! - Requests sent are indexed by top Via branch and method, so a response from another port
//!   of the gateway finds its transaction without a search through every flow.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::peer::ConnId;
use crate::sip::transaction::{Timers, Transactions};

/// How many flows may be held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowLimits {
    /// Flows that never carried a call, per source IP address.
    pub(crate) per_source: usize,
    /// Live flows in all (flows we open or bring back for the call layer may exceed it).
    pub(crate) total: usize,
}

impl Default for FlowLimits {
    fn default() -> Self {
        Self {
            per_source: 32,
            total: 4096,
        }
    }
}

/// Why a new flow was not made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct TableFull;

/// One remote address with a flow.
#[derive(Debug)]
pub(super) struct Flow {
    /// The connection ids the call layer knows this address by; the first carries what
    /// arrives.
    pub(crate) conns: Vec<ConnId>,
    /// Its transactions.
    pub(crate) txns: Transactions,
    /// Transactions dropped so far (to count the difference).
    pub(crate) dropped: u64,
    last_active: Instant,
    /// Carried a call: parked, not forgotten, when idle; never evicted.
    pinned: bool,
    /// Its entry in the deadline order.
    scheduled: Option<Instant>,
    /// Requests sent here that may still be answered: (branch, method).
    branches: Vec<(String, String)>,
    /// `branches.len()` after the last pruning.
    branches_kept: usize,
}

impl Flow {
    fn new(conn: ConnId, timers: Timers, now: Instant, pinned: bool) -> Self {
        Self {
            conns: vec![conn],
            txns: Transactions::new(timers),
            dropped: 0,
            last_active: now,
            pinned,
            scheduled: None,
            branches: Vec::new(),
            branches_kept: 0,
        }
    }
}

/// What became of a flow that was idle.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Gone {
    /// Carried a call: its connection ids stay for the call layer.
    Parked,
    /// Forgotten with these connection ids (tell the call layer they are closed).
    Closed(Vec<ConnId>),
}

/// Every flow of the UDP door.
#[derive(Debug)]
pub(super) struct FlowTable {
    timers: Timers,
    limits: FlowLimits,
    /// How long a flow without transactions lives after its last activity.
    idle: Duration,
    flows: HashMap<SocketAddr, Flow>,
    /// Addresses whose idle flow carried a call → their connection ids.
    parked: HashMap<SocketAddr, Vec<ConnId>>,
    /// Every connection id the call layer holds → its address (live or parked).
    conns: HashMap<ConnId, SocketAddr>,
    /// Per source IP, its live flows that never carried a call, least recently active first.
    unpinned: HashMap<IpAddr, BTreeSet<(Instant, SocketAddr)>>,
    /// Live flows by their next deadline.
    deadlines: BTreeSet<(Instant, SocketAddr)>,
    /// (top Via branch, CSeq method) of requests sent → the flow they were sent on.
    owners: HashMap<(String, String), SocketAddr>,
}

impl FlowTable {
    /// An empty table; idle flows go after 64*T1.
    pub(super) fn new(timers: Timers, limits: FlowLimits) -> Self {
        Self {
            timers,
            limits: FlowLimits {
                per_source: limits.per_source.max(1),
                total: limits.total.max(1),
            },
            idle: timers.give_up(),
            flows: HashMap::new(),
            parked: HashMap::new(),
            conns: HashMap::new(),
            unpinned: HashMap::new(),
            deadlines: BTreeSet::new(),
            owners: HashMap::new(),
        }
    }

    /// Live flows.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.flows.len()
    }

    /// Parked addresses (idle flows that carried a call).
    #[cfg(test)]
    pub(super) fn parked(&self) -> usize {
        self.parked.len()
    }

    /// Connection ids the call layer holds here.
    #[cfg(test)]
    pub(super) fn conns(&self) -> usize {
        self.conns.len()
    }

    /// True when `remote` has a live flow.
    pub(super) fn is_live(&self, remote: SocketAddr) -> bool {
        self.flows.contains_key(&remote)
    }

    /// True when `remote` is known (live or parked): it may be answered.
    pub(super) fn knows(&self, remote: SocketAddr) -> bool {
        self.flows.contains_key(&remote) || self.parked.contains_key(&remote)
    }

    /// The live flow of `remote`.
    pub(super) fn flow_mut(&mut self, remote: SocketAddr) -> Option<&mut Flow> {
        self.flows.get_mut(&remote)
    }

    /// The address `conn` belongs to, its flow brought back if it was parked.
    pub(super) fn remote_of(&mut self, now: Instant, conn: ConnId) -> Option<SocketAddr> {
        let remote = *self.conns.get(&conn)?;
        self.revive(now, remote);
        Some(remote)
    }

    /// Brings back the parked flow of `remote` under its old connection ids. False when it is
    /// not parked.
    pub(super) fn revive(&mut self, now: Instant, remote: SocketAddr) -> bool {
        let Some(conns) = self.parked.remove(&remote) else {
            return false;
        };
        let mut flow = Flow::new(ConnId(0), self.timers, now, true);
        flow.conns = conns;
        self.flows.insert(remote, flow);
        self.update(now, remote, true);
        true
    }

    /// A new flow for a datagram from `remote` (not known yet; check with
    /// [`FlowTable::knows`]), delivering on `conn`. Makes
    /// room first: the least recently active call-less flow of the same IP goes when the IP is
    /// at its cap or the table is full; its connection ids are returned to be reported closed.
    pub(super) fn insert_inbound(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        conn: ConnId,
    ) -> Result<Vec<ConnId>, TableFull> {
        if self.knows(remote) {
            // Not new after all: `conn` joins it.
            self.insert_outbound(now, remote, conn);
            return Ok(Vec::new());
        }
        let ip = remote.ip();
        let own = self.unpinned.get(&ip).map_or(0, BTreeSet::len);
        let mut evicted = Vec::new();
        if own >= self.limits.per_source || self.flows.len() >= self.limits.total {
            let oldest = self
                .unpinned
                .get(&ip)
                .and_then(|set| set.first())
                .map(|(_, r)| *r);
            match oldest {
                Some(victim) => evicted = self.forget(victim),
                None => return Err(TableFull),
            }
        }
        self.conns.insert(conn, remote);
        self.flows
            .insert(remote, Flow::new(conn, self.timers, now, false));
        self.update(now, remote, true);
        Ok(evicted)
    }

    /// Adds `conn` (one we open toward `remote`) to its flow, making or bringing one back if
    /// needed. Never refused: the call layer's own connections are bounded by its calls.
    pub(super) fn insert_outbound(&mut self, now: Instant, remote: SocketAddr, conn: ConnId) {
        self.conns.insert(conn, remote);
        if self.revive(now, remote) || self.flows.contains_key(&remote) {
            let flow = self.flows.get_mut(&remote).expect("live");
            flow.conns.push(conn);
            self.pin(remote);
        } else {
            self.flows
                .insert(remote, Flow::new(conn, self.timers, now, true));
        }
        self.update(now, remote, true);
    }

    /// The call layer no longer needs `conn`. False when it was unknown. An address left
    /// without connection ids is forgotten with its transactions.
    pub(super) fn close(&mut self, conn: ConnId) -> bool {
        let Some(remote) = self.conns.remove(&conn) else {
            return false;
        };
        if let Some(conns) = self.parked.get_mut(&remote) {
            conns.retain(|c| *c != conn);
            if conns.is_empty() {
                self.parked.remove(&remote);
            }
        } else if let Some(flow) = self.flows.get_mut(&remote) {
            flow.conns.retain(|c| *c != conn);
            if flow.conns.is_empty() {
                self.forget(remote);
            }
        }
        true
    }

    /// After `remote`'s flow received, sent or fired timers: note activity (`active`: a
    /// datagram in or a message out), whether it now carries a call, and its next deadline.
    pub(super) fn update(&mut self, now: Instant, remote: SocketAddr, active: bool) {
        let idle = self.idle;
        let Some(flow) = self.flows.get_mut(&remote) else {
            return;
        };
        let before = flow.last_active;
        if active {
            flow.last_active = now.max(flow.last_active);
        }
        let pin = !flow.pinned && flow.txns.carried_call();
        if pin {
            flow.pinned = true;
        }
        let txns = flow.txns.poll_timeout();
        let expiry = flow.txns.is_empty().then(|| flow.last_active + idle);
        let deadline = [txns, expiry].into_iter().flatten().min();
        let old = std::mem::replace(&mut flow.scheduled, deadline);
        let (last, pinned) = (flow.last_active, flow.pinned);
        // Forget requests whose transactions ended, now and then (amortised: when the list
        // has doubled since the last time).
        if flow.branches.len() > 2 * flow.branches_kept.max(16) {
            let txns = &flow.txns;
            let (keep, ended): (Vec<_>, Vec<_>) = std::mem::take(&mut flow.branches)
                .into_iter()
                .partition(|(b, m)| txns.has_client(b, m));
            flow.branches = keep;
            flow.branches_kept = flow.branches.len();
            for key in ended {
                if self.owners.get(&key) == Some(&remote) {
                    self.owners.remove(&key);
                }
            }
        }
        if old != deadline {
            if let Some(at) = old {
                self.deadlines.remove(&(at, remote));
            }
            if let Some(at) = deadline {
                self.deadlines.insert((at, remote));
            }
        }
        let set = self.unpinned.entry(remote.ip()).or_default();
        set.remove(&(before, remote));
        if !pinned {
            set.insert((last, remote));
        }
        if set.is_empty() {
            self.unpinned.remove(&remote.ip());
        }
    }

    /// The earliest deadline of any flow.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The flows whose deadline has come, taken out of the order (put them back with
    /// [`FlowTable::update`] or [`FlowTable::expire`]).
    pub(super) fn due(&mut self, now: Instant) -> Vec<SocketAddr> {
        let mut due = Vec::new();
        while let Some(&(at, remote)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            if let Some(flow) = self.flows.get_mut(&remote) {
                flow.scheduled = None;
            }
            due.push(remote);
        }
        due
    }

    /// Parks or forgets `remote`'s flow if it has been idle (no transactions, no activity) for
    /// the idle time; otherwise schedules it again and returns `None`.
    pub(super) fn expire(&mut self, now: Instant, remote: SocketAddr) -> Option<Gone> {
        let flow = self.flows.get(&remote)?;
        if !flow.txns.is_empty() || now < flow.last_active + self.idle {
            self.update(now, remote, false);
            return None;
        }
        if !flow.pinned {
            return Some(Gone::Closed(self.forget(remote)));
        }
        let conns = self.remove_live(remote)?.conns;
        self.parked.insert(remote, conns);
        Some(Gone::Parked)
    }

    /// Remembers that a request with this top Via branch and method went out on `remote`.
    pub(super) fn sent_request(&mut self, remote: SocketAddr, branch: String, method: String) {
        let Some(flow) = self.flows.get_mut(&remote) else {
            return;
        };
        let key = (branch, method.to_ascii_uppercase());
        flow.branches.push(key.clone());
        self.owners.insert(key, remote);
    }

    /// The flow a request with this top Via branch and method was sent on, if it is live.
    pub(super) fn sent_on(&self, branch: &str, method: &str) -> Option<SocketAddr> {
        let key = (branch.to_string(), method.to_ascii_uppercase());
        self.owners
            .get(&key)
            .copied()
            .filter(|r| self.flows.contains_key(r))
    }

    /// Forgets `remote` entirely (live or parked); returns its connection ids.
    fn forget(&mut self, remote: SocketAddr) -> Vec<ConnId> {
        let conns = match self.remove_live(remote) {
            Some(flow) => flow.conns,
            None => self.parked.remove(&remote).unwrap_or_default(),
        };
        for conn in &conns {
            self.conns.remove(conn);
        }
        conns
    }

    /// Takes `remote`'s live flow out of every index, keeping its connection ids mapped.
    fn remove_live(&mut self, remote: SocketAddr) -> Option<Flow> {
        let flow = self.flows.remove(&remote)?;
        if let Some(at) = flow.scheduled {
            self.deadlines.remove(&(at, remote));
        }
        if let Some(set) = self.unpinned.get_mut(&remote.ip()) {
            set.remove(&(flow.last_active, remote));
            if set.is_empty() {
                self.unpinned.remove(&remote.ip());
            }
        }
        for key in &flow.branches {
            if self.owners.get(key) == Some(&remote) {
                self.owners.remove(key);
            }
        }
        Some(flow)
    }

    fn pin(&mut self, remote: SocketAddr) {
        let Some(flow) = self.flows.get_mut(&remote) else {
            return;
        };
        if flow.pinned {
            return;
        }
        flow.pinned = true;
        let key = (flow.last_active, remote);
        if let Some(set) = self.unpinned.get_mut(&remote.ip()) {
            set.remove(&key);
            if set.is_empty() {
                self.unpinned.remove(&remote.ip());
            }
        }
    }
}

#[cfg(test)]
mod tests;
