//! Interop with a SIP stack nobody here wrote: baresip (Debian `baresip-core`, its `srtp`
//! module with `mediaenc=srtp-mand`) plays the gateway over MTLS with the trusted certificate,
//! and a second baresip plays the internal next hop. The call must complete through the
//! mediation server with SRTP on both legs and audio flowing both ways. A second test puts
//! such a call on hold and resumes it by re-INVITE (baresip's `hold` and `resume` commands,
//! sent over its `ctrl_tcp` module), from either side. A third puts baresip on IPv6 only
//! (`[::1]`, MTLS, SRTP) calling an IPv6 next hop (gateway-sim on `[::1]`, `--any-payload`
//! to count baresip's audio by RTP sequence number).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::{free_port, http_get, sample, Lab, Mediation, Setup, Sim};

/// A baresip config directory: listens on `port` (TLS on `port + 1`), presents `bundle`.
fn baresip_dir(
    lab: &Lab,
    name: &str,
    port: u16,
    bundle: &str,
    account: &str,
    extra: &str,
) -> std::path::PathBuf {
    baresip_dir_on(lab, name, "127.0.0.1", port, bundle, account, extra)
}

/// [`baresip_dir`] on `host` (`"::1"`: SIP and media on IPv6 only).
fn baresip_dir_on(
    lab: &Lab,
    name: &str,
    host: &str,
    port: u16,
    bundle: &str,
    account: &str,
    extra: &str,
) -> std::path::PathBuf {
    let dir = lab.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config"),
        format!(
            "module_path /usr/lib/baresip/modules\n\
             sip_listen {listen}\n\
             sip_certificate {bundle}\n\
             sip_cafile {ca}\n\
             net_interface {host}\n\
             audio_player alsa,null\n\
             audio_source ausine,440\n\
             ausrc_srate 48000\n\
             ausrc_channels 2\n\
             module stdio.so\nmodule g711.so\nmodule ausine.so\nmodule alsa.so\nmodule srtp.so\n\
             module_app account.so\nmodule_app menu.so\n{extra}",
            listen = e2e::host_port(host, port),
            bundle = lab.arg(bundle),
            ca = lab.arg("ca.pem"),
        ),
    )
    .unwrap();
    std::fs::write(dir.join("accounts"), format!("{account}\n")).unwrap();
    dir
}

/// A port P with P+1 free too (baresip puts TLS on P+1).
fn port_pair() -> u16 {
    loop {
        let p = free_port();
        let free = |host: &str| {
            std::net::TcpListener::bind((host, p)).is_ok()
                && std::net::TcpListener::bind((host, p + 1)).is_ok()
        };
        if p < 65000 && free("127.0.0.1") && free("::1") {
            return p;
        }
    }
}

fn baresip(dir: &Path, args: &[&str], log: &Path) -> std::process::Child {
    Command::new("baresip")
        .arg("-f")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("baresip must be installed (tests/run.sh installs baresip-core)")
}

