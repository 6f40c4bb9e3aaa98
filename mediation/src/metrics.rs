//! Every counter the service keeps, in one registry (docs/design.md §5 names; all prefixed
//! `mediation_`). Label values are bounded: listener, reason, gateway name, never addresses,
//! Call-IDs or numbers.

use crate::call::{media_label, Report};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The service's metrics. Cheap to clone (the handles are shared).
#[derive(Clone)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// `tls_handshakes_total{listener,version,result}`.
    pub tls_handshakes: IntCounterVec,
    /// `mtls_rejections_total{listener,reason}`.
    pub mtls_rejections: IntCounterVec,
    /// `connections_refused_total{listener,reason}`: plain TCP peers we do not know.
    pub connections_refused: IntCounterVec,
    /// `sip_messages_malformed_total{listener,part}`: `part` names what was wrong: a header
    /// (`Via`, `CSeq`, ...), `request-uri`, `start-line`, `method`, `message` or `framing`.
    pub sip_malformed: IntCounterVec,
    /// `sip_connections_refused_total{listener,limit}`: connections closed at accept because
    /// `max_connections` or `max_connections_per_source` was reached.
    pub sip_connections_refused: IntCounterVec,
    /// `sip_idle_closed_total{listener}`: accepted connections closed for carrying no message
    /// for `idle_connection_timeout_secs` while no call used them.
    pub sip_idle_closed: IntCounterVec,
    /// `sip_connections{listener}`: accepted SIP connections open now.
    pub sip_connections: IntGaugeVec,
    /// `sip_udp_dropped_total{reason}`: UDP datagrams, flows or transactions dropped:
    /// `unknown_source`, `too_large`, `flow_table_full` (no room for a new address),
    /// `flow_evicted` (a source IP's least recently active call-less flow made room for a new
    /// port of that IP), `transaction_table_full`.
    pub sip_udp_dropped: IntCounterVec,
    /// `sip_responses_total{direction,code}`: responses `received` from and `sent` to peers.
    pub sip_responses: IntCounterVec,
    /// `active_dialogs`: SIP dialogs established (two per answered call).
    pub active_dialogs: IntGauge,
    /// `sip_transactions`: INVITE transactions in progress (server and client side).
    pub sip_transactions: IntGauge,
    /// `tls_handshake_duration_seconds{listener}`.
    pub tls_handshake_duration: HistogramVec,
    /// `call_setup_seconds{direction}`: INVITE received to 200 OK relayed.
    pub call_setup: HistogramVec,
    /// `gateway_up{gateway}`: 1 when the gateway answered our last OPTIONS probe.
    pub gateway_up: IntGaugeVec,
    /// `sip_requests_total{method}` received.
    pub sip_requests: IntCounterVec,
    /// `calls_total{direction,gateway,gateway_media,result}`.
    pub calls: IntCounterVec,
    /// `gateway_media_decisions_total{gateway,gateway_media,reason}`: each call's gateway-leg
    /// encryption decision and why (`gateway_media` is `none` when the call was refused).
    pub gateway_media_decisions: IntCounterVec,
    /// `gateway_failovers_total{gateway}`: calls moved away from this gateway.
    pub failovers: IntCounterVec,
    /// `active_calls{gateway_media}`.
    pub active_calls: IntGaugeVec,
    /// `sdes_keys_ignored_total{reason}`.
    pub sdes_keys_ignored: IntCounterVec,
    /// `media_packets_total{leg,protection,direction}`.
    pub media_packets: IntCounterVec,
    /// `media_bytes_total{leg,protection,direction}`: UDP payload bytes as on the wire.
    pub media_bytes: IntCounterVec,
    /// `media_packets_dropped_total{leg,reason}`.
    pub media_dropped: IntCounterVec,
    /// `srtp_auth_failures_total{leg}`.
    pub srtp_auth_failures: IntCounterVec,
    /// `srtp_replay_drops_total{leg}`.
    pub srtp_replay_drops: IntCounterVec,
    /// `certificate_expiry_timestamp_seconds{cert}`: our certificate (`server`), each trusted CA
    /// (`ca:<common name>`) and each peer certificate seen (`peer:<gateway or next_hop>`).
    pub certificate_expiry: IntGaugeVec,
    /// `media_ports{state}`: RTP/RTCP port pairs `in_use`, `free` and `total`.
    pub media_ports: IntGaugeVec,
    /// `fips_mode`: 1 when rustls reports both the server and client TLS configurations as FIPS
    /// (`[tls] fips = true` in a build with the `fips` feature), else 0.
    pub fips_mode: IntGauge,
    /// `build_info{version}`: always 1.
    pub build_info: IntGaugeVec,
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help).namespace("mediation"), labels)
        .expect("metric definition is valid");
    registry
        .register(Box::new(c.clone()))
        .expect("metric registered once");
    c
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help).namespace("mediation"), labels)
        .expect("metric definition is valid");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn int_gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::with_opts(Opts::new(name, help).namespace("mediation"))
        .expect("metric definition is valid");
    registry
        .register(Box::new(g.clone()))
        .expect("metric registered once");
    g
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help)
            .namespace("mediation")
            .buckets(buckets),
        labels,
    )
    .expect("metric definition is valid");
    registry
        .register(Box::new(h.clone()))
        .expect("metric registered once");
    h
}

