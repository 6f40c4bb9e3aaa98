//! OPTIONS keepalive of gateways (Lync's trunk keepalive): probes sent on each gateway's
//! interval, answers and silence judged, and the verdict that routing skips a down gateway by.

use std::time::{Duration, Instant};

use super::super::report::Report;
use super::timers::Timer;
use super::{Engine, PortAllocator, Target};
use crate::config::{AddressList, GatewayTransport, IpFamily};
use crate::peer::Peer;
use crate::sip::outgoing::Outgoing;

/// How long a gateway has to answer an OPTIONS probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

impl<P: PortAllocator> Engine<P> {
    /// Sends a gateway's OPTIONS probe, and schedules the next one. A probe still in flight
    /// is judged first (at its own timer), then the next goes out.
    pub(super) fn send_probe(&mut self, now: Instant, name: &str) {
        let Some(g) = self.cfg.gateways.iter().find(|g| g.name == name).cloned() else {
            return;
        };
        let answer_timer = Timer::ProbeAnswer(name.to_string());
        if self.probes.get(name).is_some_and(|p| p.pending.is_some()) {
            if let Some(at) = self.timers.get(&answer_timer) {
                self.timers.set(Timer::ProbeSend(name.to_string()), at);
            }
            return;
        }
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
        let call_id = format!("probe-{}@{ours}", self.token(16));
        let (branch, tag) = (self.branch(), self.token(10));
        let (host, _) = crate::config::split_host_port(&g.address).unwrap_or((&g.address, 0));
        let host = match host.parse() {
            Ok(ip) => AddressList::sip_host(ip), // `[2001:db8::6]`, as a SIP URI writes it
            Err(_) => host.to_string(),
        };
        let transport = self.uri_transport(&target.peer, target.tls_identity.is_some());
        let options = Outgoing::request("OPTIONS", &format!("sip:{host};transport={transport}"))
            .header("Via", format!("{};branch={branch}", local.via))
            .header("Max-Forwards", "70")
            .header("From", format!("<sip:mediation@{ours}>;tag={tag}"))
            .header("To", format!("<sip:{host}>"))
            .header("Call-ID", call_id.clone())
            .header("CSeq", "1 OPTIONS")
            .header("Contact", local.contact)
            .encode();
        self.send(conn, options);
        self.probes.entry(name.to_string()).or_default().pending = Some((call_id, conn));
        self.timers.set(answer_timer, now + PROBE_TIMEOUT);
        self.timers.set(
            Timer::ProbeSend(name.to_string()),
            now + Duration::from_secs(g.options_interval_secs.max(1)),
        );
    }

    pub(super) fn probe_result(&mut self, name: &str, up: bool, why: &str) {
        let Some(probe) = self.probes.get_mut(name) else {
            return;
        };
        probe.pending = None;
        self.timers.cancel(&Timer::ProbeAnswer(name.to_string()));
        if probe.up != Some(up) {
            if up {
                tracing::info!(gateway = name, "gateway up: answered OPTIONS");
            } else {
                tracing::warn!(gateway = name, why, "gateway down");
            }
        }
        probe.up = Some(up);
        self.reports.push_back(Report::GatewayUp {
            gateway: name.to_string(),
            up,
        });
    }
}
