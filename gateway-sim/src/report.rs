//! The run report: one object per call and a summary, written as JSON (`--report`) and printed
//! as a short human summary. The field names are a contract with the end-to-end tests.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::rtp_stream::MediaResult;
use crate::stats::percentile;

/// Which side placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Direction {
    /// We sent the INVITE.
    Outgoing,
    /// We answered the INVITE.
    Incoming,
}

/// A re-INVITE we sent and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reinvite {
    /// `hold` or `resume`.
    pub(crate) purpose: String,
    /// The direction we offered.
    pub direction: String,
    /// Final status code, `null` if none came.
    pub status: Option<u16>,
    /// The direction of the answer, `null` if none.
    pub answer_direction: Option<String>,
}

/// Everything about one call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallReport {
    /// SIP Call-ID.
    pub call_id: String,
    /// `outgoing` or `incoming`.
    pub(crate) direction: Direction,
    /// `tcp` or `tls`.
    pub transport: String,
    /// `RTP/AVP` or `RTP/SAVP` (protected media), `null` if no media was negotiated.
    pub media_profile: Option<String>,
    /// Negotiated SRTP suite, `null` for plain RTP.
    pub srtp_suite: Option<String>,
    /// Final status code of the INVITE (sent or received); `null` if none.
    pub sip_status: Option<u16>,
    /// Outgoing: INVITE sent to final response. Incoming: INVITE received to ACK received.
    pub setup_ms: Option<f64>,
    /// RTP packets we sent.
    pub packets_sent: u64,
    /// Distinct packets received with a valid marker.
    pub packets_received: u64,
    /// Missing marker sequences up to the highest received.
    pub packets_lost: u64,
    /// Repeated packets.
    pub(crate) packets_duplicated: u64,
    /// Packets that arrived after a later one.
    pub(crate) packets_reordered: u64,
    /// RFC 3550 interarrival jitter in ms.
    pub jitter_ms: Option<f64>,
    /// Median one-way latency in ms (same-host clocks).
    pub latency_ms_p50: Option<f64>,
    /// 99th percentile one-way latency in ms.
    pub latency_ms_p99: Option<f64>,
    /// Media arrived and every packet was byte-for-byte what the far end sent.
    pub payload_ok: bool,
    /// What the wire showed: no plaintext marker/tone (`true`), plaintext (`false`), nothing
    /// received (`null`).
    pub wire_encrypted: Option<bool>,
    /// SRTP packets that failed authentication.
    pub srtp_auth_failures: u64,
    /// RTCP packets sent / received (authenticated).
    pub(crate) rtcp_sent: u64,
    /// RTCP packets received.
    pub(crate) rtcp_received: u64,
    /// In-dialog offers (re-INVITE, UPDATE) from the peer answered 200.
    pub reoffers_answered: u64,
    /// In-dialog offers from the peer refused (488).
    pub(crate) reoffers_refused: u64,
    /// Re-INVITEs we sent (`--hold-at`, `--resume-at`) and their answers, in order.
    pub reinvites: Vec<Reinvite>,
    /// The final status of the INFO we sent (`--info-at`), `null` if none was answered.
    pub info_status: Option<u16>,
    /// RTP packets we sent while the call was on hold.
    pub packets_sent_while_held: u64,
    /// Packets received while the call was on hold.
    pub(crate) packets_received_while_held: u64,
    /// Packets received after the call was resumed (0 if it was never held).
    pub packets_received_after_resume: u64,
    /// Packets lost while the call was not on hold (loss around and during a hold excluded).
    pub packets_lost_outside_hold: u64,
    /// Who ended the call: `us`, `peer`, or `null` when it never got going.
    pub hangup_by: Option<String>,
    /// Why the call failed, `null` if it did not.
    pub error: Option<String>,
    /// Both SRTP keys of the call (ours, theirs) in `inline:` base64, only with
    /// `--report-keys`: a test that must prove a key never appears elsewhere (the mediation
    /// server's logs) needs to know it. Never on by default.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) srtp_keys: Vec<String>,
    /// When set-up started and ended (for the summary's rate; not serialized).
    #[serde(skip)]
    pub(crate) setup_window: Option<(Instant, Instant)>,
}

