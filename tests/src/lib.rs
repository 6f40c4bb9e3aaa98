//! Helpers for the end-to-end tests: the built binaries, a lab PKI on disk, free loopback
//! ports, and a `mediation` process started from a configuration `gateway_sim::lab_config`
//! writes and stopped when the test ends. Everything runs as real processes over real sockets.
#![forbid(unsafe_code)]

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gateway_sim::lab_config::{LabConfig, LabGateway};

pub mod sipp;

/// A binary of this workspace, built by `cargo test --workspace` (or `cargo build`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` (tests/run.sh does)",
        path.display()
    );
    path
}

/// A TCP port nobody listens on right now (and its UDP twin is free too), never one this
/// process was given before: the kernel may hand out a port it just released again, and two
/// listeners of one test then collide.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
            if !given.contains(&port) {
                given.push(port);
                return port;
            }
        }
    }
}

/// A lab PKI in a temporary directory.
#[derive(Debug)]
pub struct Lab {
    /// The directory.
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// Generates the lab set.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        certs::LabPki::generate()
            .unwrap()
            .write_to(dir.path())
            .unwrap();
        Lab { dir }
    }

    /// A file in it.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A path as a string for command lines.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

/// Ports of one mediation instance.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Next-hop MTLS listener.
    pub next_hop: u16,
    /// Gateway MTLS listener.
    pub gateway_tls: u16,
    /// Gateway TCP listener.
    pub gateway_tcp: u16,
    /// Metrics.
    pub metrics: u16,
    /// First media port.
    pub media: u16,
}

impl Ports {
    /// Fresh free ports.
    pub fn free() -> Self {
        let media = loop {
            let p = free_port();
            if p < 60000 {
                break p & !1;
            }
        };
        Ports {
            next_hop: free_port(),
            gateway_tls: free_port(),
            gateway_tcp: free_port(),
            metrics: free_port(),
            media: media.max(20000),
        }
    }
}

/// What varies between test configurations.
#[derive(Debug, Clone)]
pub struct Setup {
    /// `[next_hop] address` port where the next-hop simulator listens.
    pub next_hop_port: u16,
    /// `[next_hop] encryption`.
    pub encryption: &'static str,
    /// The TLS gateway's port (where calls toward gw1 go) and its srtp mode.
    pub gw1_port: u16,
    /// gw1's `srtp`.
    pub gw1_srtp: &'static str,
    /// The TCP gateway's port and srtp mode.
    pub gw2_port: u16,
    /// gw2's `srtp`.
    pub gw2_srtp: &'static str,
    /// Media ports in the range.
    pub media_ports: u16,
    /// `[sip] drain_timeout_secs`.
    pub drain_timeout_secs: u64,
    /// More `[sip]` lines (`key = value`).
    pub sip_extra: String,
    /// `[media] media_timeout_secs`.
    pub media_timeout_secs: u64,
    /// `options_interval_secs` of both gateways.
    pub options_interval_secs: u64,
    /// Appended to the configuration (e.g. `[[route]]` tables).
    pub extra: String,
    /// `[gateway_listen] udp` port on 127.0.0.1 (`None`: no UDP socket).
    pub gateway_udp: Option<u16>,
    /// `[sip] udp_t1_ms`.
    pub udp_t1_ms: u64,
    /// More lines of gw1's `[[gateway]]` table (`srtp_offer_style = ...`).
    pub gw1_extra: String,
    /// `[log] level`.
    pub log_level: &'static str,
    /// `[media] threads` (0: one per core).
    pub media_threads: usize,
    /// The loopback address of the gateway side: our gateway listeners and both gateways'
    /// addresses (`"::1"` for an IPv6 gateway side).
    pub gateway_host: &'static str,
    /// The loopback address of the next-hop side: our next-hop listener and the next hop.
    pub next_hop_host: &'static str,
}

/// `host:port` with an IPv6 host in brackets.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            next_hop_port: free_port(),
            encryption: "required",
            gw1_port: free_port(),
            gw1_srtp: "optional",
            gw2_port: free_port(),
            gw2_srtp: "optional",
            media_ports: 400,
            drain_timeout_secs: 2,
            sip_extra: String::new(),
            media_timeout_secs: 30,
            options_interval_secs: 30,
            extra: String::new(),
            gateway_udp: None,
            udp_t1_ms: 500,
            gw1_extra: String::new(),
            log_level: "info",
            media_threads: 0,
            gateway_host: "127.0.0.1",
            next_hop_host: "127.0.0.1",
        }
    }
}