#[test]
fn baresip_gateway_over_mtls_calls_baresip_next_hop_with_srtp_on_both_legs() {
    let lab = Lab::new();
    let nh_port = port_pair();
    let gw_port = port_pair();
    let setup = Setup {
        next_hop_port: nh_port + 1,
        gw1_port: gw_port + 1,
        ..Setup::default()
    };
    let mediation = Mediation::start(&lab, &setup);

    let nh_dir = baresip_dir(
        &lab,
        "baresip-nexthop",
        nh_port,
        "nexthop-bundle.pem",
        "<sip:+15551234@127.0.0.1>;regint=0;mediaenc=srtp-mand;answermode=auto;audio_codecs=PCMU",
        "",
    );
    let gw_dir = baresip_dir(
        &lab,
        "baresip-gateway",
        gw_port,
        "gateway-bundle.pem",
        "<sip:+15550001@127.0.0.1>;regint=0;mediaenc=srtp-mand;audio_codecs=PCMU",
        "",
    );
    let nh_log = lab.path("baresip-nexthop.log");
    let gw_log = lab.path("baresip-gateway.log");
    let mut nh = baresip(&nh_dir, &["-t", "12"], &nh_log);
    std::thread::sleep(Duration::from_millis(500));
    let dial = format!(
        "/dial sip:+15551234@127.0.0.1:{};transport=tls",
        mediation.ports.gateway_tls
    );
    let mut gw = baresip(&gw_dir, &["-e", &dial, "-t", "6"], &gw_log);
    let gw_status = gw.wait().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let _ = nh.kill();
    let _ = nh.wait();

    let gw_text = std::fs::read_to_string(&gw_log).unwrap();
    let nh_text = std::fs::read_to_string(&nh_log).unwrap();
    let log = mediation.log_text();
    let context = format!(
        "baresip gateway ({gw_status}):\n{gw_text}\n\nbaresip next hop:\n{nh_text}\n\nmediation:\n{log}"
    );
    assert!(
        gw_text.contains("Call established"),
        "gateway side not established\n{context}"
    );
    assert!(
        nh_text.contains("Call established"),
        "next-hop side not established\n{context}"
    );

    // The mediation server's own account of the call: SRTP on both legs, and why.
    let answered = log
        .lines()
        .find(|l| l.contains("call answered"))
        .unwrap_or_else(|| panic!("no answered call\n{context}"));
    let answered: serde_json::Value = serde_json::from_str(answered).unwrap();
    let fields = &answered["fields"];
    assert_eq!(fields["gateway"], "gw1", "{answered}");
    assert_eq!(fields["gateway_leg"], "srtp (verified_mtls)", "{answered}");
    assert_eq!(
        fields["next_hop_leg"], "srtp (next_hop_policy)",
        "{answered}"
    );

    // Audio went both ways through the relay (50 packets/s for several seconds).
    let stopped = log
        .lines()
        .find(|l| l.contains("media relay stopped"))
        .unwrap_or_else(|| panic!("relay never stopped\n{context}"));
    let stopped: serde_json::Value = serde_json::from_str(stopped).unwrap();
    for key in ["a_in", "a_out", "b_in", "b_out"] {
        let n = stopped["fields"][key].as_u64().unwrap_or(0);
        assert!(n > 100, "{key} = {n}: audio did not flow\n{stopped}");
    }
    let auth_failures = stopped["fields"]["a_dropped"].as_u64().unwrap_or(0)
        + stopped["fields"]["b_dropped"].as_u64().unwrap_or(0);
    assert!(auth_failures < 5, "packets dropped: {stopped}");
}

/// A baresip driven over its `ctrl_tcp` module (JSON in netstrings), with SIP trace (`-s`)
/// and the `rtcpsummary` line in its log; killed on drop.
struct Controlled {
    child: std::process::Child,
    log: std::path::PathBuf,
    ctrl: u16,
}

/// The configuration lines that add the control socket and the RTCP summary.
fn control_config(ctrl: u16) -> String {
    format!("module_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl}\nmodule_app rtcpsummary.so\n")
}