impl CallReport {
    /// Records the call's SRTP keys in base64 (see [`CallReport::srtp_keys`]).
    pub(crate) fn record_keys(&mut self, plan: &crate::negotiate::MediaPlan) {
        if let Some(keys) = &plan.srtp {
            for key in [&keys.ours, &keys.theirs] {
                self.srtp_keys
                    .push(mediation::sdp::base64::encode(key.key_and_salt()));
            }
        }
    }

    /// A call with no media yet.
    pub(crate) fn new(call_id: String, direction: Direction, transport: &str) -> Self {
        Self {
            call_id,
            direction,
            transport: transport.into(),
            media_profile: None,
            srtp_suite: None,
            sip_status: None,
            setup_ms: None,
            packets_sent: 0,
            packets_received: 0,
            packets_lost: 0,
            packets_duplicated: 0,
            packets_reordered: 0,
            jitter_ms: None,
            latency_ms_p50: None,
            latency_ms_p99: None,
            payload_ok: false,
            wire_encrypted: None,
            srtp_auth_failures: 0,
            rtcp_sent: 0,
            rtcp_received: 0,
            reoffers_answered: 0,
            reoffers_refused: 0,
            reinvites: Vec::new(),
            info_status: None,
            packets_sent_while_held: 0,
            packets_received_while_held: 0,
            packets_received_after_resume: 0,
            packets_lost_outside_hold: 0,
            hangup_by: None,
            error: None,
            srtp_keys: Vec::new(),
            setup_window: None,
        }
    }

    /// Records the set-up time: `setup_ms` and the window the summary's rate is computed from.
    pub(crate) fn set_setup(&mut self, started: Instant, ended: Instant) {
        self.setup_ms = Some(round3(
            ended.saturating_duration_since(started).as_secs_f64() * 1000.0,
        ));
        self.setup_window = Some((started, ended));
    }

