//! The engine configuration the unit tests and the signalling benchmark share: the lab's
//! addresses, ports, timeouts and limits, and a gateway as the lab configures one.

use std::time::Duration;

use super::config::EngineConfig;
use crate::config::{EncryptionLevel, GatewayConfig, GatewayTransport, SrtpMode, SrtpOfferStyle};
use crate::srtp::SrtpSuite;

/// The lab's engine configuration at `encryption`, with `gateways`.
///
/// We advertise 192.0.2.10 and listen on 5070 (next hop), 5067 (gateways' TLS), 5068 (TCP) and
/// 5069 (UDP); the next hop is frontend.example.test:5061, by that name. Every SRTP suite;
/// 90 s to answer, 10 s before a route fails over, 30 s of silence before a media timeout,
/// 1800 s sessions. At most 3 calls, 2 unanswered INVITEs per connection and 3 early dialogs
/// per call; P-Asserted-Identity forwarded, `X-*` and `User-to-User` passed through, user=phone
/// toward the next hop; no routes. A caller that wants other values changes the returned
/// struct.
pub fn engine_config(encryption: EncryptionLevel, gateways: Vec<GatewayConfig>) -> EngineConfig {
    EngineConfig {
        advertise: "192.0.2.10".parse().expect("a valid advertise list"),
        next_hop_address: "frontend.example.test:5061".into(),
        next_hop_identity: "frontend.example.test".into(),
        encryption,
        gateways,
        suites: SrtpSuite::ALL.to_vec(),
        answer_timeout: Duration::from_secs(90),
        max_calls: 3,
        forward_pai: true,
        pass_headers: vec!["X-*".into(), "User-to-User".into()],
        next_hop_user_phone: true,
        routes: Vec::new(),
        failover_timeout: Duration::from_secs(10),
        next_hop_port: 5070,
        gateway_tls_port: 5067,
        gateway_tcp_port: 5068,
        session_expires: 1800,
        max_early_dialogs: 3,
        max_pending_per_connection: 2,
        media_timeout: Some(Duration::from_secs(30)),
        gateway_udp_port: 5069,
    }
}

/// Gateway `name` at `{name}.example.test:5067` over `transport` (identity `{name}.example.test`
/// when that is TLS), SRTP at `srtp` offered as RTP/SAVP with the engine's suites; no OPTIONS
/// probes, no session timer, no call limit, no media networks, user=phone, no number rules,
/// call history stripped.
pub fn gateway(name: &str, transport: GatewayTransport, srtp: SrtpMode) -> GatewayConfig {
    GatewayConfig {
        name: name.into(),
        address: format!("{name}.example.test:5067"),
        transport,
        identity: (transport == GatewayTransport::Tls).then(|| format!("{name}.example.test")),
        sources: vec![],
        srtp,
        options_interval_secs: 0,
        enable_session_timer: false,
        srtp_suites: None,
        srtp_offer_style: SrtpOfferStyle::Savp,
        media_sources: Default::default(),
        media_networks: Vec::new(),
        max_calls: None,
        user_phone: true,
        number_rules: Vec::new(),
        remove_plus: false,
        forward_history: false,
    }
}