impl Controlled {
    fn start(dir: &Path, ctrl: u16, log: std::path::PathBuf, args: &[&str]) -> Self {
        let mut all = vec!["-s", "-t", "60"];
        all.extend_from_slice(args);
        let child = baresip(dir, &all, &log);
        e2e::wait_port(ctrl);
        Controlled { child, log, ctrl }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs one command (`hold`, `resume`, `hangup`, `quit`) and returns baresip's response.
    fn command(&self, command: &str) -> serde_json::Value {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.ctrl)).expect("ctrl_tcp");
        let json = serde_json::json!({"command": command, "params": "", "token": command});
        let json = json.to_string();
        write!(s, "{}:{json},", json.len()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        // Events may come first; the response carries `"response":true` and our token.
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            if let Some(response) = netstrings(&text).find(|v| v["response"] == true) {
                return response;
            }
        }
        panic!("no response to `{command}` from baresip: {text:?}");
    }

    /// Waits (at most `limit`) for `needle` in the log.
    fn wait_for(&self, needle: &str, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if self.log_text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for Controlled {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The JSON values of the complete netstrings (`len:json,`) in `text`.
fn netstrings(text: &str) -> impl Iterator<Item = serde_json::Value> + '_ {
    let mut rest = text;
    std::iter::from_fn(move || {
        let (len, tail) = rest.split_once(':')?;
        let len: usize = len.trim().parse().ok()?;
        let body = tail.get(..len)?;
        rest = tail.get(len + 1..)?;
        serde_json::from_str(body).ok()
    })
}

/// One SIP message of baresip's trace (`-s`): start line, CSeq and audio direction.
#[derive(Debug)]
struct Traced {
    start: String,
    cseq: String,
    direction: Option<String>,
    /// The whole message as traced (headers and SDP).
    text: String,
}

/// The SIP messages in a baresip log: each is printed between `ESC[36;1m#` and `ESC[;m`,
/// after a line naming the transport and the addresses.
fn sip_trace(log: &str) -> Vec<Traced> {
    log.split("\x1b[36;1m#")
        .skip(1)
        .filter_map(|block| {
            let block = block.split("\x1b[;m").next()?;
            let text = block.to_string();
            let mut lines = block.lines().map(str::trim).filter(|l| !l.is_empty());
            let _addresses = lines.next()?;
            let start = lines.next()?.to_string();
            let lines: Vec<&str> = lines.collect();
            let cseq = lines
                .iter()
                .find_map(|l| l.strip_prefix("CSeq:"))?
                .trim()
                .to_string();
            let direction = lines
                .iter()
                .filter_map(|l| l.strip_prefix("a="))
                .find(|a| matches!(*a, "sendrecv" | "sendonly" | "recvonly" | "inactive"))
                .map(str::to_string);
            Some(Traced {
                start,
                cseq,
                direction,
                text,
            })
        })
        .collect()
}

/// The final response to the INVITE with CSeq `cseq` in a trace.
fn final_response<'a>(trace: &'a [Traced], cseq: &str) -> Option<&'a Traced> {
    trace.iter().find(|m| {
        m.cseq == cseq && m.start.starts_with("SIP/2.0 ") && !m.start.starts_with("SIP/2.0 1")
    })
}

/// Checks that the holder sent a `sendonly` re-INVITE and then a `sendrecv` one, and that both
/// were answered 200 (`recvonly`/`inactive` to the hold, `sendrecv` to the resume).
fn assert_hold_and_resume_answered(log: &str, context: &str) {
    let trace = sip_trace(log);
    let invites: Vec<&Traced> = trace
        .iter()
        .filter(|m| m.start.starts_with("INVITE "))
        .collect();
    let hold = invites
        .iter()
        .find(|m| m.direction.as_deref() == Some("sendonly"))
        .unwrap_or_else(|| panic!("no hold re-INVITE (a=sendonly) sent\n{context}"));
    let resume = invites
        .iter()
        .skip_while(|m| m.cseq != hold.cseq)
        .find(|m| m.direction.as_deref() == Some("sendrecv"))
        .unwrap_or_else(|| panic!("no resume re-INVITE (a=sendrecv) after the hold\n{context}"));
    for (invite, allowed) in [
        (hold, &["recvonly", "inactive"][..]),
        (resume, &["sendrecv"][..]),
    ] {
        let answer = final_response(&trace, &invite.cseq)
            .unwrap_or_else(|| panic!("no final response to {}\n{context}", invite.cseq));
        assert!(
            answer.start.starts_with("SIP/2.0 200"),
            "{} answered `{}`\n{context}",
            invite.cseq,
            answer.start
        );
        let direction = answer.direction.as_deref().unwrap_or("sendrecv");
        assert!(
            allowed.contains(&direction),
            "{} answered with a={direction}, expected one of {allowed:?}\n{context}",
            invite.cseq
        );
    }
}