    /// Sets the error unless one is already recorded (the first cause wins).
    pub(crate) fn fail(&mut self, reason: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(reason.into());
        }
    }

    /// True when the call succeeded and passed every check.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// Copies the media measurements and applies the media checks: something received, payload
    /// intact, SRTP authenticates, and the wire agrees with what the SDP negotiated.
    pub(crate) fn apply_media(&mut self, media: &MediaResult, srtp_negotiated: bool) {
        self.packets_sent = media.packets_sent;
        self.packets_received = media.packets_received;
        self.packets_lost = media.packets_lost;
        self.packets_duplicated = media.duplicates;
        self.packets_reordered = media.reordered;
        self.jitter_ms = media.jitter_ms.map(round3);
        self.latency_ms_p50 = media.latency_ms_p50.map(round3);
        self.latency_ms_p99 = media.latency_ms_p99.map(round3);
        self.payload_ok = media.payload_ok();
        self.wire_encrypted = media.wire_encrypted();
        self.srtp_auth_failures = media.srtp_auth_failures;
        self.rtcp_sent = media.rtcp_sent;
        self.rtcp_received = media.rtcp_received;
        self.packets_sent_while_held = media.sent_while_held;
        self.packets_received_while_held = media.received_while_held;
        self.packets_received_after_resume = media.received_after_resume;
        self.packets_lost_outside_hold = media.lost_outside_hold;

        if media.datagrams_received == 0 {
            self.fail("no media received");
            return;
        }
        match (srtp_negotiated, self.wire_encrypted) {
            (true, Some(false)) => self.fail(format!(
                "SRTP was negotiated but {} datagrams carried plaintext media",
                media.plaintext_datagrams
            )),
            (false, Some(true)) => {
                self.fail("plain RTP was negotiated but the media on the wire was not plaintext")
            }
            _ => {}
        }
        if media.srtp_auth_failures > 0 {
            self.fail(format!(
                "{} SRTP packets failed authentication with the negotiated key",
                media.srtp_auth_failures
            ));
        }
        if media.bad_payloads > 0 {
            self.fail(format!(
                "{} packets did not carry the payload the far end sent",
                media.bad_payloads
            ));
        }
        if media.packets_received == 0 {
            self.fail("no valid media packet received");
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Totals over a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Calls reported.
    pub(crate) calls_total: u64,
    /// Calls without error.
    pub calls_ok: u64,
    /// Calls with an error.
    pub calls_failed: u64,
    /// Calls set up per second: calls with a set-up time divided by the time from the first
    /// set-up start (INVITE sent or received) to the last set-up end (final response, or ACK on
    /// the answering side); 0 when no call got that far.
    pub calls_per_second: f64,
    /// Wall-clock time of the run.
    pub(crate) elapsed_s: f64,
    /// Median set-up time.
    pub(crate) setup_ms_p50: Option<f64>,
    /// 99th percentile set-up time.
    pub(crate) setup_ms_p99: Option<f64>,
    /// Sum of packets lost over every call.
    pub packets_lost: u64,
    /// TLS handshakes that failed (answering side: peers refused; calling side: our connect).
    pub(crate) tls_handshake_failures: u64,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// One entry per call, in the order they ended.
    pub calls: Vec<CallReport>,
    /// Totals.
    pub summary: Summary,
}

impl Report {
    /// Builds the summary over `calls`; `elapsed` is the run's wall-clock time.
    pub(crate) fn new(
        calls: Vec<CallReport>,
        elapsed: Duration,
        tls_handshake_failures: u64,
    ) -> Self {
        let total = calls.len() as u64;
        let ok = calls.iter().filter(|c| c.ok()).count() as u64;
        let windows: Vec<(Instant, Instant)> =
            calls.iter().filter_map(|c| c.setup_window).collect();
        let first = windows.iter().map(|w| w.0).min();
        let last = windows.iter().map(|w| w.1).max();
        let calls_per_second = match (first, last) {
            (Some(first), Some(last)) if last > first => {
                round3(windows.len() as f64 / last.duration_since(first).as_secs_f64())
            }
            _ => 0.0,
        };
        let mut setups: Vec<i64> = calls
            .iter()
            .filter_map(|c| c.setup_ms)
            .map(|ms| (ms * 1000.0) as i64)
            .collect();
        setups.sort_unstable();
        let us_to_ms = |us: i64| us as f64 / 1000.0;
        Self {
            summary: Summary {
                calls_total: total,
                calls_ok: ok,
                calls_failed: total - ok,
                calls_per_second,
                elapsed_s: round3(elapsed.as_secs_f64()),
                setup_ms_p50: percentile(&setups, 50.0).map(us_to_ms),
                setup_ms_p99: percentile(&setups, 99.0).map(us_to_ms),
                packets_lost: calls.iter().map(|c| c.packets_lost).sum(),
                tls_handshake_failures,
            },
            calls,
        }
    }

    /// True when every call succeeded and passed its checks (and there was at least one).
    pub fn all_ok(&self) -> bool {
        self.summary.calls_total > 0 && self.summary.calls_failed == 0
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Writes the JSON report to `path`.
    pub fn write_json(&self, path: &Path) -> io::Result<()> {
        let mut text = self.to_json();
        text.push('\n');
        std::fs::write(path, text)
    }

    /// Writes the human summary: one line per call (the first 20 and every failed one), then
    /// the totals.
    pub fn write_human(&self, out: &mut impl Write) -> io::Result<()> {
        let many = self.calls.len() > 20;
        for (i, call) in self.calls.iter().enumerate() {
            if many && i >= 20 && call.ok() {
                continue;
            }
            writeln!(out, "{}", human_line(call))?;
        }
        let s = &self.summary;
        writeln!(
            out,
            "summary: {} calls, {} ok, {} failed, {:.2} calls/s, {} packets lost, {:.1} s",
            s.calls_total,
            s.calls_ok,
            s.calls_failed,
            s.calls_per_second,
            s.packets_lost,
            s.elapsed_s
        )
    }
}

fn opt_ms(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

fn human_line(c: &CallReport) -> String {
    let status = c.sip_status.map_or_else(|| "-".into(), |s| s.to_string());
    let media = match (&c.media_profile, &c.srtp_suite) {
        (Some(p), Some(s)) => format!("{p} {s}"),
        (Some(p), None) => p.clone(),
        _ => "no media".into(),
    };
    let wire = match c.wire_encrypted {
        Some(true) => "encrypted",
        Some(false) => "plain",
        None => "-",
    };
    let verdict = match &c.error {
        None => "OK".to_string(),
        Some(e) => format!("FAILED: {e}"),
    };
    format!(
        "{dir} {id} {tr} {status} {media}: setup {setup} ms, sent {sent} recv {recv} lost {lost}, \
         jitter {jit} ms, latency p50 {p50} p99 {p99} ms, payload {payload}, wire {wire} - {verdict}",
        dir = match c.direction {
            Direction::Outgoing => "out",
            Direction::Incoming => "in",
        },
        id = c.call_id,
        tr = c.transport,
        setup = opt_ms(c.setup_ms),
        sent = c.packets_sent,
        recv = c.packets_received,
        lost = c.packets_lost,
        jit = opt_ms(c.jitter_ms),
        p50 = opt_ms(c.latency_ms_p50),
        p99 = opt_ms(c.latency_ms_p99),
        payload = match (c.payload_ok, c.packets_received) {
            (true, _) => "ok",
            (false, 0) => "-",
            (false, _) => "BAD",
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_the_contract_fields() {
        let t0 = Instant::now();
        let mut ok = CallReport::new("a@b".into(), Direction::Outgoing, "tls");
        ok.sip_status = Some(200);
        ok.set_setup(t0, t0 + Duration::from_millis(500));
        assert_eq!(ok.setup_ms, Some(500.0));
        let mut bad = CallReport::new("c@d".into(), Direction::Incoming, "tcp");
        bad.sip_status = Some(488);
        bad.set_setup(
            t0 + Duration::from_millis(1500),
            t0 + Duration::from_secs(2),
        );
        bad.fail("offer refused");
        bad.fail("second cause is ignored");
        let report = Report::new(vec![ok, bad], Duration::from_secs(4), 0);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        let call = &json["calls"][0];
        for field in [
            "call_id",
            "direction",
            "transport",
            "media_profile",
            "srtp_suite",
            "sip_status",
            "setup_ms",
            "packets_sent",
            "packets_received",
            "packets_lost",
            "jitter_ms",
            "latency_ms_p50",
            "latency_ms_p99",
            "payload_ok",
            "wire_encrypted",
            "error",
        ] {
            assert!(call.get(field).is_some(), "missing {field}");
        }
        assert_eq!(call["direction"], "outgoing");
        assert_eq!(json["calls"][1]["error"], "offer refused");
        assert_eq!(json["summary"]["calls_ok"], 1);
        assert_eq!(json["summary"]["calls_failed"], 1);
        // Two set-ups within two seconds: one call per second.
        assert_eq!(json["summary"]["calls_per_second"], 1.0);
        assert!(json["calls"][0].get("setup_window").is_none());
        assert!(!report.all_ok());
        let mut text = Vec::new();
        report.write_human(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("FAILED: offer refused"), "{text}");
        assert!(text.contains("summary: 2 calls, 1 ok, 1 failed"), "{text}");
    }

    #[test]
    fn media_checks() {
        let media = MediaResult {
            packets_sent: 10,
            packets_received: 10,
            datagrams_received: 10,
            plaintext_datagrams: 10,
            ..MediaResult::default()
        };
        let mut plain = CallReport::new("x".into(), Direction::Outgoing, "tcp");
        plain.apply_media(&media, false);
        assert!(plain.ok(), "{:?}", plain.error);
        assert_eq!(plain.wire_encrypted, Some(false));
        let mut srtp = CallReport::new("x".into(), Direction::Outgoing, "tls");
        srtp.apply_media(&media, true);
        assert!(srtp.error.unwrap().contains("plaintext"));
        let mut silent = CallReport::new("x".into(), Direction::Outgoing, "tls");
        silent.apply_media(&MediaResult::default(), true);
        assert_eq!(silent.error.as_deref(), Some("no media received"));
    }
}
