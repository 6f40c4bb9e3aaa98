//! Addresses given once per IP family: `[media] advertise` and `bind` take one address or a
//! list with at most one IPv4 and one IPv6 address (`"192.0.2.10"`, or
//! `["192.0.2.10", "2001:db8::10"]`). Each call leg uses the address of its peer's family
//! (docs/design.md §3). At most one per family is checked where the file is validated, so the
//! problem carries its field and line.

use std::fmt;
use std::net::IpAddr;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// An IP address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// Both families, IPv4 first.
    pub(crate) const ALL: [IpFamily; 2] = [IpFamily::V4, IpFamily::V6];

    /// The family of an address. An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, what a
    /// dual-stack socket reports for an IPv4 peer) is IPv4.
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// `IPv4` or `IPv6`, for messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        }
    }

    /// The unspecified address of the family (`0.0.0.0` or `::`): bind to every local address.
    pub(crate) fn unspecified(self) -> IpAddr {
        match self {
            IpFamily::V4 => IpAddr::from([0u8; 4]),
            IpFamily::V6 => IpAddr::from([0u8; 16]),
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One address or several, in the order written. Validated files hold at most one per family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AddressList(Vec<IpAddr>);

impl AddressList {
    /// The addresses in the order written.
    pub(crate) fn as_slice(&self) -> &[IpAddr] {
        &self.0
    }

    /// True when no address is given.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The (first) address of `family`.
    pub(crate) fn get(&self, family: IpFamily) -> Option<IpAddr> {
        self.0
            .iter()
            .copied()
            .find(|ip| IpFamily::of(*ip) == family)
    }

    /// The first address written: the family used toward a peer known only by a host name.
    pub(crate) fn first(&self) -> Option<IpAddr> {
        self.0.first().copied()
    }

    /// For each address that repeats an earlier one's family: its index and family.
    pub(crate) fn repeated_families(&self) -> Vec<(usize, IpFamily)> {
        let mut seen = Vec::new();
        let mut repeated = Vec::new();
        for (i, ip) in self.0.iter().enumerate() {
            let family = IpFamily::of(*ip);
            if seen.contains(&family) {
                repeated.push((i, family));
            } else {
                seen.push(family);
            }
        }
        repeated
    }

    /// The address written with our SIP host syntax: `[2001:db8::10]` for IPv6.
    pub(crate) fn sip_host(ip: IpAddr) -> String {
        match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        }
    }
}

impl From<Vec<IpAddr>> for AddressList {
    fn from(addresses: Vec<IpAddr>) -> Self {
        Self(addresses)
    }
}

impl From<IpAddr> for AddressList {
    fn from(ip: IpAddr) -> Self {
        Self(vec![ip])
    }
}

/// `"192.0.2.10"` or `"192.0.2.10, 2001:db8::10"`.
impl std::str::FromStr for AddressList {
    type Err = std::net::AddrParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(|a| a.trim().parse())
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

impl<'de> Deserialize<'de> for AddressList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ListVisitor)
    }
}

struct ListVisitor;

const EXPECTED: &str =
    "an IP address or a list of them, at most one per family, like [\"192.0.2.10\", \"2001:db8::10\"]";

fn address<E: de::Error>(s: &str) -> Result<IpAddr, E> {
    s.trim()
        .parse()
        .map_err(|_| E::custom(format!("`{s}` is not an IP address (expected {EXPECTED})")))
}

impl<'de> Visitor<'de> for ListVisitor {
    type Value = AddressList;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<AddressList, E> {
        Ok(AddressList(vec![address(s)?]))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AddressList, A::Error> {
        let mut out = Vec::new();
        while let Some(s) = seq.next_element::<String>()? {
            out.push(address(&s)?);
        }
        Ok(AddressList(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        a: AddressList,
    }

    fn parse(src: &str) -> Result<AddressList, String> {
        toml::from_str::<T>(src)
            .map(|t| t.a)
            .map_err(|e| e.message().to_string())
    }

    #[test]
    fn one_address_or_a_list() {
        let one = parse("a = \"192.0.2.10\"").unwrap();
        assert_eq!(one.as_slice(), ["192.0.2.10".parse::<IpAddr>().unwrap()]);
        let two = parse("a = [\"2001:db8::10\", \"192.0.2.10\"]").unwrap();
        assert_eq!(two.get(IpFamily::V4), Some("192.0.2.10".parse().unwrap()));
        assert_eq!(two.get(IpFamily::V6), Some("2001:db8::10".parse().unwrap()));
        assert_eq!(two.first(), Some("2001:db8::10".parse().unwrap()));
        assert!(two.repeated_families().is_empty());
        let twice = parse("a = [\"192.0.2.10\", \"2001:db8::10\", \"192.0.2.11\"]").unwrap();
        assert_eq!(twice.repeated_families(), [(2, IpFamily::V4)]);
    }

    #[test]
    fn what_is_not_an_address_is_named() {
        let e = parse("a = \"mediation.example\"").unwrap_err();
        assert!(
            e.contains("`mediation.example` is not an IP address"),
            "{e}"
        );
        let e = parse("a = [\"192.0.2.10\", \"nope\"]").unwrap_err();
        assert!(e.contains("`nope`"), "{e}");
        let e = parse("a = 5").unwrap_err();
        assert!(e.contains("at most one per family"), "{e}");
    }

    #[test]
    fn families_and_hosts() {
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(IpFamily::of(mapped), IpFamily::V4);
        assert_eq!(IpFamily::of("::1".parse().unwrap()), IpFamily::V6);
        assert_eq!(
            AddressList::sip_host("2001:db8::10".parse().unwrap()),
            "[2001:db8::10]"
        );
        assert_eq!(
            AddressList::sip_host("192.0.2.10".parse().unwrap()),
            "192.0.2.10"
        );
        let list: AddressList = "192.0.2.10, 2001:db8::10".parse().unwrap();
        assert_eq!(list.as_slice().len(), 2);
    }
}
