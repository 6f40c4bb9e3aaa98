//! The media port pool: RTP/RTCP socket pairs (even RTP port, RTCP on the next odd one,
//! RFC 3550 §11) bound from the configured range, drawn at random and returned when the call's
//! [`PortLease`] is dropped. Random, so a stranger cannot tell which ports the next call gets;
//! a pair just returned waits while others are free, so late packets of its last call do not
//! reach the next one.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use rand::Rng;

/// A range with no even port whose odd neighbour is also in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("media port range {first}-{last} holds no RTP/RTCP pair (an even port and the next one)")]
pub struct EmptyRange {
    /// First port of the range.
    pub(crate) first: u16,
    /// Last port of the range.
    pub(crate) last: u16,
}

/// No pair could be handed out.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// Every pair is in use by our calls or bound by another process.
    #[error("no free RTP/RTCP port pair in {first}-{last} ({in_use} pairs in use by calls)")]
    Exhausted {
        /// First port of the range.
        first: u16,
        /// Last port of the range.
        last: u16,
        /// Pairs held by calls.
        in_use: usize,
    },
    /// No pool serves this address family (`[media] advertise` has no address of it).
    #[error("no media ports for {family}: [media] advertise has no {family} address")]
    NoFamily {
        /// The family asked for.
        family: crate::config::IpFamily,
    },
    /// Binding failed for a reason other than the port being taken (e.g. the bind address is
    /// not local), so trying other ports would not help.
    #[error("cannot bind media sockets on {addr}: {source}")]
    Bind {
        /// The address we tried.
        addr: SocketAddr,
        /// What the OS said.
        source: io::Error,
    },
}

/// RTP/RTCP socket pairs from one port range on one local address. Cheap to clone; every clone
/// hands out from the same pool. Locked per call set-up, never per packet.
#[derive(Debug, Clone)]
pub struct PortPool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    bind_ip: IpAddr,
    /// First even port of the range.
    base: u16,
    first: u16,
    last: u16,
    state: Mutex<State>,
}

/// Random draws tried before a search of the whole range.
const DRAWS: usize = 16;

#[derive(Debug)]
struct State {
    /// `in_use[i]`: the pair `base + 2i` is leased.
    in_use: Vec<bool>,
    leased: usize,
    /// Pairs returned most recently, oldest first (at most half the range): handed out again
    /// only when no other pair is free.
    cooling: VecDeque<usize>,
    /// `cooling[..].contains(i)`, without the search.
    is_cooling: Vec<bool>,
}

impl State {
    /// Free and not cooling.
    fn ready(&self, pair: usize) -> bool {
        !self.in_use[pair] && !self.is_cooling[pair]
    }

    fn release(&mut self, pair: usize) {
        if std::mem::replace(&mut self.in_use[pair], false) {
            self.leased -= 1;
        }
        if self.cooling.len() >= self.in_use.len() / 2 {
            if let Some(oldest) = self.cooling.pop_front() {
                self.is_cooling[oldest] = false;
            }
        }
        if self.cooling.len() < self.in_use.len() / 2 && !self.is_cooling[pair] {
            self.cooling.push_back(pair);
            self.is_cooling[pair] = true;
        }
    }

    fn lease(&mut self, pair: usize) {
        self.in_use[pair] = true;
        self.leased += 1;
        if std::mem::take(&mut self.is_cooling[pair]) {
            self.cooling.retain(|&p| p != pair);
        }
    }

    /// The free pairs to try, in order: a few drawn at random (uniform while the range is
    /// not crowded), then every pair from a random start, first those not cooling, then the
    /// cooling ones. A pair may come more than once.
    fn candidates(&self) -> impl Iterator<Item = usize> + '_ {
        let pairs = self.in_use.len();
        let mut rng = rand::thread_rng();
        let draws: [usize; DRAWS] = std::array::from_fn(|_| rng.gen_range(0..pairs));
        let start = rng.gen_range(0..pairs);
        let sweep = move || (0..pairs).map(move |step| (start + step) % pairs);
        let free = |p: &usize| !self.in_use[*p];
        draws
            .into_iter()
            .chain(sweep())
            .filter(|&p| self.ready(p))
            .chain(sweep().filter(free))
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave `State` inconsistent (each update is
        // one assignment), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn port_of(&self, pair: usize) -> u16 {
        self.base + 2 * pair as u16
    }
}

