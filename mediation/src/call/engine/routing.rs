//! Routing: which gateway a call from the next hop goes to (`[[route]]` patterns, the
//! Request-URI's host, OPTIONS health, each gateway's `max_calls`), what a gateway's trunk
//! settings allow (media networks, session timers), and loop detection.

use super::super::legs::Phase;
use super::super::policy::Toward;
use super::{Engine, PortAllocator};
use crate::config::{GatewayConfig, SrtpMode};
use crate::peer::Peer;
use crate::sdp::AudioStream;
use crate::sip::uri::Host;
use crate::sip::{Message, Uri};

impl<P: PortAllocator> Engine<P> {
    /// Whether a tel: number sent toward `peer` gets `user=phone`.
    pub(super) fn user_phone_toward(&self, peer: &Peer) -> bool {
        match peer {
            Peer::NextHop => self.cfg.next_hop_user_phone,
            Peer::Gateway(g) => self.gateway_config(g).is_none_or(|g| g.user_phone),
        }
    }

    /// The `[[gateway]]` named `name`.
    pub(super) fn gateway_config(&self, name: &str) -> Option<&GatewayConfig> {
        self.cfg.gateways.iter().find(|g| g.name == name)
    }

    /// A request that already went through us (one of our Via sent-by values, with any of our
    /// advertise addresses, is in it) has looped (RFC 3261 §16.3 item 4 applies to proxies; a
    /// B2BUA that relayed it would otherwise relay it again and again).
    pub(super) fn is_loop(&self, msg: &Message) -> bool {
        let ports = [
            self.cfg.next_hop_port,
            self.cfg.gateway_tls_port,
            self.cfg.gateway_tcp_port,
            self.cfg.gateway_udp_port,
        ];
        let ours = self.cfg.advertise.as_slice();
        msg.view().vias.iter().any(|via| {
            via.host.ip().is_some_and(|ip| ours.contains(&ip))
                && via.port.is_some_and(|p| p != 0 && ports.contains(&p))
        })
    }

    /// The gateways a call from the next hop goes to, in order: the first `[[route]]` whose
    /// pattern matches the called number (gateways marked down by OPTIONS skipped), else the
    /// gateway the Request-URI's host names, else the only gateway.
    /// A tel: Request-URI's number (visual separators removed) is matched as a sip: URI's
    /// user part is.
    pub(super) fn gateways_for(&self, uri: &Uri) -> Option<(String, Vec<String>)> {
        let number = uri.number().unwrap_or_default();
        if let Some(route) = self.cfg.routes.iter().find(|r| r.pattern.is_match(&number)) {
            // Down (by OPTIONS) and full (`max_calls`) gateways are skipped.
            let mut up = route.gateways.iter().filter(|g| {
                self.probes.get(*g).and_then(|p| p.up) != Some(false) && !self.gateway_full(g)
            });
            let first = up.next()?.clone();
            return Some((first, up.cloned().collect()));
        }
        self.gateway_for(uri).map(|g| (g, Vec::new()))
    }

    /// The gateway a Request-URI from the next hop names: by host (gateway name, identity or
    /// address host), else the only gateway (a tel: URI names no host).
    pub(super) fn gateway_for(&self, uri: &Uri) -> Option<String> {
        let host = match uri.host() {
            Some(Host::Name(name)) => name.clone(),
            Some(Host::V6(ip)) => ip.to_string(),
            Some(Host::V4(ip)) => ip.to_string(),
            None => String::new(),
        };
        let host = host.as_str();
        let named = self.cfg.gateways.iter().find(|g| {
            g.name.eq_ignore_ascii_case(host)
                || g.identity
                    .as_deref()
                    .is_some_and(|i| i.eq_ignore_ascii_case(host))
                || crate::config::split_host_port(&g.address)
                    .is_some_and(|(h, _)| h.eq_ignore_ascii_case(host))
        });
        match (named, self.cfg.gateways.as_slice()) {
            (Some(g), _) => Some(g.name.clone()),
            (None, [only]) => Some(only.name.clone()),
            _ => None,
        }
    }

    /// Whether `gateway` carries its `max_calls` already (calls in any phase but abandoned),
    /// so one trunk cannot take every call place.
    pub(super) fn gateway_full(&self, gateway: &str) -> bool {
        let Some(max) = self.gateway_config(gateway).and_then(|g| g.max_calls) else {
            return false;
        };
        let carried = self
            .calls
            .values()
            .filter(|c| c.gateway == gateway && c.phase != Phase::Abandoned);
        carried.count() >= max
    }

    /// Whether `gateway`'s SDP may ask for media at `audio`'s address: anywhere when its
    /// `media_networks` is empty, else only inside one of them (a hold's `0.0.0.0` always).
    pub(super) fn media_allowed(&self, gateway: &str, audio: &AudioStream) -> bool {
        let Some(g) = self.gateway_config(gateway) else {
            return true;
        };
        match audio.address {
            _ if g.media_networks.is_empty() => true,
            Some(ip) if !ip.is_unspecified() => g.media_networks.iter().any(|n| n.contains(ip)),
            _ => true,
        }
    }

    /// Which setting the encryption rules apply on a leg: the trunk's `srtp` mode on a gateway
    /// leg (`optional` for a gateway no longer configured), `[next_hop] encryption` otherwise.
    pub(super) fn toward(&self, gateway_leg: bool, gateway: &str) -> Toward {
        if gateway_leg {
            Toward::Gateway(
                self.gateway_config(gateway)
                    .map_or(SrtpMode::Optional, |g| g.srtp),
            )
        } else {
            Toward::NextHop(self.cfg.encryption)
        }
    }

    /// Our session interval toward `gateway`, when its trunk enables session timers.
    pub(super) fn session_timer_for(&self, gateway: &str) -> Option<u32> {
        self.gateway_config(gateway)
            .is_some_and(|g| g.enable_session_timer)
            .then_some(self.cfg.session_expires)
    }
}
