//! An IP network written `address/prefix` (`192.0.2.0/24`, `2001:db8::/32`), as `[[gateway]]
//! media_networks` lists them: the networks a gateway's media may be sent to.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// An IPv4 or IPv6 network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    address: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// True when `ip` is in this network (an IPv4-mapped IPv6 address counts as its IPv4 one).
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (address, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("expected \"address/prefix\", got \"{s}\""))?;
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("\"{address}\" is not an IP address"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("expected a prefix length of 0 to {max}, got \"{prefix}\""))?;
        Ok(Self { address, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl<'de> Deserialize<'de> for IpNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        assert!(net("192.0.2.0/24").contains(ip("192.0.2.77")));
        assert!(!net("192.0.2.0/24").contains(ip("192.0.3.1")));
        assert!(net("192.0.2.0/24").contains(ip("::ffff:192.0.2.5")));
        assert!(net("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(net("192.0.2.9/32").contains(ip("192.0.2.9")));
        assert!(!net("192.0.2.9/32").contains(ip("192.0.2.8")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
        assert!(!net("2001:db8::/32").contains(ip("2001:db9::1")));
        assert!(!net("2001:db8::/32").contains(ip("192.0.2.1")));
    }

    #[test]
    fn bad_networks_say_why() {
        assert!("192.0.2.0"
            .parse::<IpNet>()
            .unwrap_err()
            .contains("address/prefix"));
        assert!("192.0.2.0/33"
            .parse::<IpNet>()
            .unwrap_err()
            .contains("0 to 32"));
        assert!("gw/24".parse::<IpNet>().unwrap_err().contains("not an IP"));
        assert_eq!(net("2001:db8::/32").to_string(), "2001:db8::/32");
    }
}