impl Metrics {
    /// A fresh registry with every metric defined.
    pub fn new() -> Self {
        let r = Registry::new();
        let fips_mode = IntGauge::with_opts(
            Opts::new(
                "fips_mode",
                "1 when TLS runs on a FIPS 140-3 validated module with approved algorithms only (SRTP suites are all AES)",
            )
            .namespace("mediation"),
        )
        .expect("metric definition is valid");
        r.register(Box::new(fips_mode.clone()))
            .expect("metric registered once");
        let build_info = gauge_vec(
            &r,
            "build_info",
            "Always 1; the version label says which build runs",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Self {
            tls_handshakes: counter(
                &r,
                "tls_handshakes_total",
                "TLS handshakes by listener, negotiated version and result",
                &["listener", "version", "result"],
            ),
            mtls_rejections: counter(
                &r,
                "mtls_rejections_total",
                "TLS peers refused, by listener and reason",
                &["listener", "reason"],
            ),
            connections_refused: counter(
                &r,
                "connections_refused_total",
                "Plain TCP connections refused, by listener and reason",
                &["listener", "reason"],
            ),
            sip_connections_refused: counter(
                &r,
                "sip_connections_refused_total",
                "SIP connections closed at accept because a connection limit was reached",
                &["listener", "limit"],
            ),
            sip_idle_closed: counter(
                &r,
                "sip_idle_closed_total",
                "Accepted SIP connections closed after carrying no message for the idle timeout while no call used them",
                &["listener"],
            ),
            sip_connections: gauge_vec(
                &r,
                "sip_connections",
                "Accepted SIP connections open now, by front door",
                &["listener"],
            ),
            sip_udp_dropped: counter(
                &r,
                "sip_udp_dropped_total",
                "SIP over UDP: datagrams or transactions dropped, by reason",
                &["reason"],
            ),
            sip_malformed: counter(
                &r,
                "sip_messages_malformed_total",
                "SIP messages that could not be framed or parsed, by what was wrong",
                &["listener", "part"],
            ),
            sip_responses: counter(&r, "sip_responses_total", "SIP responses received from and sent to peers, by status code", &["direction", "code"]),
            active_dialogs: int_gauge(&r, "active_dialogs", "SIP dialogs established (two per answered call)"),
            sip_transactions: int_gauge(&r, "sip_transactions", "INVITE transactions in progress, server and client side"),
            tls_handshake_duration: histogram(&r, "tls_handshake_duration_seconds", "TLS handshake duration by listener", &["listener"], vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]),
            call_setup: histogram(&r, "call_setup_seconds", "INVITE received to 200 OK relayed, by direction", &["direction"], vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]),
            gateway_up: gauge_vec(&r, "gateway_up", "1 when the gateway answered the last OPTIONS probe, 0 when it did not", &["gateway"]),
            sip_requests: counter(
                &r,
                "sip_requests_total",
                "SIP requests received, by method",
                &["method"],
            ),
            calls: counter(
                &r,
                "calls_total",
                "Calls by direction, gateway, gateway-leg media and result",
                &["direction", "gateway", "gateway_media", "result"],
            ),
            gateway_media_decisions: counter(
                &r,
                "gateway_media_decisions_total",
                "Gateway-leg encryption decisions by gateway, outcome and reason",
                &["gateway", "gateway_media", "reason"],
            ),
            failovers: counter(&r, "gateway_failovers_total", "Calls moved to the next gateway of their route, by the gateway that failed", &["gateway"]),
            active_calls: gauge_vec(
                &r,
                "active_calls",
                "Calls in progress by gateway-leg media",
                &["gateway_media"],
            ),
            sdes_keys_ignored: counter(
                &r,
                "sdes_keys_ignored_total",
                "SDES keys received and ignored, by reason",
                &["reason"],
            ),
            media_packets: counter(
                &r,
                "media_packets_total",
                "Media packets relayed, by leg, protection and direction",
                &["leg", "protection", "direction"],
            ),
            media_bytes: counter(&r, "media_bytes_total", "Media bytes relayed (as on the wire of that leg), by leg, protection and direction", &["leg", "protection", "direction"]),
            media_dropped: counter(
                &r,
                "media_packets_dropped_total",
                "Media packets dropped, by leg and reason",
                &["leg", "reason"],
            ),
            srtp_auth_failures: counter(
                &r,
                "srtp_auth_failures_total",
                "SRTP/SRTCP packets that failed authentication, by leg",
                &["leg"],
            ),
            srtp_replay_drops: counter(
                &r,
                "srtp_replay_drops_total",
                "SRTP/SRTCP packets dropped as replays, by leg",
                &["leg"],
            ),
            certificate_expiry: gauge_vec(
                &r,
                "certificate_expiry_timestamp_seconds",
                "When a certificate stops being valid, UNIX seconds",
                &["cert"],
            ),
            media_ports: gauge_vec(
                &r,
                "media_ports",
                "Media RTP/RTCP port pairs in use, free and in total",
                &["state"],
            ),
            fips_mode,
            build_info,
            registry: r,
        }
        .with_zeroes()
    }

    /// Every counter whose label values are known before anything happens starts at 0, so
    /// alerts and dashboards see 0 rather than nothing (`rate()` and `absent()` behave).
    fn with_zeroes(self) -> Self {
        use crate::media::DropReason;
        use crate::tls::RefusalReason;
        use crate::transport::LimitHit;
        const TLS_DOORS: [&str; 2] = ["next_hop", "gateway_tls"];
        const DOORS: [&str; 3] = ["next_hop", "gateway_tls", "gateway_tcp"];
        const LEGS: [&str; 2] = ["gateway", "next_hop"];
        for listener in TLS_DOORS {
            for reason in RefusalReason::ALL {
                self.mtls_rejections
                    .with_label_values(&[listener, reason.label()]);
            }
        }
        for listener in DOORS {
            for limit in LimitHit::LABELS {
                self.sip_connections_refused
                    .with_label_values(&[listener, limit]);
            }
            self.sip_malformed.with_label_values(&[listener, "framing"]);
        }
        for listener in ["gateway_tcp", "gateway_udp"] {
            self.connections_refused
                .with_label_values(&[listener, "unknown_source"]);
        }
        for reason in [
            "unknown_source",
            "too_large",
            "flow_table_full",
            "flow_evicted",
            "transaction_table_full",
        ] {
            self.sip_udp_dropped.with_label_values(&[reason]);
        }
        for reason in ["plain_tcp", "plain_udp", "not_offered"] {
            self.sdes_keys_ignored.with_label_values(&[reason]);
        }
        for leg in LEGS {
            for reason in DropReason::ALL {
                self.media_dropped.with_label_values(&[leg, reason.label()]);
            }
            self.srtp_auth_failures.with_label_values(&[leg]);
            self.srtp_replay_drops.with_label_values(&[leg]);
        }
        self
    }

    /// Records when a peer's certificate expires (`certificate_expiry_timestamp_seconds{cert=
    /// "peer:<gateway>"}` or `"peer:next_hop"`).
    pub fn peer_certificate_seen(
        &self,
        peer: &crate::transport::Peer,
        cert: &rustls_pki_types::CertificateDer<'_>,
    ) {
        if let Some((not_after, _)) = crate::tls::expiry(cert) {
            let label = match peer {
                crate::transport::Peer::NextHop => "peer:next_hop".to_string(),
                crate::transport::Peer::Gateway(g) => format!("peer:{g}"),
            };
            self.certificate_expiry
                .with_label_values(&[&label])
                .set(not_after);
        }
    }

    /// Counts what the call engine reported (the driver calls this for every [`Report`]).
    pub fn record(&self, report: &Report) {
        match report {
            Report::Request { method } => self
                .sip_requests
                .with_label_values(&[method.as_str()])
                .inc(),
            Report::Call {
                direction,
                gateway,
                media,
                result,
            } => self
                .calls
                .with_label_values(&[direction.label(), gateway, media_label(*media), result])
                .inc(),
            Report::Decision { gateway, decision } => self
                .gateway_media_decisions
                .with_label_values(&[gateway, media_label(decision.media()), decision.reason()])
                .inc(),
            Report::SdesKeysIgnored { reason, count } => self
                .sdes_keys_ignored
                .with_label_values(&[reason])
                .inc_by(*count),
            Report::Failover { gateway } => self.failovers.with_label_values(&[gateway]).inc(),
            Report::Answered {
                direction,
                media,
                setup,
            } => {
                self.call_setup
                    .with_label_values(&[direction.label()])
                    .observe(setup.as_secs_f64());
                self.active_calls
                    .with_label_values(&[media_label(*media)])
                    .inc();
            }
            Report::Ended { media } => self
                .active_calls
                .with_label_values(&[media_label(*media)])
                .dec(),
            Report::GatewayUp { gateway, up } => self
                .gateway_up
                .with_label_values(&[gateway])
                .set(i64::from(*up)),
        }
    }

    /// The text exposition format of every metric.
    pub fn render(&self) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Security review, "Also": counters with label values known at start are exported at 0.
    #[test]
    fn known_series_are_exported_at_zero() {
        let text = Metrics::new().render();
        for series in [
            r#"mediation_sdes_keys_ignored_total{reason="plain_tcp"} 0"#,
            r#"mediation_mtls_rejections_total{listener="gateway_tls",reason="untrusted_ca"} 0"#,
            r#"mediation_media_packets_dropped_total{leg="gateway",reason="unknown_source"} 0"#,
            r#"mediation_sip_connections_refused_total{limit="reserved_for_peers",listener="gateway_tcp"} 0"#,
            r#"mediation_srtp_replay_drops_total{leg="next_hop"} 0"#,
        ] {
            assert!(text.contains(series), "{series} missing");
        }
    }
}
