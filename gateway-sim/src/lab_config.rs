//! The mediation configuration of a lab, written in one place: `gateway-sim demo`, the
//! end-to-end harness (tests/src/lib.rs) and `tests/lab.sh` (through `gateway-sim lab-config`)
//! describe their lab as a [`LabConfig`] and [`render`] it; deploy/compose/mediation.toml is
//! checked against it. The lab PKI's file names (`certs init`, `certs::LabPki`) and the lab's
//! names (mediation.example.test, frontend.example.test) are fixed here.

use std::fmt::Write as _;
use std::str::FromStr;

/// A lab's mediation configuration. Fields left `None` (or empty) are not written, so
/// mediation's defaults apply. [`LabConfig::default`] is a loopback lab: listeners on
/// 127.0.0.1 with ports the kernel picks, no gateway, JSON logs at `info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabConfig {
    /// Where the lab PKI's files are, relative to the configuration file (`"certs/"`; empty:
    /// beside it). Prefixed to `mediation.pem`, `mediation-key.pem`, `ca.pem` and `crl.pem`.
    pub cert_dir: String,
    /// `[next_hop] listen`.
    pub next_hop_listen: String,
    /// `[next_hop] address`: where the next hop (simulator) listens.
    pub next_hop_address: String,
    /// `[next_hop] encryption`.
    pub encryption: String,
    /// `[gateway_listen] tls`.
    pub gateway_tls: Option<String>,
    /// `[gateway_listen] tcp`.
    pub gateway_tcp: Option<String>,
    /// `[gateway_listen] udp`.
    pub gateway_udp: Option<String>,
    /// The `[[gateway]]` tables, in order.
    pub gateways: Vec<LabGateway>,
    /// `[media] bind`: one address is written as a string, several as a list.
    pub media_bind: Vec<String>,
    /// `[media] advertise`, written as `media_bind` is.
    pub media_advertise: Vec<String>,
    /// `[media] ports`: the first and the last.
    pub media_ports: (u16, u16),
    /// `[media] media_timeout_secs`.
    pub media_timeout_secs: Option<u64>,
    /// `[media] threads`.
    pub media_threads: Option<usize>,
    /// `[sip] answer_timeout_secs`.
    pub answer_timeout_secs: Option<u64>,
    /// `[sip] drain_timeout_secs`.
    pub drain_timeout_secs: Option<u64>,
    /// `[sip] max_calls`.
    pub max_calls: Option<usize>,
    /// `[sip] max_pending_per_connection`.
    pub max_pending_per_connection: Option<usize>,
    /// More `[sip]` lines (`key = value`, one per line).
    pub sip_extra: String,
    /// `[sip] udp_t1_ms`.
    pub udp_t1_ms: Option<u64>,
    /// `[metrics] listen`.
    pub metrics_listen: String,
    /// `[metrics] allow_plain_http`.
    pub allow_plain_http: Option<bool>,
    /// `[log] format`.
    pub log_format: String,
    /// `[log] level`.
    pub log_level: String,
    /// Written after everything else: `[[route]]` or more `[[gateway]]` tables, a comment.
    pub extra: String,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            cert_dir: String::new(),
            next_hop_listen: "127.0.0.1:0".into(),
            next_hop_address: "127.0.0.1:5061".into(),
            encryption: "required".into(),
            gateway_tls: Some("127.0.0.1:0".into()),
            gateway_tcp: None,
            gateway_udp: None,
            gateways: Vec::new(),
            media_bind: vec!["127.0.0.1".into()],
            media_advertise: vec!["127.0.0.1".into()],
            media_ports: (40000, 40999),
            media_timeout_secs: None,
            media_threads: None,
            answer_timeout_secs: None,
            drain_timeout_secs: None,
            max_calls: None,
            max_pending_per_connection: None,
            sip_extra: String::new(),
            udp_t1_ms: None,
            metrics_listen: "127.0.0.1:0".into(),
            allow_plain_http: None,
            log_format: "json".into(),
            log_level: "info".into(),
            extra: String::new(),
        }
    }
}

