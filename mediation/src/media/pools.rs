//! The media port pools, one per address family we advertise: a leg's sockets come from the
//! pool of its peer's family (docs/design.md §3). Both pools use the configured port range; the
//! IPv6 sockets are IPv6 only, so a port is free in each family on its own.

use std::net::IpAddr;
use std::ops::RangeInclusive;

use super::ports::{EmptyRange, LegSockets, PortError, PortPool};
use crate::config::IpFamily;

/// One [`PortPool`] per family that has a bind address. Cheap to clone, as the pools are.
#[derive(Debug, Clone, Default)]
pub(crate) struct PortPools {
    v4: Option<PortPool>,
    v6: Option<PortPool>,
}

/// The free pairs of one family's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FamilyUsage {
    /// The family.
    pub(crate) family: IpFamily,
    /// Pairs leased to calls.
    pub(crate) in_use: usize,
    /// Pairs in the range.
    pub(crate) capacity: usize,
}

impl PortPools {
    /// A pool on each bind address (at most one per family: a later one of the same family
    /// replaces an earlier one), all over `ports`.
    pub(crate) fn new(
        binds: impl IntoIterator<Item = IpAddr>,
        ports: RangeInclusive<u16>,
    ) -> Result<Self, EmptyRange> {
        let mut pools = Self::default();
        for ip in binds {
            let pool = Some(PortPool::new(ip, ports.clone())?);
            match IpFamily::of(ip) {
                IpFamily::V4 => pools.v4 = pool,
                IpFamily::V6 => pools.v6 = pool,
            }
        }
        Ok(pools)
    }

    /// The pool of `family`, if there is one.
    pub(crate) fn get(&self, family: IpFamily) -> Option<&PortPool> {
        match family {
            IpFamily::V4 => self.v4.as_ref(),
            IpFamily::V6 => self.v6.as_ref(),
        }
    }

    /// Binds a free pair from the pool of `family`.
    pub(crate) fn allocate(&self, family: IpFamily) -> Result<LegSockets, PortError> {
        self.get(family)
            .ok_or(PortError::NoFamily { family })?
            .allocate()
    }

    /// Each pool's use, IPv4 first.
    pub(crate) fn usage(&self) -> Vec<FamilyUsage> {
        IpFamily::ALL
            .into_iter()
            .filter_map(|family| {
                self.get(family).map(|p| FamilyUsage {
                    family,
                    in_use: p.in_use(),
                    capacity: p.capacity(),
                })
            })
            .collect()
    }

    /// Pairs leased to calls, all families.
    pub(crate) fn in_use(&self) -> usize {
        self.usage().iter().map(|u| u.in_use).sum()
    }

    /// Pairs in all, all families.
    pub(crate) fn capacity(&self) -> usize {
        self.usage().iter().map(|u| u.capacity).sum()
    }
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;

    /// A range of `pairs` pairs the OS just showed free on IPv4 loopback.
    fn free_range(pairs: u16) -> RangeInclusive<u16> {
        let probe = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        let port = probe.local_addr().unwrap().port();
        let start = port.min(u16::MAX - 2 * pairs) & !1;
        start..=start + 2 * pairs - 1
    }

    #[test]
    fn each_family_draws_from_its_own_pool_on_its_own_address() {
        let v4: IpAddr = "127.0.0.1".parse().unwrap();
        let v6: IpAddr = "::1".parse().unwrap();
        let pools = PortPools::new([v4, v6], free_range(4)).unwrap();
        let a = pools.allocate(IpFamily::V4).unwrap();
        let b = pools.allocate(IpFamily::V6).unwrap();
        assert_eq!(a.rtp.local_addr().unwrap().ip(), v4);
        assert_eq!(b.rtp.local_addr().unwrap().ip(), v6);
        assert_eq!(b.rtcp.local_addr().unwrap().ip(), v6);
        assert_eq!(pools.in_use(), 2);
        assert_eq!(pools.capacity(), 8);
        let usage = pools.usage();
        assert_eq!(usage.len(), 2);
        assert_eq!((usage[1].family, usage[1].in_use), (IpFamily::V6, 1));
        drop(b);
        assert_eq!(pools.get(IpFamily::V6).unwrap().in_use(), 0);
    }

    #[test]
    fn a_family_without_a_pool_is_an_error() {
        let pools = PortPools::new(["127.0.0.1".parse().unwrap()], free_range(2)).unwrap();
        assert!(pools.get(IpFamily::V6).is_none());
        assert!(matches!(
            pools.allocate(IpFamily::V6),
            Err(PortError::NoFamily {
                family: IpFamily::V6
            })
        ));
        assert!(PortPools::new(["::1".parse().unwrap()], 5..=5).is_err());
    }
}
