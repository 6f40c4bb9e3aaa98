//! OPTIONS keepalive of gateways (Lync's trunk keepalive): probes sent on each gateway's
//! interval, answers and silence judged, and the verdict that routing skips a down gateway by.

use std::time::{Duration, Instant};

use super::{Engine, PortAllocator, Target};
use crate::config::{AddressList, GatewayTransport, IpFamily};
use crate::peer::{ConnId, Peer};
use crate::sip::outgoing::{branch, token, Outgoing};

/// How long a gateway has to answer an OPTIONS probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The OPTIONS keepalive of one gateway.
#[derive(Debug, Default)]
pub(super) struct Probe {
    /// When the next probe goes out.
    pub(super) next_at: Option<Instant>,
    /// The probe in flight: its Call-ID and when it counts as unanswered.
    pub(super) pending: Option<(String, Instant, ConnId)>,
    /// Last verdict.
    pub(super) up: Option<bool>,
}

impl<P: PortAllocator> Engine<P> {
    /// Sends due OPTIONS probes and judges unanswered ones.
    pub(super) fn run_probes(&mut self, now: Instant) {
        let names: Vec<String> = self.probes.keys().cloned().collect();
        for name in names {
            let expired = self.probes[&name]
                .pending
                .as_ref()
                .is_some_and(|(_, deadline, _)| *deadline <= now);
            if expired {
                self.probe_result(&name, false, "no answer to OPTIONS");
            }
            let due = self.probes[&name].next_at.is_some_and(|t| t <= now);
            if due && self.probes[&name].pending.is_none() {
                self.send_probe(now, &name);
            }
        }
    }

    pub(super) fn send_probe(&mut self, now: Instant, name: &str) {
        let Some(g) = self.cfg.gateways.iter().find(|g| g.name == name).cloned() else {
            return;
        };
        let ours = self.address_toward_configured(&g.address);
        let target = Target {
            peer: Peer::Gateway(g.name.clone()),
            address: g.address.clone(),
            tls_identity: (g.transport == GatewayTransport::Tls)
                .then(|| g.identity.clone().unwrap_or_default()),
            family: IpFamily::of(ours),
        };
        let conn = self.conn_to(&target);
        let local = self.local_for(&target.peer, target.tls_identity.is_some(), ours);
        let ours = AddressList::sip_host(ours);
        let call_id = format!("probe-{}@{ours}", token(16));
        let (host, _) = crate::config::split_host_port(&g.address).unwrap_or((&g.address, 0));
        let host = match host.parse() {
            Ok(ip) => AddressList::sip_host(ip), // `[2001:db8::6]`, as a SIP URI writes it
            Err(_) => host.to_string(),
        };
        let transport = self.uri_transport(&target.peer, target.tls_identity.is_some());
        let options = Outgoing::request("OPTIONS", &format!("sip:{host};transport={transport}"))
            .header("Via", format!("{};branch={}", local.via, branch()))
            .header("Max-Forwards", "70")
            .header("From", format!("<sip:mediation@{ours}>;tag={}", token(10)))
            .header("To", format!("<sip:{host}>"))
            .header("Call-ID", call_id.clone())
            .header("CSeq", "1 OPTIONS")
            .header("Contact", local.contact)
            .encode();
        self.send(conn, options);
        let probe = self.probes.entry(name.to_string()).or_default();
        probe.pending = Some((call_id, now + PROBE_TIMEOUT, conn));
        probe.next_at = Some(now + Duration::from_secs(g.options_interval_secs.max(1)));
    }

    pub(super) fn probe_result(&mut self, name: &str, up: bool, why: &str) {
        let Some(probe) = self.probes.get_mut(name) else {
            return;
        };
        probe.pending = None;
        if probe.up != Some(up) {
            if up {
                tracing::info!(gateway = name, "gateway up: answered OPTIONS");
            } else {
                tracing::warn!(gateway = name, why, "gateway down");
            }
        }
        probe.up = Some(up);
        self.metrics
            .gateway_up
            .with_label_values(&[name])
            .set(i64::from(up));
    }
}
