//! Running SIPp (Debian `sip-tester`), a SIP stack nobody here wrote, to completion: a
//! scenario from `tests/sipp/` or a built-in one, over TCP or UDP, IPv4 or IPv6, with its call
//! statistics, every message it sent and received, and its errors kept for the assertions.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Lab;

/// What a SIPp run left behind.
pub struct SippRun {
    /// SIPp exited 0.
    pub ok: bool,
    /// `SuccessfulCall(C)` of its statistics.
    pub good: u64,
    /// `FailedCall(C)`.
    pub failed: u64,
    /// Every message SIPp sent and received (`-trace_msg`).
    pub messages: String,
    /// Its output and error log, for failure messages.
    pub output: String,
}

/// A scenario file of `tests/sipp/`.
pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("sipp")
        .join(name)
}

/// Runs SIPp to completion with `args`, over `transport` (`t1` TCP, `u1` UDP) from `local_ip`
/// (`127.0.0.1`, or `::1` for IPv6).
pub fn run(lab: &Lab, name: &str, transport: &str, local_ip: &str, args: &[String]) -> SippRun {
    let stats = lab.path(&format!("{name}.csv"));
    let messages = lab.path(&format!("{name}-messages.log"));
    let errors = lab.path(&format!("{name}-errors.log"));
    let out = Command::new("sipp")
        .args(args)
        .args([
            "-t", transport, "-i", local_ip, "-nostdin", "-timeout", "60s",
        ])
        .args(["-trace_stat", "-stf"])
        .arg(&stats)
        .args(["-trace_msg", "-message_file"])
        .arg(&messages)
        .args(["-trace_err", "-error_file"])
        .arg(&errors)
        .stdin(Stdio::null())
        .output()
        .expect("sipp must be installed (tests/run.sh installs sip-tester)");
    let text = std::fs::read_to_string(&stats).unwrap_or_default();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(';').collect()).collect();
    let field = |name: &str| -> u64 {
        let Some(i) = rows.first().and_then(|h| h.iter().position(|c| *c == name)) else {
            return 0;
        };
        rows.last()
            .and_then(|r| r.get(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let output = format!(
        "{}\n{}\nerrors:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&errors).unwrap_or_default()
    );
    SippRun {
        ok: out.status.success(),
        good: field("SuccessfulCall(C)"),
        failed: field("FailedCall(C)"),
        messages: std::fs::read_to_string(&messages).unwrap_or_default(),
        output,
    }
}