/// `mediation_media_packets_total` of the SRTP legs: [gateway in, gateway out, next_hop in,
/// next_hop out].
fn media_packets(metrics_port: u16) -> [f64; 4] {
    let text = e2e::http_get(metrics_port, "/metrics");
    let get = |leg: &str, direction: &str| {
        e2e::sample(
            &text,
            &format!(
                "mediation_media_packets_total{{direction=\"{direction}\",leg=\"{leg}\",protection=\"srtp\"}}"
            ),
        )
    };
    [
        get("gateway", "in"),
        get("gateway", "out"),
        get("next_hop", "in"),
        get("next_hop", "out"),
    ]
}

/// Asserts every flow grew by at least `min` packets between two snapshots.
fn assert_all_flows(before: [f64; 4], after: [f64; 4], min: f64, what: &str, context: &str) {
    let names = ["gateway in", "gateway out", "next_hop in", "next_hop out"];
    for i in 0..4 {
        let grew = after[i] - before[i];
        assert!(
            grew >= min,
            "{what}: {} grew by {grew} packets (< {min}); {before:?} -> {after:?}\n{context}",
            names[i]
        );
    }
}

/// The `EX=BareSip;...` line of the rtcpsummary module: (packets lost rx, tx) per RTCP.
fn rtcp_lost(log: &str) -> Option<(i64, i64)> {
    let line = log.lines().find(|l| l.starts_with("EX=BareSip;"))?;
    let pl = line.split(';').find_map(|f| f.strip_prefix("PL="))?;
    let (rx, tx) = pl.split_once(',')?;
    Some((rx.parse().ok()?, tx.parse().ok()?))
}

/// Which baresip puts the call on hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    Gateway,
    NextHop,
}

