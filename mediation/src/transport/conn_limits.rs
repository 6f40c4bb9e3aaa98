//! Connection limits at the front doors. Each listener has its own pool of `max_total` SIP
//! connections, so strangers flooding the gateway TCP door cannot take the next hop's places;
//! within a pool, at most `max_per_source` come from one source (an IPv4 address, or an IPv6
//! /64: one host holds a whole /64, so counting its 2^64 addresses apart would be no limit),
//! and the last `reserved` places are kept for configured peers' addresses. Taken at accept,
//! before any TLS work; given back when the connection's task ends. Touched once per
//! connection, never per message.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LimitHit {
    /// `max_connections`.
    Total,
    /// `max_connections_per_source`.
    PerSource,
    /// The places left are kept for configured peers.
    Reserved,
}

impl LimitHit {
    /// The metric label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            LimitHit::Total => "max_connections",
            LimitHit::PerSource => "max_connections_per_source",
            LimitHit::Reserved => "reserved_for_peers",
        }
    }

    /// Every label value, to export the counters at zero.
    pub(crate) const LABELS: [&'static str; 3] = [
        "max_connections",
        "max_connections_per_source",
        "reserved_for_peers",
    ];
}

/// What a connection's source counts as: an IPv4 address, or the /64 of an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct SourceKey(IpAddr);

impl SourceKey {
    /// The key of `ip` (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub(super) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => SourceKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => SourceKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    SourceKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

/// The limits of every listener, before any pool is made.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionLimits {
    max_total: usize,
    max_per_source: usize,
    reserved: usize,
    /// Configured peers' addresses, which may take the reserved places.
    peers: Arc<HashSet<SourceKey>>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_source: HashMap<SourceKey, usize>,
}

/// One listener's pool of connection places.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionPool {
    limits: ConnectionLimits,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection's place; dropping it gives the place back.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    source: SourceKey,
    counts: Arc<Mutex<Counts>>,
}

impl ConnectionLimits {
    /// `max_total` connections per listener, `max_per_source` from one source, and the last
    /// tenth of each pool (at most 64 places) kept for `peers`.
    pub(crate) fn new(
        max_total: usize,
        max_per_source: usize,
        peers: impl IntoIterator<Item = IpAddr>,
    ) -> Self {
        let peers: HashSet<_> = peers.into_iter().map(SourceKey::of).collect();
        let reserved = if peers.is_empty() {
            0
        } else {
            (max_total / 10).min(64)
        };
        Self {
            max_total,
            max_per_source,
            reserved,
            peers: Arc::new(peers),
        }
    }

    /// A new, empty pool under these limits (one per listener).
    pub(crate) fn pool(&self) -> ConnectionPool {
        ConnectionPool {
            limits: self.clone(),
            counts: Arc::default(),
        }
    }
}

impl ConnectionPool {
    /// A place for a connection from `ip`, or the limit that refuses it.
    pub(crate) fn acquire(&self, ip: IpAddr) -> Result<ConnectionSlot, LimitHit> {
        let limits = &self.limits;
        let source = SourceKey::of(ip);
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if c.total >= limits.max_total {
            return Err(LimitHit::Total);
        }
        if c.total >= limits.max_total - limits.reserved && !limits.peers.contains(&source) {
            return Err(LimitHit::Reserved);
        }
        let from_source = c.by_source.entry(source).or_default();
        if *from_source >= limits.max_per_source {
            return Err(LimitHit::PerSource);
        }
        *from_source += 1;
        c.total += 1;
        Ok(ConnectionSlot {
            source,
            counts: self.counts.clone(),
        })
    }

    /// Connections held now.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).total
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                c.by_source.remove(&self.source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_source_and_total_limits_refuse_and_give_back() {
        let limits = ConnectionLimits::new(3, 2, []).pool();
        let (a, b) = (ip("10.0.0.1"), ip("10.0.0.2"));
        let a1 = limits.acquire(a).unwrap();
        let _a2 = limits.acquire(a).unwrap();
        assert_eq!(limits.acquire(a).unwrap_err(), LimitHit::PerSource);
        let _b1 = limits.acquire(b).unwrap();
        assert_eq!(limits.acquire(b).unwrap_err(), LimitHit::Total);
        assert_eq!(limits.in_use(), 3);
        drop(a1);
        assert_eq!(limits.in_use(), 2);
        let _b2 = limits.acquire(b).expect("a place was given back");
        assert_eq!(limits.acquire(b).unwrap_err(), LimitHit::Total);
    }

    /// Security review, finding 5: one /64 is one source.
    #[test]
    fn an_ipv6_64_counts_as_one_source() {
        let limits = ConnectionLimits::new(100, 2, []).pool();
        let _first = limits.acquire(ip("2001:db8:1:2::1")).unwrap();
        let _second = limits.acquire(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            limits
                .acquire(ip("2001:db8:1:2:dead:beef:0:1"))
                .unwrap_err(),
            LimitHit::PerSource
        );
        let _other = limits.acquire(ip("2001:db8:1:3::1")).expect("another /64");
        let _v4 = limits.acquire(ip("192.0.2.1")).unwrap();
        let _mapped = limits.acquire(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(
            limits.acquire(ip("::ffff:192.0.2.1")).unwrap_err(),
            LimitHit::PerSource,
            "a v4-mapped address counts as its IPv4 address"
        );
    }

    /// Security review, finding 5: strangers cannot take the places kept for configured peers,
    /// and each listener has its own pool.
    #[test]
    fn strangers_leave_the_reserve_to_peers_and_each_listener_its_own_pool() {
        let peer = ip("192.0.2.10");
        let limits = ConnectionLimits::new(20, 1, [peer]);
        let (gateway_tcp, next_hop) = (limits.pool(), limits.pool());
        let strangers: Vec<_> = (1..=18u8)
            .map(|i| gateway_tcp.acquire(IpAddr::from([203, 0, 113, i])).unwrap())
            .collect();
        assert_eq!(
            gateway_tcp.acquire(ip("203.0.113.99")).unwrap_err(),
            LimitHit::Reserved
        );
        let _peer = gateway_tcp
            .acquire(peer)
            .expect("the reserve is the peer's");
        assert_eq!(strangers.len(), 18);
        assert_eq!(next_hop.in_use(), 0);
        let _nh = next_hop.acquire(ip("203.0.113.1")).expect("its own pool");
    }

    #[test]
    fn no_reserve_without_configured_peers() {
        let limits = ConnectionLimits::new(5, 5, []).pool();
        let held: Vec<_> = (0..5)
            .map(|_| limits.acquire(ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(held.len(), 5);
    }
}