/// The configuration of one mediation instance for `setup`, listening on `ports`.
fn config_text(setup: &Setup, ports: &Ports) -> String {
    let gateway = |port| host_port(setup.gateway_host, port);
    let media = if setup.gateway_host.contains(':') || setup.next_hop_host.contains(':') {
        vec!["127.0.0.1".to_string(), "::1".to_string()]
    } else {
        vec!["127.0.0.1".to_string()]
    };
    gateway_sim::lab_config::render(&LabConfig {
        next_hop_listen: host_port(setup.next_hop_host, ports.next_hop),
        next_hop_address: host_port(setup.next_hop_host, setup.next_hop_port),
        encryption: setup.encryption.into(),
        gateway_tls: Some(gateway(ports.gateway_tls)),
        gateway_tcp: Some(gateway(ports.gateway_tcp)),
        gateway_udp: setup.gateway_udp.map(|p| format!("127.0.0.1:{p}")),
        gateways: vec![
            LabGateway {
                extra: setup.gw1_extra.clone(),
                ..LabGateway::tls("gw1", gateway(setup.gw1_port))
                    .srtp(setup.gw1_srtp)
                    .options_interval(setup.options_interval_secs)
            },
            LabGateway::tcp("gw2", gateway(setup.gw2_port))
                .srtp(setup.gw2_srtp)
                .options_interval(setup.options_interval_secs),
        ],
        media_bind: media.clone(),
        media_advertise: media,
        media_ports: (ports.media, ports.media + setup.media_ports - 1),
        media_timeout_secs: Some(setup.media_timeout_secs),
        media_threads: Some(setup.media_threads),
        answer_timeout_secs: Some(10),
        drain_timeout_secs: Some(setup.drain_timeout_secs),
        sip_extra: setup.sip_extra.clone(),
        udp_t1_ms: Some(setup.udp_t1_ms),
        metrics_listen: format!("127.0.0.1:{}", ports.metrics),
        log_level: setup.log_level.into(),
        extra: setup.extra.clone(),
        ..LabConfig::default()
    })
}

/// A running `mediation run` process, killed on drop; its log is kept in a file.
pub struct Mediation {
    child: Child,
    /// Its ports.
    pub ports: Ports,
    /// Its log file (JSON lines).
    pub log: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
}

impl Mediation {
    /// Writes a configuration for `setup` and starts the service; returns once it accepts
    /// connections.
    pub fn start(lab: &Lab, setup: &Setup) -> Self {
        let ports = Ports::free();
        let config = lab.path(&format!("mediation-{}.toml", ports.next_hop));
        let text = config_text(setup, &ports);
        std::fs::write(&config, text).unwrap();
        let log = lab.path(&format!("mediation-{}.log", ports.next_hop));
        let child = Command::new(bin("mediation"))
            .arg("run")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start mediation");
        let m = Mediation {
            child,
            ports,
            log,
            config,
        };
        m.wait_listening(setup.gateway_host, ports.gateway_tcp);
        m
    }

    fn wait_listening(&self, host: &str, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(host_port(host, port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "mediation did not listen on {port}; log:\n{}",
            self.log_text()
        );
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Address of a listener.
    pub fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }
}

impl Mediation {
    /// Sends a signal by name (`HUP` reloads certificates and CRLs).
    pub fn signal(&self, name: &str) {
        assert!(signal(&self.child, name), "kill -{name} failed");
    }