/// One `[[gateway]]` table of a lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabGateway {
    /// `name`.
    pub name: String,
    /// `address`: where the gateway (simulator) listens.
    pub address: String,
    /// `transport`: `tls`, `tcp` or `udp`.
    pub transport: String,
    /// `identity` (TLS gateways).
    pub identity: Option<String>,
    /// `srtp`.
    pub srtp: Option<String>,
    /// `options_interval_secs`.
    pub options_interval_secs: Option<u64>,
    /// More lines of the table (`key = value`).
    pub extra: String,
}

impl LabGateway {
    /// An MTLS gateway whose certificate names `<name>.example.test`.
    pub fn tls(name: &str, address: impl Into<String>) -> Self {
        LabGateway {
            identity: Some(format!("{name}.example.test")),
            ..LabGateway::new(name, address, "tls")
        }
    }

    /// A plain-TCP gateway.
    pub fn tcp(name: &str, address: impl Into<String>) -> Self {
        LabGateway::new(name, address, "tcp")
    }

    fn new(name: &str, address: impl Into<String>, transport: &str) -> Self {
        LabGateway {
            name: name.into(),
            address: address.into(),
            transport: transport.into(),
            identity: None,
            srtp: None,
            options_interval_secs: None,
            extra: String::new(),
        }
    }

    /// With `srtp = "<mode>"`.
    pub fn srtp(mut self, mode: &str) -> Self {
        self.srtp = Some(mode.into());
        self
    }

    /// With `options_interval_secs = <secs>`.
    pub fn options_interval(mut self, secs: u64) -> Self {
        self.options_interval_secs = Some(secs);
        self
    }
}

/// A gateway from the command line: `key=value` pairs separated by commas, `name`, `address`
/// and `transport` required (`name=gw1,address=127.0.0.1:5067,transport=tls,identity=
/// gw1.example.test,srtp=optional,options_interval_secs=0`); other keys become table lines.
impl FromStr for LabGateway {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut gateway = LabGateway::new("", "", "");
        for pair in s.split(',').filter(|p| !p.is_empty()) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not key=value"))?;
            match key.trim() {
                "name" => gateway.name = value.into(),
                "address" => gateway.address = value.into(),
                "transport" => gateway.transport = value.into(),
                "identity" => gateway.identity = Some(value.into()),
                "srtp" => gateway.srtp = Some(value.into()),
                "options_interval_secs" => {
                    gateway.options_interval_secs = Some(
                        value
                            .parse()
                            .map_err(|e| format!("options_interval_secs `{value}`: {e}"))?,
                    )
                }
                other => {
                    let _ = writeln!(gateway.extra, "{other} = {}", toml_value(value));
                }
            }
        }
        for (key, value) in [
            ("name", &gateway.name),
            ("address", &gateway.address),
            ("transport", &gateway.transport),
        ] {
            if value.is_empty() {
                return Err(format!("a gateway needs {key}=..."));
            }
        }
        Ok(gateway)
    }
}

