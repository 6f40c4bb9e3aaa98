//! Our own address on each leg: the `[media] advertise` address of the family of the leg's
//! peer's signalling address (where the caller's INVITE came from; the configured address of
//! the next hop or gateway we call; the first advertise address for a peer configured by host
//! name), and our Via sent-by and Contact written with it (docs/design.md §3). The leg's SDP
//! and media ports use the same address and family. Also the transport toward each peer and
//! the one outbound connection we keep to it.

use std::net::IpAddr;

use super::super::legs::{Direction, Local};
use super::{Engine, Output, PortAllocator, Target};
use crate::config::{split_host_port, AddressList, GatewayTransport, IpFamily};
use crate::peer::{ConnId, Peer};

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

    /// True when `peer` is a gateway configured with `transport = "udp"`.
    pub(super) fn is_udp(&self, peer: &Peer) -> bool {
        let Peer::Gateway(name) = peer else {
            return false;
        };
        let g = self.cfg.gateways.iter().find(|g| &g.name == name);
        g.is_some_and(|g| g.transport == GatewayTransport::Udp)
    }

    /// The `transport=` URI parameter toward a peer.
    pub(super) fn uri_transport(&self, peer: &Peer, tls: bool) -> &'static str {
        match (tls, self.is_udp(peer)) {
            (true, _) => "tls",
            (false, true) => "udp",
            (false, false) => "tcp",
        }
    }

    /// Our outbound connection to `target`, opening one if there is none.
    pub(super) fn conn_to(&mut self, target: &Target) -> ConnId {
        if let Some(conn) = self.outbound.get(&target.peer) {
            return *conn;
        }
        let conn = ConnId::next();
        self.outbound.insert(target.peer.clone(), conn);
        self.out.push_back(Output::Connect {
            conn,
            target: target.clone(),
        });
        conn
    }
}
