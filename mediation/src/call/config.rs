//! What the engine needs from the configuration ([`EngineConfig`]), taken from the file once
//! and from the ports the listeners really bound, and the `[[route]]` table.

use std::time::Duration;

use crate::config::{AddressList, Config, EncryptionLevel};
use crate::srtp::SrtpSuite;

/// What the engine needs from the configuration, plus the ports our listeners really use.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Our addresses, at most one per family: each leg's SDP, Via and Contact carry the one of
    /// its peer's family.
    pub advertise: AddressList,
    /// The next hop: `host:port` and certificate identity.
    pub next_hop_address: String,
    /// Its certificate identity.
    pub next_hop_identity: String,
    /// SRTP policy toward it.
    pub encryption: EncryptionLevel,
    /// Gateways: name, address, transport, identity, SRTP mode.
    pub gateways: Vec<crate::config::GatewayConfig>,
    /// SRTP suites we offer and accept, in preference order.
    pub suites: Vec<SrtpSuite>,
    /// How long an INVITE may wait for a final answer.
    pub answer_timeout: Duration,
    /// Calls held at once, at most.
    pub max_calls: usize,
    /// Copy P-Asserted-Identity and Privacy to the far leg.
    pub forward_pai: bool,
    /// Further headers passed to the far leg (names, or prefixes ending in `*`).
    pub pass_headers: Vec<String>,
    /// Add `user=phone` to a tel: number sent to the next hop.
    pub next_hop_user_phone: bool,
    /// Routes for calls from the next hop, in order.
    pub routes: Vec<Route>,
    /// How long a gateway has to send a provisional response before the next one is tried.
    pub failover_timeout: Duration,
    /// Port of our next-hop listener (for Contact).
    pub next_hop_port: u16,
    /// Port of our gateway TLS listener.
    pub gateway_tls_port: u16,
    /// Port of our gateway TCP listener.
    pub gateway_tcp_port: u16,
    /// Session interval asked for where session timers are enabled.
    pub session_expires: u32,
    /// Early dialogs kept per call.
    pub max_early_dialogs: usize,
    /// Unanswered calls one connection may have at once.
    pub max_pending_per_connection: usize,
    /// Calls whose media stops this long are ended (`None`: never).
    pub media_timeout: Option<Duration>,
    /// Port of our gateway UDP socket (0: none).
    pub gateway_udp_port: u16,
}

impl EngineConfig {
    /// The SRTP suites of the gateway leg toward `gateway` (its own list, else `[media]`'s), or
    /// of the next-hop leg when `gateway` is `None`.
    pub fn suites_for(&self, gateway: Option<&str>) -> &[SrtpSuite] {
        gateway
            .and_then(|name| self.gateways.iter().find(|g| g.name == name))
            .and_then(|g| g.srtp_suites.as_deref())
            .unwrap_or(&self.suites)
    }

    /// Whether a header of the caller's INVITE named `name` goes on to the callee.
    pub fn passes(&self, name: &str) -> bool {
        let pai = ["P-Asserted-Identity", "Privacy"];
        (self.forward_pai && pai.iter().any(|p| p.eq_ignore_ascii_case(name)))
            || self.pass_headers.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => name
                    .get(..prefix.len())
                    .is_some_and(|n| n.eq_ignore_ascii_case(prefix)),
                None => p.eq_ignore_ascii_case(name),
            })
    }

    /// From the file and the ports the listeners bound.
    pub fn new(
        c: &Config,
        next_hop_port: u16,
        gateway_tls_port: u16,
        gateway_tcp_port: u16,
    ) -> Self {
        Self {
            advertise: c.media.advertise.clone(),
            next_hop_address: c.next_hop.address.clone(),
            next_hop_identity: c.next_hop.identity.clone(),
            encryption: c.next_hop.encryption,
            gateways: c.gateways.clone(),
            suites: c.media.srtp_suites.clone(),
            answer_timeout: Duration::from_secs(c.sip.answer_timeout_secs),
            max_calls: c.sip.max_calls,
            forward_pai: c.sip.forward_pai,
            pass_headers: c.sip.pass_headers.clone(),
            next_hop_user_phone: c.next_hop.user_phone,
            routes: c
                .routes
                .iter()
                .map(|r| Route {
                    pattern: r.pattern.clone(),
                    gateways: r.gateways.clone(),
                })
                .collect(),
            failover_timeout: Duration::from_secs(c.sip.failover_timeout_secs),
            next_hop_port,
            gateway_tls_port,
            gateway_tcp_port,
            session_expires: c.sip.session_expires_secs,
            max_early_dialogs: c.sip.max_early_dialogs,
            max_pending_per_connection: c.sip.max_pending_per_connection,
            media_timeout: (c.media.media_timeout_secs > 0)
                .then(|| Duration::from_secs(c.media.media_timeout_secs)),
            gateway_udp_port: c.gateway_listen.udp.map_or(0, |a| a.port()),
        }
    }
}

/// A route: calls to numbers matching `pattern` go to `gateways`, in order.
#[derive(Debug, Clone)]
pub struct Route {
    /// Matched against the called number (the Request-URI's user part).
    pub pattern: regex::Regex,
    /// Gateway names, tried in order.
    pub gateways: Vec<String>,
}
