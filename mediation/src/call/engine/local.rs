//! Our own address on each leg: the `[media] advertise` address of the family of the leg's
//! peer's signalling address (where the caller's INVITE came from; the configured address of
//! the next hop or gateway we call; the first advertise address for a peer configured by host
//! name), and our Via sent-by and Contact written with it (docs/design.md §3). The leg's SDP
//! and media ports use the same address and family.

use std::net::IpAddr;

use super::super::legs::{Direction, Local};
use super::{Engine, PortAllocator};
use crate::config::{split_host_port, AddressList, IpFamily};
use crate::peer::Peer;

impl<P: PortAllocator> Engine<P> {
    /// Our address toward a peer whose signalling address is `ip`: the advertise address of its
    /// family, else (a family we do not advertise, which `check-config` refuses for configured
    /// peers) the first one.
    pub(super) fn address_toward(&self, ip: IpAddr) -> IpAddr {
        self.cfg
            .advertise
            .get(IpFamily::of(ip))
            .unwrap_or_else(|| self.preferred_address())
    }

    /// Our address toward a configured `host:port`: by the family of an IP address, the first
    /// advertise address for a host name.
    pub(super) fn address_toward_configured(&self, address: &str) -> IpAddr {
        match split_host_port(address).and_then(|(host, _)| host.parse().ok()) {
            Some(ip) => self.address_toward(ip),
            None => self.preferred_address(),
        }
    }

    /// The first advertise address (a validated configuration has one).
    fn preferred_address(&self) -> IpAddr {
        self.cfg
            .advertise
            .first()
            .unwrap_or(IpFamily::V4.unspecified())
    }

    /// Our address on the callee's leg of a call going `direction` (toward the next hop, or
    /// toward `gateway`).
    pub(super) fn callee_address(&self, direction: Direction, gateway: &str) -> IpAddr {
        match direction {
            Direction::FromGateway => self.address_toward_configured(&self.cfg.next_hop_address),
            Direction::FromNextHop => match self.gateway_config(gateway) {
                Some(g) => self.address_toward_configured(&g.address),
                None => self.preferred_address(),
            },
        }
    }

    /// Our Via sent-by and Contact toward a peer, with our `address` on that leg.
    pub(super) fn local_for(&self, peer: &Peer, tls: bool, address: IpAddr) -> Local {
        let port = match (peer, tls) {
            (Peer::NextHop, _) => self.cfg.next_hop_port,
            (Peer::Gateway(_), true) => self.cfg.gateway_tls_port,
            (Peer::Gateway(_), false) if self.is_udp(peer) => self.cfg.gateway_udp_port,
            (Peer::Gateway(_), false) => self.cfg.gateway_tcp_port,
        };
        let transport = self.uri_transport(peer, tls);
        // RFC 3581: over UDP, ask for responses to come back to the port we sent from.
        let (proto, rport) = match transport {
            "tls" => ("TLS", ""),
            "udp" => ("UDP", ";rport"),
            _ => ("TCP", ""),
        };
        let host = AddressList::sip_host(address);
        Local {
            address,
            via: format!("SIP/2.0/{proto} {host}:{port}{rport}"),
            contact: format!("<sip:mediation@{host}:{port};transport={transport}>"),
        }
    }
}