    /// Sends SIGTERM and waits (at most `limit`) for the process to exit; its exit code.
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        sigterm(&self.child);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Mediation {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `gateway-sim` process.
pub struct Sim {
    child: Child,
    /// Where its report goes.
    pub report: PathBuf,
    /// Its stdout+stderr.
    pub log: PathBuf,
}

impl Sim {
    /// Starts `gateway-sim` with `args` plus `--report`.
    pub fn spawn(lab: &Lab, name: &str, args: &[String]) -> Sim {
        let report = lab.path(&format!("{name}.json"));
        let log = lab.path(&format!("{name}.log"));
        let child = Command::new(bin("gateway-sim"))
            .args(args)
            .arg("--report")
            .arg(&report)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(lab.path(&format!("{name}.err"))).unwrap())
            .spawn()
            .expect("start gateway-sim");
        Sim { child, report, log }
    }

    /// An answering simulator on `port`: TLS with `cert` (and `ca.pem`) or TCP when `None`.
    pub fn answer(lab: &Lab, name: &str, port: u16, tls_cert: Option<&str>, srtp: &str) -> Sim {
        Sim::answer_with(lab, name, port, tls_cert, srtp, &[])
    }

    /// [`Sim::answer`] with further arguments (`--report-keys`, `--rekey`…).
    pub fn answer_with(
        lab: &Lab,
        name: &str,
        port: u16,
        tls_cert: Option<&str>,
        srtp: &str,
        extra: &[&str],
    ) -> Sim {
        Sim::answer_on(lab, name, "127.0.0.1", port, tls_cert, srtp, extra)
    }

    /// [`Sim::answer_with`] listening on `host` (`"::1"`: IPv6), its media on that address too.
    pub fn answer_on(
        lab: &Lab,
        name: &str,
        host: &str,
        port: u16,
        tls_cert: Option<&str>,
        srtp: &str,
        extra: &[&str],
    ) -> Sim {
        let mut args: Vec<String> = vec![
            "answer".into(),
            "--listen".into(),
            host_port(host, port),
            "--media-ip".into(),
            host.into(),
            "--srtp".into(),
            srtp.into(),
        ];
        if let Some(cert) = tls_cert {
            args.extend([
                "--tls".into(),
                "--cert".into(),
                lab.arg(&format!("{cert}.pem")),
                "--key".into(),
                lab.arg(&format!("{cert}-key.pem")),
                "--ca".into(),
                lab.arg("ca.pem"),
            ]);
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let sim = Sim::spawn(lab, name, &args);
        wait_port_on(host, port);
        sim
    }

    /// Waits for the process to exit (at most `limit`) and returns (success, report JSON).
    pub fn finish(mut self, limit: Duration) -> (bool, serde_json::Value) {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "gateway-sim did not finish in {limit:?}; output:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        (status.success(), self.read_report())
    }

    /// Stops a simulator (answerers run until stopped) and reads its report.
    pub fn stop(mut self) -> serde_json::Value {
        sigterm(&self.child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.read_report()
    }

    /// Sends a signal (`STOP`, `CONT`, ...) to the simulator: `STOP` freezes it with its
    /// connections open, as a peer that lost power or network would look.
    pub fn signal(&self, name: &str) {
        assert!(signal(&self.child, name), "kill -{name} failed");
    }

    fn read_report(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(&self.report).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "gateway-sim report {} unreadable ({e}): {text}\noutput:\n{}",
                self.report.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        })
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a signal by name through the `kill` command (no `unsafe` here); true when sent.
fn signal(child: &Child, name: &str) -> bool {
    Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .is_ok_and(|s| s.success())
}

/// Asks a process to stop with SIGTERM.
fn sigterm(child: &Child) {
    signal(child, "TERM");
}

/// Waits until something listens on a loopback TCP port.
pub fn wait_port(port: u16) {
    wait_port_on("127.0.0.1", port)
}

/// Waits until something listens on `host`'s TCP `port`.
pub fn wait_port_on(host: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(host_port(host, port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {}", host_port(host, port));
}

/// A simulator placing calls (`gateway-sim call`) through the mediation server.
#[derive(Debug, Clone)]
pub struct Caller<'a> {
    /// The lab.
    pub lab: &'a Lab,
    /// Mediation port to call.
    pub port: u16,
    /// `tcp` or `tls`.
    pub transport: &'a str,
    /// Certificate stem (`gateway`, `nexthop`, `gateway-expired`…), TLS only; `None` withholds one.
    pub cert: Option<&'a str>,
    /// `--srtp` mode.
    pub srtp: &'a str,
    /// Request-URI.
    pub to: &'a str,
    /// Seconds of media per call.
    pub duration: u32,
    /// Further arguments (`--calls`, `--rate`…).
    pub extra: Vec<String>,
}

impl Caller<'_> {
    /// Runs the calls to completion; returns (exit success, report).
    pub fn run(&self, name: &str) -> (bool, serde_json::Value) {
        self.run_on("127.0.0.1", name)
    }

    /// [`Caller::run`] from and to `host` (`"::1"`: IPv6 signalling, media on that address).
    pub fn run_on(&self, host: &str, name: &str) -> (bool, serde_json::Value) {
        let mut args: Vec<String> = vec![
            "call".into(),
            "--target".into(),
            host_port(host, self.port),
            "--media-ip".into(),
            host.into(),
            "--to".into(),
            self.to.into(),
            "--transport".into(),
            self.transport.into(),
            "--srtp".into(),
            self.srtp.into(),
            "--duration".into(),
            self.duration.to_string(),
        ];
        if self.transport == "tls" {
            args.extend([
                "--ca".into(),
                self.lab.arg("ca.pem"),
                "--server-name".into(),
                "mediation.example.test".into(),
            ]);
            if let Some(cert) = self.cert {
                args.extend([
                    "--cert".into(),
                    self.lab.arg(&format!("{cert}.pem")),
                    "--key".into(),
                    self.lab.arg(&format!("{cert}-key.pem")),
                ]);
            }
        }
        args.extend(self.extra.iter().cloned());
        let limit = Duration::from_secs(u64::from(self.duration) + 60);
        Sim::spawn(self.lab, name, &args).finish(limit)
    }
}

/// `GET path` on a loopback port; the body.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(text)
}

/// The value of one sample (`name{labels}`) in a Prometheus text exposition, 0 when absent.
pub fn sample(metrics: &str, name_and_labels: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            (k == name_and_labels).then(|| v.parse().ok())?
        })
        .unwrap_or(0.0)
}