impl PortPool {
    /// A pool of the pairs in `ports` (inclusive) on `bind_ip`. An odd first port is skipped;
    /// an even last port is unused (its RTCP port would be outside the range).
    pub fn new(bind_ip: IpAddr, ports: RangeInclusive<u16>) -> Result<Self, EmptyRange> {
        let (first, last) = (*ports.start(), *ports.end());
        let empty = EmptyRange { first, last };
        let base = first.checked_add(first % 2).ok_or(empty.clone())?;
        if first == 0 || base >= last {
            return Err(empty);
        }
        // Pairs (base, base + 1), (base + 2, base + 3) ... up to last.
        let pairs = usize::from(last - base).div_ceil(2);
        Ok(Self {
            shared: Arc::new(Shared {
                bind_ip,
                base,
                first,
                last,
                state: Mutex::new(State {
                    in_use: vec![false; pairs],
                    leased: 0,
                    cooling: VecDeque::new(),
                    is_cooling: vec![false; pairs],
                }),
            }),
        })
    }

    /// The local address sockets are bound to.
    pub fn bind_ip(&self) -> IpAddr {
        self.shared.bind_ip
    }

    /// Pairs in the range.
    pub(crate) fn capacity(&self) -> usize {
        self.shared.state().in_use.len()
    }

    /// Pairs currently leased to calls.
    pub fn in_use(&self) -> usize {
        self.shared.state().leased
    }

    /// Binds a free pair drawn at random (one just returned only when no other is free).
    /// Pairs another process holds are skipped. Once per call leg, never per packet.
    pub fn allocate(&self) -> Result<LegSockets, PortError> {
        let shared = &self.shared;
        let mut state = shared.state();
        let bound = state.candidates().find_map(|pair| {
            let rtp_port = shared.port_of(pair);
            match bind_pair(shared.bind_ip, rtp_port) {
                Ok(sockets) => Some(Ok((pair, rtp_port, sockets))),
                Err(e) if is_taken(&e) => None,
                Err(source) => Some(Err(PortError::Bind {
                    addr: SocketAddr::new(shared.bind_ip, rtp_port),
                    source,
                })),
            }
        });
        let Some((pair, rtp_port, (rtp, rtcp))) = bound.transpose()? else {
            return Err(PortError::Exhausted {
                first: shared.first,
                last: shared.last,
                in_use: state.leased,
            });
        };
        state.lease(pair);
        Ok(LegSockets {
            rtp,
            rtcp,
            lease: PortLease {
                pool: Arc::downgrade(shared),
                pair,
                rtp_port,
            },
        })
    }
}

fn is_taken(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
    )
}

fn bind_pair(ip: IpAddr, rtp_port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    let rtp = bind_one(SocketAddr::new(ip, rtp_port))?;
    let rtcp = bind_one(SocketAddr::new(ip, rtp_port + 1))?;
    rtp.set_nonblocking(true)?;
    rtcp.set_nonblocking(true)?;
    Ok((rtp, rtcp))
}