/// A call from a baresip gateway (MTLS, SRTP) to a baresip next hop through mediation; after
/// three seconds of audio `holder` holds for three seconds and resumes. See the two tests.
fn hold_and_resume(holder: Holder) {
    let lab = Lab::new();
    let (nh_port, gw_port) = (port_pair(), port_pair());
    let (nh_ctrl, gw_ctrl) = (free_port(), free_port());
    let setup = Setup {
        next_hop_port: nh_port + 1,
        gw1_port: gw_port + 1,
        ..Setup::default()
    };
    let mediation = Mediation::start(&lab, &setup);
    let nh_dir = baresip_dir(
        &lab,
        "baresip-nexthop",
        nh_port,
        "nexthop-bundle.pem",
        "<sip:+15551234@127.0.0.1>;regint=0;mediaenc=srtp-mand;answermode=auto;audio_codecs=PCMU",
        &control_config(nh_ctrl),
    );
    let gw_dir = baresip_dir(
        &lab,
        "baresip-gateway",
        gw_port,
        "gateway-bundle.pem",
        "<sip:+15550001@127.0.0.1>;regint=0;mediaenc=srtp-mand;audio_codecs=PCMU",
        &control_config(gw_ctrl),
    );
    let nh = Controlled::start(&nh_dir, nh_ctrl, lab.path("baresip-nexthop.log"), &[]);
    let dial = format!(
        "/dial sip:+15551234@127.0.0.1:{};transport=tls",
        mediation.ports.gateway_tls
    );
    let gw = Controlled::start(
        &gw_dir,
        gw_ctrl,
        lab.path("baresip-gateway.log"),
        &["-e", &dial],
    );
    let context = || {
        format!(
            "baresip gateway:\n{}\n\nbaresip next hop:\n{}\n\nmediation:\n{}",
            gw.log_text(),
            nh.log_text(),
            mediation.log_text()
        )
    };
    for side in [&gw, &nh] {
        assert!(
            side.wait_for("Call established", Duration::from_secs(10)),
            "call not established\n{}",
            context()
        );
    }
    let (holding, other) = match holder {
        Holder::Gateway => (&gw, &nh),
        Holder::NextHop => (&nh, &gw),
    };
    let metrics = mediation.ports.metrics;

    // Two-way audio before the hold (the counters are flushed once a second).
    std::thread::sleep(Duration::from_millis(1500));
    let talking = media_packets(metrics);
    std::thread::sleep(Duration::from_millis(2000));
    let before_hold = media_packets(metrics);
    assert_all_flows(talking, before_hold, 40.0, "before hold", &context());

    let held = holding.command("hold");
    assert_eq!(held["ok"], true, "hold refused: {held}\n{}", context());
    std::thread::sleep(Duration::from_secs(3));
    let resumed = holding.command("resume");
    assert_eq!(
        resumed["ok"],
        true,
        "resume refused: {resumed}\n{}",
        context()
    );

    // Two-way audio after the resume, on both legs.
    std::thread::sleep(Duration::from_millis(1500));
    let after_resume = media_packets(metrics);
    std::thread::sleep(Duration::from_millis(2500));
    let later = media_packets(metrics);
    assert_all_flows(after_resume, later, 60.0, "after resume", &context());
    // baresip restarts its RTCP statistics when a re-offer updates the stream; let a few RTCP
    // intervals pass so its summary at hang-up has something to report.
    std::thread::sleep(Duration::from_secs(6));

    let hung_up = holding.command("hangup");
    assert_eq!(hung_up["ok"], true, "{hung_up}");
    for side in [holding, other] {
        assert!(
            side.wait_for("EX=BareSip;", Duration::from_secs(5)),
            "no RTCP summary at hangup\n{}",
            context()
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !mediation.log_text().contains("media relay stopped")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let context = context();

    assert_hold_and_resume_answered(&holding.log_text(), &context);
    assert_relay_conserved(&mediation.log_text(), &media_packets(metrics), &context);
    // baresip's own account (RTCP): nothing lost either way. The side that hangs up prints it;
    // the other one often has no RTCP stats left when it gets the BYE.
    let lost = rtcp_lost(&holding.log_text());
    assert_eq!(
        lost,
        Some((0, 0)),
        "holder: RTCP packets lost (rx, tx)\n{context}"
    );
    if let Some(lost) = rtcp_lost(&other.log_text()) {
        assert_eq!(
            lost,
            (0, 0),
            "held party: RTCP packets lost (rx, tx)\n{context}"
        );
    }
}

/// Both sides counted by the relay agree: what came in on one leg went out on the other, in
/// the relay's own account at the end and in `/metrics`.
fn assert_relay_conserved(log: &str, totals: &[f64; 4], context: &str) {
    let stopped = log
        .lines()
        .find(|l| l.contains("media relay stopped"))
        .unwrap_or_else(|| panic!("relay never stopped\n{context}"));
    let stopped: serde_json::Value = serde_json::from_str(stopped).unwrap();
    let f = |k: &str| stopped["fields"][k].as_u64().unwrap_or(0);
    assert_eq!(
        f("a_in"),
        f("b_out"),
        "gateway in vs next hop out: {stopped}"
    );
    assert_eq!(
        f("b_in"),
        f("a_out"),
        "next hop in vs gateway out: {stopped}"
    );
    // One unauthenticated or early packet per leg is tolerated (as the call test does).
    assert!(f("a_dropped") + f("b_dropped") < 5, "dropped: {stopped}");
    let [gw_in, gw_out, nh_in, nh_out] = *totals;
    assert_eq!(
        gw_in, nh_out,
        "metrics: gateway in vs next_hop out\n{context}"
    );
    assert_eq!(
        nh_in, gw_out,
        "metrics: next_hop in vs gateway out\n{context}"
    );
    assert_eq!(gw_in, f("a_in") as f64, "metrics vs relay log: {stopped}");
}

#[test]
fn baresip_gateway_holds_and_resumes_a_call_to_baresip_next_hop_over_mtls_with_srtp() {
    hold_and_resume(Holder::Gateway);
}

#[test]
fn baresip_next_hop_holds_and_resumes_a_call_from_baresip_gateway_over_mtls_with_srtp() {
    hold_and_resume(Holder::NextHop);
}

/// The `m=audio` line of a traced message and whether it carries an `a=crypto`.
fn audio_of(message: &Traced) -> (Option<&str>, bool) {
    let lines = || message.text.lines().map(str::trim);
    (
        lines().find(|l| l.starts_with("m=audio ")),
        lines().any(|l| l.starts_with("a=crypto:")),
    )
}

/// baresip as the TLS gateway (gw1) on `::1` only — SIP over MTLS from `[::1]`, its media on
/// `::1` — calls in through mediation's IPv6 gateway listener to an IPv6 next hop (a
/// gateway-sim answering on `[::1]` over MTLS, SRTP required, counting baresip's audio by RTP
/// sequence number). SRTP on both legs as baresip's trace, mediation's log and metrics and the
/// next hop's wire all show; the answer baresip gets is `c=IN IP6 ::1`; audio both ways; and
/// baresip's hang-up ends the call at the far end too.
#[test]
fn baresip_gateway_on_ipv6_calls_an_ipv6_next_hop_over_mtls_with_srtp_on_both_legs() {
    let lab = Lab::new();
    let gw_port = port_pair();
    let gw_ctrl = free_port();
    let setup = Setup {
        gateway_host: "::1",
        next_hop_host: "::1",
        gw1_port: gw_port + 1,
        // Our SIP trace, to see the next hop answer the BYE we relay.
        log_level: "debug",
        ..Setup::default()
    };
    let next_hop = Sim::answer_on(
        &lab,
        "v6-nexthop",
        "::1",
        setup.next_hop_port,
        Some("nexthop"),
        "require",
        &["--any-payload"],
    );
    let mediation = Mediation::start(&lab, &setup);
    let gw_dir = baresip_dir_on(
        &lab,
        "baresip-gateway",
        "::1",
        gw_port,
        "gateway-bundle.pem",
        "<sip:+15550001@[::1]>;regint=0;mediaenc=srtp-mand;audio_codecs=PCMU",
        &control_config(gw_ctrl),
    );
    let dial = format!(
        "/dial sip:+15551234@[::1]:{};transport=tls",
        mediation.ports.gateway_tls
    );
    let gw = Controlled::start(
        &gw_dir,
        gw_ctrl,
        lab.path("baresip-gateway.log"),
        &["-e", &dial],
    );
    let context = || {
        format!(
            "baresip gateway:\n{}\n\nmediation:\n{}",
            gw.log_text(),
            mediation.log_text()
        )
    };
    assert!(
        gw.wait_for("Call established", Duration::from_secs(10)),
        "call not established\n{}",
        context()
    );
    // A few seconds of audio, then baresip hangs up.
    std::thread::sleep(Duration::from_secs(4));
    let hung_up = gw.command("hangup");
    assert_eq!(hung_up["ok"], true, "{hung_up}\n{}", context());
    // Stop the next hop only once it has answered the BYE we relayed: stopped earlier, it
    // would hang up the call itself and find it gone (481).
    let bye_answered = |log: &str| {
        log.lines().any(|l| {
            l.contains("\"direction\":\"received\"")
                && l.contains("SIP/2.0 200")
                && l.contains(" BYE\\r\\n")
        })
    };
    // And baresip has logged the answer to its BYE.
    let baresip_done = |log: &str| {
        let trace = sip_trace(log);
        let bye = trace.iter().find(|m| m.start.starts_with("BYE "));
        bye.is_some_and(|bye| final_response(&trace, &bye.cseq).is_some())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !(mediation.log_text().contains("media relay stopped")
        && bye_answered(&mediation.log_text())
        && baresip_done(&gw.log_text()))
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let trace = sip_trace(&gw.log_text());
    let next_hop = next_hop.stop();
    let context = format!("{}\n\nnext hop:\n{next_hop:#}", context());

    // baresip's side: an SRTP offer from ::1, an SRTP answer in IPv6, a BYE answered 200.
    let invite = trace
        .iter()
        .find(|m| m.start.starts_with("INVITE "))
        .unwrap_or_else(|| panic!("baresip sent no INVITE\n{context}"));
    let (m_line, crypto) = audio_of(invite);
    assert!(
        m_line.is_some_and(|m| m.contains(" RTP/SAVP ")) && crypto,
        "baresip's offer is not SDES SRTP: {m_line:?}\n{}",
        invite.text
    );
    assert!(
        invite.text.lines().any(|l| l.trim() == "c=IN IP6 ::1"),
        "baresip's offer is not on ::1:\n{}",
        invite.text
    );
    let answer = final_response(&trace, &invite.cseq)
        .unwrap_or_else(|| panic!("no final response to the INVITE\n{context}"));
    assert!(
        answer.start.starts_with("SIP/2.0 200"),
        "INVITE answered `{}`\n{context}",
        answer.start
    );
    let (m_line, crypto) = audio_of(answer);
    assert!(
        m_line.is_some_and(|m| m.contains(" RTP/SAVP ")) && crypto,
        "our answer to baresip is not SDES SRTP: {m_line:?}\n{}",
        answer.text
    );
    assert!(
        answer.text.lines().any(|l| l.trim() == "c=IN IP6 ::1"),
        "our answer to baresip is not `c=IN IP6 ::1`:\n{}",
        answer.text
    );
    let bye = trace
        .iter()
        .find(|m| m.start.starts_with("BYE "))
        .unwrap_or_else(|| panic!("baresip sent no BYE\n{context}"));
    let bye_answer = final_response(&trace, &bye.cseq)
        .unwrap_or_else(|| panic!("no final response to the BYE\n{context}"));
    assert!(
        bye_answer.start.starts_with("SIP/2.0 200"),
        "BYE answered `{}`\n{context}",
        bye_answer.start
    );

    // The next hop's side: one call, SRTP on its wire, baresip's audio received, none lost,
    // ended by the BYE mediation relayed.
    assert_eq!(
        next_hop["summary"]["calls_ok"].as_u64(),
        Some(1),
        "{context}"
    );
    assert_eq!(
        next_hop["summary"]["calls_failed"].as_u64(),
        Some(0),
        "{context}"
    );
    let call = &next_hop["calls"][0];
    assert_eq!(call["media_profile"], "RTP/SAVP", "{context}");
    assert_eq!(call["wire_encrypted"], true, "{context}");
    assert_eq!(call["srtp_auth_failures"].as_u64(), Some(0), "{context}");
    assert_eq!(call["hangup_by"], "peer", "{context}");
    let received = call["packets_received"].as_u64().unwrap_or(0);
    assert!(received > 100, "{received} packets from baresip\n{context}");
    assert_eq!(call["packets_lost"].as_u64(), Some(0), "{context}");

    // Mediation's account: gw1 verified over MTLS, SRTP on both legs, packets both ways.
    let log = mediation.log_text();
    let answered = log
        .lines()
        .find(|l| l.contains("call answered"))
        .unwrap_or_else(|| panic!("no answered call\n{context}"));
    let answered: serde_json::Value = serde_json::from_str(answered).unwrap();
    assert_eq!(answered["fields"]["gateway"], "gw1", "{answered}");
    assert_eq!(
        answered["fields"]["gateway_leg"], "srtp (verified_mtls)",
        "{answered}"
    );
    assert_eq!(
        answered["fields"]["next_hop_leg"], "srtp (next_hop_policy)",
        "{answered}"
    );
    let metrics = http_get(mediation.ports.metrics, "/metrics");
    let v = |s: &str| sample(&metrics, s);
    assert_eq!(
        v("mediation_calls_total{direction=\"inbound\",gateway=\"gw1\",gateway_media=\"srtp\",result=\"answered\"}"),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        v("mediation_gateway_media_decisions_total{gateway=\"gw1\",gateway_media=\"srtp\",reason=\"verified_mtls\"}"),
        1.0,
        "{metrics}"
    );
    for (i, n) in media_packets(mediation.ports.metrics).iter().enumerate() {
        assert!(
            *n > 100.0,
            "SRTP flow {i} (gateway in/out, next_hop in/out): {n}\n{metrics}"
        );
    }
    for leg in ["gateway", "next_hop"] {
        for dir in ["in", "out"] {
            let rtp = v(&format!(
                "mediation_media_packets_total{{direction=\"{dir}\",leg=\"{leg}\",protection=\"rtp\"}}"
            ));
            assert_eq!(rtp, 0.0, "{leg} {dir}: plain RTP relayed\n{metrics}");
        }
    }
}