/// `value` as written on a command line: a number or boolean as it is, anything else as a
/// string.
fn toml_value(value: &str) -> String {
    if value == "true" || value == "false" || value.parse::<i64>().is_ok() {
        value.to_string()
    } else {
        quote(value)
    }
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// One address as a string, several as a list.
fn addresses(list: &[String]) -> String {
    match list {
        [one] => quote(one),
        many => format!(
            "[{}]",
            many.iter().map(|a| quote(a)).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// `text` with a line end, unless it is empty.
fn lines_of(text: &str) -> String {
    match text {
        "" => String::new(),
        t if t.ends_with('\n') => t.to_string(),
        t => format!("{t}\n"),
    }
}

/// `name = value` when there is a value. (`write!` to a String cannot fail.)
fn key(out: &mut String, name: &str, value: Option<String>) {
    if let Some(value) = value {
        let _ = writeln!(out, "{name} = {value}");
    }
}

/// The configuration as TOML: a table per section, in the order of deploy/mediation.toml.
pub fn render(c: &LabConfig) -> String {
    let mut out = String::new();
    let d = &c.cert_dir;
    let _ = write!(
        out,
        "[node]\nname = \"mediation.example.test\"\n\n[tls]\ncertificate = {}\nprivate_key = {}\n\
         trusted_cas = {}\ncrls = [{}]\n\n[next_hop]\nlisten = {}\naddress = {}\n\
         identity = \"frontend.example.test\"\nencryption = {}\n",
        quote(&format!("{d}mediation.pem")),
        quote(&format!("{d}mediation-key.pem")),
        quote(&format!("{d}ca.pem")),
        quote(&format!("{d}crl.pem")),
        quote(&c.next_hop_listen),
        quote(&c.next_hop_address),
        quote(&c.encryption),
    );
    let listeners = [
        ("tls", &c.gateway_tls),
        ("tcp", &c.gateway_tcp),
        ("udp", &c.gateway_udp),
    ];
    if listeners.iter().any(|(_, l)| l.is_some()) {
        out.push_str("\n[gateway_listen]\n");
        for (name, listen) in listeners {
            key(&mut out, name, listen.as_deref().map(quote));
        }
    }
    for g in &c.gateways {
        out.push_str("\n[[gateway]]\n");
        key(&mut out, "name", Some(quote(&g.name)));
        key(&mut out, "address", Some(quote(&g.address)));
        key(&mut out, "transport", Some(quote(&g.transport)));
        key(&mut out, "identity", g.identity.as_deref().map(quote));
        key(&mut out, "srtp", g.srtp.as_deref().map(quote));
        let options = g.options_interval_secs.map(|s| s.to_string());
        key(&mut out, "options_interval_secs", options);
        out.push_str(&lines_of(&g.extra));
    }
    out.push_str("\n[media]\n");
    key(&mut out, "bind", Some(addresses(&c.media_bind)));
    key(&mut out, "advertise", Some(addresses(&c.media_advertise)));
    let (first, last) = c.media_ports;
    key(&mut out, "ports", Some(format!("\"{first}-{last}\"")));
    let timeout = c.media_timeout_secs.map(|s| s.to_string());
    key(&mut out, "media_timeout_secs", timeout);
    key(&mut out, "threads", c.media_threads.map(|n| n.to_string()));
    let sip = [
        (
            "answer_timeout_secs",
            c.answer_timeout_secs.map(|s| s.to_string()),
        ),
        (
            "drain_timeout_secs",
            c.drain_timeout_secs.map(|s| s.to_string()),
        ),
        ("max_calls", c.max_calls.map(|n| n.to_string())),
        (
            "max_pending_per_connection",
            c.max_pending_per_connection.map(|n| n.to_string()),
        ),
    ];
    if sip.iter().any(|(_, v)| v.is_some()) || !c.sip_extra.is_empty() || c.udp_t1_ms.is_some() {
        out.push_str("\n[sip]\n");
        for (name, value) in sip {
            key(&mut out, name, value);
        }
        out.push_str(&lines_of(&c.sip_extra));
        key(&mut out, "udp_t1_ms", c.udp_t1_ms.map(|ms| ms.to_string()));
    }
    out.push_str("\n[metrics]\n");
    key(&mut out, "listen", Some(quote(&c.metrics_listen)));
    let plain = c.allow_plain_http.map(|b| b.to_string());
    key(&mut out, "allow_plain_http", plain);
    out.push_str("\n[log]\n");
    key(&mut out, "format", Some(quote(&c.log_format)));
    key(&mut out, "level", Some(quote(&c.log_level)));
    if !c.extra.is_empty() {
        out.push('\n');
        out.push_str(&lines_of(&c.extra));
    }
    out
}

/// Options of `gateway-sim lab-config`: the values of a [`LabConfig`]. A listener, timeout or
/// limit not given is not written (mediation's default applies).
#[derive(Debug, Clone, clap::Args)]
pub struct LabConfigArgs {
    /// Directory of the lab PKI's files, relative to the configuration (`certs/`).
    #[arg(long, default_value = "", value_name = "DIR")]
    cert_dir: String,
    /// `[next_hop] listen`.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    next_hop_listen: String,
    /// `[next_hop] address`: where the next hop listens.
    #[arg(long, default_value = "127.0.0.1:5061", value_name = "ADDR")]
    next_hop: String,
    /// `[next_hop] encryption`.
    #[arg(long, default_value = "required", value_name = "LEVEL")]
    encryption: String,
    /// `[gateway_listen] tls`.
    #[arg(long, value_name = "ADDR")]
    gateway_tls: Option<String>,
    /// `[gateway_listen] tcp`.
    #[arg(long, value_name = "ADDR")]
    gateway_tcp: Option<String>,
    /// `[gateway_listen] udp`.
    #[arg(long, value_name = "ADDR")]
    gateway_udp: Option<String>,
    /// A `[[gateway]]` table, as `name=gw1,address=HOST:PORT,transport=tls,identity=...,
    /// srtp=...,options_interval_secs=...` (other keys are written as they are); repeat for
    /// more gateways.
    #[arg(long = "gateway", value_name = "KEY=VALUE,...")]
    gateways: Vec<LabGateway>,
    /// `[media] bind`; repeat for more addresses.
    #[arg(long, default_value = "127.0.0.1", value_name = "IP")]
    bind: Vec<String>,
    /// `[media] advertise`; repeat for more addresses (default: as `--bind`).
    #[arg(long, value_name = "IP")]
    advertise: Vec<String>,
    /// `[media] ports`.
    #[arg(long, default_value = "40000-40999", value_name = "FIRST-LAST", value_parser = port_range)]
    media_ports: (u16, u16),
    /// `[media] media_timeout_secs`.
    #[arg(long, value_name = "SECS")]
    media_timeout: Option<u64>,
    /// `[media] threads`.
    #[arg(long, value_name = "N")]
    media_threads: Option<usize>,
    /// `[sip] answer_timeout_secs`.
    #[arg(long, value_name = "SECS")]
    answer_timeout: Option<u64>,
    /// `[sip] drain_timeout_secs`.
    #[arg(long, value_name = "SECS")]
    drain_timeout: Option<u64>,
    /// `[sip] max_calls`.
    #[arg(long, value_name = "N")]
    max_calls: Option<usize>,
    /// `[sip] max_pending_per_connection`.
    #[arg(long, value_name = "N")]
    max_pending_per_connection: Option<usize>,
    /// `[sip] udp_t1_ms`.
    #[arg(long, value_name = "MS")]
    udp_t1_ms: Option<u64>,
    /// A further `[sip]` line, TOML as it is (`pass_headers = ["X-*"]`); repeatable.
    #[arg(long = "sip", value_name = "LINE")]
    sip_lines: Vec<String>,
    /// `[metrics] listen`.
    #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR")]
    metrics: String,
    /// `[metrics] allow_plain_http = true`.
    #[arg(long)]
    allow_plain_http: bool,
    /// `[log] format`.
    #[arg(long, default_value = "json", value_name = "FORMAT")]
    log_format: String,
    /// `[log] level`.
    #[arg(long, default_value = "info", value_name = "LEVEL")]
    log_level: String,
    /// TOML written after everything else (`[[route]]` tables...); repeatable.
    #[arg(long, value_name = "TOML")]
    append: Vec<String>,
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    let (first, last) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}` is not FIRST-LAST"))?;
    let port = |p: &str| p.parse::<u16>().map_err(|e| format!("port `{p}`: {e}"));
    Ok((port(first)?, port(last)?))
}

impl From<LabConfigArgs> for LabConfig {
    fn from(a: LabConfigArgs) -> Self {
        let advertise = if a.advertise.is_empty() {
            a.bind.clone()
        } else {
            a.advertise
        };
        let joined = |lines: Vec<String>| {
            lines
                .iter()
                .map(|l| lines_of(l))
                .collect::<Vec<_>>()
                .concat()
        };
        LabConfig {
            cert_dir: a.cert_dir,
            next_hop_listen: a.next_hop_listen,
            next_hop_address: a.next_hop,
            encryption: a.encryption,
            gateway_tls: a.gateway_tls,
            gateway_tcp: a.gateway_tcp,
            gateway_udp: a.gateway_udp,
            gateways: a.gateways,
            media_bind: a.bind,
            media_advertise: advertise,
            media_ports: a.media_ports,
            media_timeout_secs: a.media_timeout,
            media_threads: a.media_threads,
            answer_timeout_secs: a.answer_timeout,
            drain_timeout_secs: a.drain_timeout,
            max_calls: a.max_calls,
            max_pending_per_connection: a.max_pending_per_connection,
            sip_extra: joined(a.sip_lines),
            udp_t1_ms: a.udp_t1_ms,
            metrics_listen: a.metrics,
            allow_plain_http: a.allow_plain_http.then_some(true),
            log_format: a.log_format,
            log_level: a.log_level,
            extra: joined(a.append),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// deploy/compose.yaml's lab, as deploy/compose/mediation.toml describes it.
    fn compose() -> LabConfig {
        LabConfig {
            cert_dir: "certs/".into(),
            next_hop_listen: "0.0.0.0:5070".into(),
            next_hop_address: "172.28.0.20:5061".into(),
            gateway_tls: Some("0.0.0.0:5067".into()),
            gateway_tcp: Some("0.0.0.0:5068".into()),
            gateways: vec![
                LabGateway::tls("gw1", "172.28.0.31:5067")
                    .srtp("optional")
                    .options_interval(5),
                LabGateway::tcp("gw2", "172.28.0.32:5068")
                    .srtp("optional")
                    .options_interval(5),
            ],
            media_bind: vec!["0.0.0.0".into()],
            media_advertise: vec!["172.28.0.10".into()],
            media_ports: (40000, 40019),
            media_timeout_secs: Some(5),
            drain_timeout_secs: Some(5),
            metrics_listen: "0.0.0.0:9464".into(),
            allow_plain_http: Some(true),
            ..LabConfig::default()
        }
    }

    fn parse(text: &str) -> toml::Table {
        text.parse()
            .unwrap_or_else(|e| panic!("not TOML: {e}\n{text}"))
    }

    #[test]
    fn the_compose_file_is_the_compose_lab() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/compose/mediation.toml");
        let written = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            parse(&written),
            parse(&render(&compose())),
            "{} no longer says what the lab renderer does",
            file.display()
        );
    }

    #[test]
    fn every_lab_loads() {
        let mut everything = compose();
        everything.gateway_udp = Some("127.0.0.1:5069".into());
        everything.gateways.push(LabGateway {
            extra: "srtp_offer_style = \"avp-crypto\"".into(),
            ..LabGateway::new("gw3", "127.0.0.1:5071", "udp")
        });
        everything.media_bind = vec!["127.0.0.1".into(), "::1".into()];
        everything.media_advertise = everything.media_bind.clone();
        everything.media_threads = Some(2);
        everything.answer_timeout_secs = Some(10);
        everything.max_calls = Some(4);
        everything.max_pending_per_connection = Some(4);
        everything.sip_extra = "pass_headers = [\"X-*\"]\nmax_connections = 4".into();
        everything.udp_t1_ms = Some(100);
        everything.extra = "[[route]]\npattern = \"^\\\\+1\"\ngateways = [\"gw1\", \"gw2\"]".into();
        let smallest = LabConfig {
            gateways: vec![LabGateway::tcp("gw1", "127.0.0.1:5068")],
            ..LabConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let pki = certs::LabPki::generate().unwrap();
        pki.write_to(dir.path()).unwrap();
        pki.write_to(&dir.path().join("certs")).unwrap();
        for lab in [smallest, compose(), everything] {
            let text = render(&lab);
            if let Err(problems) = mediation::config::load_str(&text, dir.path()) {
                panic!("{problems:?}\n{text}");
            }
        }
    }

    #[test]
    fn left_out_is_not_written() {
        let text = render(&LabConfig::default());
        for absent in [
            "[sip]",
            "[[gateway]]",
            "tcp =",
            "threads",
            "allow_plain_http",
        ] {
            assert!(!text.contains(absent), "{absent}:\n{text}");
        }
        let table = parse(&text);
        assert_eq!(table["media"]["bind"].as_str(), Some("127.0.0.1"));
        assert_eq!(table["tls"]["crls"][0].as_str(), Some("crl.pem"));
    }

    #[test]
    fn gateways_from_the_command_line() {
        let g: LabGateway = "name=gw1,address=127.0.0.1:1,transport=tls,identity=gw1.example.test,\
                             options_interval_secs=0,srtp_offer_style=avp-crypto,max_calls=3"
            .parse()
            .unwrap();
        assert_eq!(
            g,
            LabGateway {
                extra: "srtp_offer_style = \"avp-crypto\"\nmax_calls = 3\n".into(),
                ..LabGateway::tls("gw1", "127.0.0.1:1").options_interval(0)
            }
        );
        assert!("name=gw1,transport=tls".parse::<LabGateway>().is_err());
        assert!("name=gw1,address".parse::<LabGateway>().is_err());
    }
}