/// One UDP socket on `addr`. IPv6 sockets are IPv6 only (`IPV6_V6ONLY`): a socket on `::` would
/// otherwise take IPv4 too and claim the port from the IPv4 pool, which uses the same range.
fn bind_one(addr: SocketAddr) -> io::Result<UdpSocket> {
    use rustix::net::{sockopt, AddressFamily, SocketFlags, SocketType};
    if addr.is_ipv4() {
        return UdpSocket::bind(addr);
    }
    let fd = rustix::net::socket_with(
        AddressFamily::INET6,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    sockopt::set_ipv6_v6only(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    Ok(UdpSocket::from(fd))
}

/// The claim on one pair of the pool; dropping it returns the pair. Held by whoever holds the
/// sockets, and dropped after them.
#[derive(Debug)]
pub(crate) struct PortLease {
    pool: Weak<Shared>,
    pair: usize,
    rtp_port: u16,
}

impl PortLease {
    /// The RTP port (even).
    pub(crate) fn rtp_port(&self) -> u16 {
        self.rtp_port
    }

    /// The RTCP port (`rtp_port + 1`).
    pub(crate) fn rtcp_port(&self) -> u16 {
        self.rtp_port + 1
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Some(shared) = self.pool.upgrade() {
            shared.state().release(self.pair);
        }
    }
}

/// One leg's bound, non-blocking RTP and RTCP sockets and the lease on their ports.
#[derive(Debug)]
pub struct LegSockets {
    // Field order is drop order: sockets close before the pair goes back to the pool.
    /// RTP (and, with rtcp-mux, RTCP too).
    pub(crate) rtp: UdpSocket,
    /// RTCP when not multiplexed.
    pub(crate) rtcp: UdpSocket,
    /// Returns the pair to the pool when dropped.
    pub(crate) lease: PortLease,
}

impl LegSockets {
    /// The local RTP port, for SDP `m=` lines.
    pub fn rtp_port(&self) -> u16 {
        self.lease.rtp_port()
    }

    /// The local RTCP port, for SDP `a=rtcp:`.
    pub fn rtcp_port(&self) -> u16 {
        self.lease.rtcp_port()
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A range of `pairs` pairs starting at a port the OS just gave us, which is very likely
    /// free; tests tolerate others binding in it (that is a feature under test).
    fn free_range(pairs: u16) -> RangeInclusive<u16> {
        let probe = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        let start = port.min(u16::MAX - 2 * pairs) & !1;
        start..=start + 2 * pairs - 1
    }

    #[test]
    fn ranges_must_hold_a_pair() {
        assert!(PortPool::new(LOOPBACK, 40000..=40001).is_ok());
        assert!(PortPool::new(LOOPBACK, 40001..=40002).is_err());
        assert!(PortPool::new(LOOPBACK, 40000..=40000).is_err());
        assert!(PortPool::new(LOOPBACK, 0..=10).is_err());
        assert!(PortPool::new(LOOPBACK, 65535..=65535).is_err());
        assert_eq!(
            PortPool::new(LOOPBACK, 40001..=40010).unwrap().capacity(),
            4
        );
        assert_eq!(
            PortPool::new(LOOPBACK, 49152..=57500).unwrap().capacity(),
            4174
        );
    }

    #[test]
    fn pairs_are_even_and_odd_and_bound() {
        let pool = PortPool::new(LOOPBACK, free_range(8)).unwrap();
        let leg = pool.allocate().unwrap();
        assert_eq!(leg.rtp_port() % 2, 0);
        assert_eq!(leg.rtcp_port(), leg.rtp_port() + 1);
        assert_eq!(leg.rtp.local_addr().unwrap().port(), leg.rtp_port());
        assert_eq!(leg.rtcp.local_addr().unwrap().port(), leg.rtcp_port());
        assert_eq!(pool.in_use(), 1);
        drop(leg);
        assert_eq!(pool.in_use(), 0);
    }

    #[test]
    fn a_freed_pair_is_not_reused_while_others_are_free() {
        let pool = PortPool::new(LOOPBACK, free_range(4)).unwrap();
        for _ in 0..50 {
            let a = pool.allocate().unwrap();
            let first = a.rtp_port();
            drop(a);
            let b = pool.allocate().unwrap();
            assert_ne!(b.rtp_port(), first, "a just-freed pair was reused");
        }
        // With every other pair held, the cooling one is handed out.
        let last = pool.allocate().unwrap().rtp_port();
        let held: Vec<_> = std::iter::from_fn(|| pool.allocate().ok()).collect();
        assert!(
            held.iter().any(|leg| leg.rtp_port() == last),
            "never handed out"
        );
    }

    /// Security review, finding 1: ports handed out round-robin told a stranger which ports
    /// the next call would get.
    #[test]
    fn pairs_are_drawn_at_random() {
        let pool = PortPool::new(LOOPBACK, free_range(64)).unwrap();
        let mut ports = Vec::new();
        let mut held = Vec::new();
        for _ in 0..40 {
            let leg = pool.allocate().unwrap();
            ports.push(leg.rtp_port());
            held.push(leg);
            if held.len() > 3 {
                held.remove(0);
            }
        }
        let next_in_line = ports.windows(2).filter(|w| w[1] == w[0] + 2).count();
        // Round-robin: 39 of 39. At random: about 1 in 64 each.
        assert!(
            next_in_line < 10,
            "{next_in_line} of 39 were the next pair: {ports:?}"
        );
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 25, "{} distinct of 40", distinct.len());
    }

    #[test]
    fn exhaustion_and_release() {
        let pool = PortPool::new(LOOPBACK, free_range(3)).unwrap();
        let mut held: Vec<_> = std::iter::from_fn(|| pool.allocate().ok()).collect();
        assert!(!held.is_empty() && held.len() <= 3);
        assert!(matches!(pool.allocate(), Err(PortError::Exhausted { .. })));
        held.pop();
        assert!(
            pool.allocate().is_ok(),
            "a returned pair is handed out again"
        );
    }

    #[test]
    fn pairs_bound_by_someone_else_are_skipped() {
        let range = free_range(4);
        let squatter = UdpSocket::bind((LOOPBACK, *range.start() + 1));
        let pool = PortPool::new(LOOPBACK, range.clone()).unwrap();
        let leg = pool.allocate().unwrap();
        if squatter.is_ok() {
            assert_ne!(
                leg.rtp_port(),
                *range.start(),
                "the pair whose RTCP port is taken"
            );
        }
    }

    #[test]
    fn a_non_local_bind_address_is_an_error_not_exhaustion() {
        // TEST-NET-1: never a local address.
        let pool = PortPool::new("192.0.2.1".parse().unwrap(), free_range(2)).unwrap();
        assert!(matches!(pool.allocate(), Err(PortError::Bind { .. })));
    }

    /// IPv6 loopback pairs, bound IPv6 only: the same ports stay free for the IPv4 pool.
    #[test]
    fn ipv6_pairs_bind_on_ipv6_only() {
        let v6: IpAddr = "::1".parse().unwrap();
        let range = free_range(8);
        let pool = PortPool::new(v6, range.clone()).unwrap();
        let leg = pool.allocate().unwrap();
        assert_eq!(leg.rtp.local_addr().unwrap().ip(), v6);
        assert_eq!(leg.rtcp.local_addr().unwrap().port(), leg.rtcp_port());
        assert!(range.contains(&leg.rtp_port()));
        // A pool on `::` beside one on 0.0.0.0 over the same range: a port is taken in both.
        let any6 = PortPool::new("::".parse().unwrap(), range.clone()).unwrap();
        let any4 = PortPool::new("0.0.0.0".parse().unwrap(), range).unwrap();
        let six: Vec<_> = std::iter::from_fn(|| any6.allocate().ok()).collect();
        let four: Vec<_> = std::iter::from_fn(|| any4.allocate().ok()).collect();
        let ports = |legs: &[LegSockets]| {
            let mut p: Vec<u16> = legs.iter().map(|l| l.rtp_port()).collect();
            p.sort_unstable();
            p
        };
        let both: Vec<u16> = ports(&six)
            .into_iter()
            .filter(|p| ports(&four).contains(p))
            .collect();
        assert!(
            !both.is_empty(),
            "v6 {:?} v4 {:?}",
            ports(&six),
            ports(&four)
        );
        // Each socket hears its own family only.
        let leg6 = six.iter().find(|l| l.rtp_port() == both[0]).unwrap();
        let leg4 = four.iter().find(|l| l.rtp_port() == both[0]).unwrap();
        let sender = UdpSocket::bind((LOOPBACK, 0)).unwrap();
        sender.send_to(b"v4", (LOOPBACK, both[0])).unwrap();
        let mut buf = [0u8; 4];
        // Non-blocking sockets: wait for the datagram by polling briefly.
        let got = (0..200).find_map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(5));
            leg4.rtp.recv_from(&mut buf).ok()
        });
        assert_eq!(got.map(|(n, _)| n), Some(2));
        assert!(
            leg6.rtp.recv_from(&mut buf).is_err(),
            "nothing on the IPv6 socket"
        );
    }

    #[test]
    fn a_lease_outliving_its_pool_is_harmless() {
        let pool = PortPool::new(LOOPBACK, free_range(2)).unwrap();
        let leg = pool.allocate().unwrap();
        drop(pool);
        drop(leg);
    }
}
