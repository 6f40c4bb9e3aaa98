//! Reads `mediation.toml`, checks it, and reports every problem at once with its field, its line
//! and what was expected. Contradictions (SRTP required over plain TCP, an empty port range, a
//! certificate file that is not there) are refused here, before anything starts.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use super::locate::{Locator, Seg};
use super::model::{Config, EncryptionLevel, GatewayTransport, SrtpMode};

/// Most media threads `[media] threads` may ask for (far beyond any core count a relay box has).
const MAX_MEDIA_THREADS: usize = 1024;

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field, e.g. `gateway[0].srtp`.
    pub field: String,
    /// 1-based line in the file, where the field (or its table) is written.
    pub line: Option<usize>,
    /// What is wrong and what was expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file was read and is wrong in these ways.
    #[error("{} has {} problem(s):\n{}", file.display(), problems.len(), list(problems))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl ConfigError {
    /// The problems, if the file was read.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            ConfigError::Read { .. } => &[],
        }
    }
}

/// Loads and validates a configuration file. Relative paths in it are resolved against the
/// file's own directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    load_str(&src, base).map_err(|problems| ConfigError::Invalid {
        file: path.to_path_buf(),
        problems,
    })
}

/// Parses and validates configuration text; relative paths resolve against `base`.
pub fn load_str(src: &str, base: &Path) -> Result<Config, Vec<Problem>> {
    let locator = Locator::new(src);
    let mut config: Config = toml::from_str(src).map_err(|e| {
        let offset = e.span().map(|s| s.start);
        vec![Problem {
            field: offset
                .and_then(|o| locator.path_at(o))
                .unwrap_or_else(|| "(file)".into()),
            line: offset.map(|o| locator.line_of(o)),
            message: e.message().trim().to_string(),
        }]
    })?;
    resolve_paths(&mut config, base);
    let problems = Checker::new(&locator).check(&config);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

fn resolve_paths(config: &mut Config, base: &Path) {
    let tls = &mut config.tls;
    for p in [
        &mut tls.certificate,
        &mut tls.private_key,
        &mut tls.trusted_cas,
    ]
    .into_iter()
    .chain(tls.crls.iter_mut())
    .chain(config.metrics.tls.as_mut().map(|t| &mut t.client_ca))
    {
        if p.is_relative() {
            *p = base.join(&*p);
        }
    }
}

/// Splits `host:port` (or `[v6]:port`) into its parts.
pub fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0 && !host.contains(char::is_whitespace)).then_some((host, port))
}

struct Checker<'a, 's> {
    locator: &'a Locator<'s>,
    problems: Vec<Problem>,
}

impl<'a, 's> Checker<'a, 's> {
    fn new(locator: &'a Locator<'s>) -> Self {
        Self {
            locator,
            problems: Vec::new(),
        }
    }

    fn problem(&mut self, path: &[Seg], message: impl Into<String>) {
        let field = path
            .iter()
            .map(|s| match s {
                Seg::Key(k) => format!(".{k}"),
                Seg::Index(i) => format!("[{i}]"),
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_string();
        self.problems.push(Problem {
            field,
            line: self.locator.line_of_path(path),
            message: message.into(),
        });
    }

    /// An `srtp_suites` list under `table` (`[media]` or a `[[gateway]]`): no suite twice, and
    /// only FIPS-approved ones when `fips`.
    fn check_suites(&mut self, table: &[Seg], suites: &[crate::srtp::SrtpSuite], fips: bool) {
        let at = |i| {
            let mut path = table.to_vec();
            path.extend([Seg::Key("srtp_suites"), Seg::Index(i)]);
            path
        };
        let mut seen = HashSet::new();
        for (i, s) in suites.iter().enumerate() {
            if !seen.insert(*s) {
                self.problem(&at(i), format!("{s} is listed twice"));
            }
            if fips && !fips_approved_srtp(*s) {
                self.problem(
                    &at(i),
                    format!("{s} is not FIPS 140 approved: tls.fips = true allows only AES-CM and AES-GCM SRTP suites"),
                );
            }
        }
    }

    fn check(mut self, c: &Config) -> Vec<Problem> {
        use Seg::{Index, Key};

        if c.node.name.trim().is_empty() {
            self.problem(
                &[Key("node"), Key("name")],
                "expected this server's SIP host name",
            );
        }

        // [tls]: every file must be there and readable.
        let tls = &c.tls;
        for (key, path) in [
            ("certificate", &tls.certificate),
            ("private_key", &tls.private_key),
            ("trusted_cas", &tls.trusted_cas),
        ] {
            self.file(&[Key("tls"), Key(key)], path);
        }
        for (i, path) in tls.crls.iter().enumerate() {
            self.file(&[Key("tls"), Key("crls"), Index(i)], path);
        }
        if let Some(m) = &c.metrics.tls {
            self.file(
                &[Key("metrics"), Key("tls"), Key("client_ca")],
                &m.client_ca,
            );
        }
        if !(1..=120).contains(&tls.handshake_timeout_secs) {
            self.problem(
                &[Key("tls"), Key("handshake_timeout_secs")],
                "expected between 1 and 120 seconds",
            );
        }

        if !(90..=86_400).contains(&c.sip.session_expires_secs) {
            self.problem(
                &[Key("sip"), Key("session_expires_secs")],
                "expected between 90 (RFC 4028's minimum) and 86400 seconds",
            );
        }
        for (field, value) in [
            ("max_connections", c.sip.max_connections),
            (
                "max_connections_per_source",
                c.sip.max_connections_per_source,
            ),
            (
                "max_pending_per_connection",
                c.sip.max_pending_per_connection,
            ),
            ("udp_max_flows_per_source", c.sip.udp_max_flows_per_source),
            ("udp_max_flows", c.sip.udp_max_flows),
        ] {
            if value == 0 {
                self.problem(&[Key("sip"), Key(field)], "expected at least 1");
            }
        }
        if c.sip.max_early_dialogs == 0 {
            self.problem(
                &[Key("sip"), Key("max_early_dialogs")],
                "expected at least 1",
            );
        }

        // [next_hop]
        if split_host_port(&c.next_hop.address).is_none() {
            self.problem(
                &[Key("next_hop"), Key("address")],
                format!("expected \"host:port\", got \"{}\"", c.next_hop.address),
            );
        }
        if c.next_hop.identity.trim().is_empty() {
            self.problem(
                &[Key("next_hop"), Key("identity")],
                "expected the DNS name the next hop's certificate carries",
            );
        }

        // [[gateway]]
        if c.gateways.is_empty() {
            self.problem(&[Key("gateway")], "expected at least one [[gateway]]");
        }
        let mut names = HashSet::new();
        for (i, g) in c.gateways.iter().enumerate() {
            let at = |k| [Key("gateway"), Index(i), Key(k)];
            if g.name.is_empty()
                || !g
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '.')
            {
                self.problem(
                    &at("name"),
                    "expected a short name of letters, digits, '-', '_' or '.'",
                );
            } else if !names.insert(g.name.as_str()) {
                self.problem(
                    &at("name"),
                    format!("gateway name \"{}\" is used twice", g.name),
                );
            }
            if split_host_port(&g.address).is_none() {
                self.problem(
                    &at("address"),
                    format!("expected \"host:port\", got \"{}\"", g.address),
                );
            }
            match g.transport {
                GatewayTransport::Tcp if g.srtp == SrtpMode::Required => self.problem(
                    &at("srtp"),
                    "srtp = \"required\" needs transport = \"tls\": SRTP keys never cross plain TCP, so SRTP requires MTLS",
                ),
                GatewayTransport::Udp if g.srtp == SrtpMode::Required => self.problem(
                    &at("srtp"),
                    "srtp = \"required\" needs transport = \"tls\": SRTP keys never cross plain UDP, so SRTP requires MTLS",
                ),
                GatewayTransport::Udp if c.gateway_listen.udp.is_none() => self.problem(
                    &at("transport"),
                    "transport = \"udp\" needs [gateway_listen] udp = \"address:port\" (the UDP socket)",
                ),
                GatewayTransport::Tls if g.identity.as_deref().is_none_or(|s| s.trim().is_empty()) => self
                    .problem(
                        &at("identity"),
                        "transport = \"tls\" needs the DNS name the gateway's certificate must carry",
                    ),
                _ => {}
            }
            if g.max_calls == Some(0) {
                self.problem(&at("max_calls"), "expected at least 1 (or leave it out)");
            }
            if let Some(suites) = &g.srtp_suites {
                self.check_suites(&[Key("gateway"), Index(i)], suites, c.tls.fips);
                if suites.is_empty() && g.srtp == SrtpMode::Required {
                    self.problem(
                        &at("srtp_suites"),
                        "expected at least one suite: srtp = \"required\" needs SRTP",
                    );
                }
            }
        }

        // [[route]]: every gateway named must exist.
        for (i, r) in c.routes.iter().enumerate() {
            if r.gateways.is_empty() {
                self.problem(
                    &[Key("route"), Index(i), Key("gateways")],
                    "expected at least one gateway name",
                );
            }
            for (j, g) in r.gateways.iter().enumerate() {
                if !c.gateways.iter().any(|gw| &gw.name == g) {
                    self.problem(
                        &[Key("route"), Index(i), Key("gateways"), Index(j)],
                        format!("no [[gateway]] is named \"{g}\""),
                    );
                }
            }
        }

        // [media]
        let ports = c.media.ports;
        if ports.pairs() == 0 {
            self.problem(
                &[Key("media"), Key("ports")],
                format!(
                    "the range {}-{} holds no RTP/RTCP port pair (an even port and the odd one after it)",
                    ports.first, ports.last
                ),
            );
        }
        self.check_suites(&[Key("media")], &c.media.srtp_suites, c.tls.fips);
        if crate::srtp::ReplayWindow::new(c.media.replay_window).is_err() {
            self.problem(
                &[Key("media"), Key("replay_window")],
                format!(
                    "expected {}..={} packets (RFC 3711 §3.3.2 asks for at least 64), got {}",
                    crate::srtp::ReplayWindow::MIN.packets(),
                    crate::srtp::ReplayWindow::MAX.packets(),
                    c.media.replay_window
                ),
            );
        }
        if c.media.threads > MAX_MEDIA_THREADS {
            self.problem(
                &[Key("media"), Key("threads")],
                format!(
                    "expected 0 (one per core) to {MAX_MEDIA_THREADS}, got {}",
                    c.media.threads
                ),
            );
        }
        if c.media.srtp_suites.is_empty() && c.next_hop.encryption != EncryptionLevel::NotSupported
        {
            self.problem(
                &[Key("media"), Key("srtp_suites")],
                "expected at least one suite: next_hop.encryption needs SRTP",
            );
        }

        // [metrics]: plain HTTP (with POST /reload) only where only this host reaches it.
        if !c.metrics.listen.ip().is_loopback()
            && c.metrics.tls.is_none()
            && !c.metrics.allow_plain_http
        {
            self.problem(
                &[Key("metrics"), Key("listen")],
                format!(
                    "{} is not loopback: add [metrics.tls] (scrapers present client certificates), or allow_plain_http = true if only a management network reaches it",
                    c.metrics.listen
                ),
            );
        }

        // [sip] bounds: a number too large for what it limits is a mistake, not a wish.
        for (field, value, range) in [
            (
                "max_message_bytes",
                c.sip.max_message_bytes as u64,
                1_024..=1_048_576,
            ),
            ("answer_timeout_secs", c.sip.answer_timeout_secs, 1..=3_600),
            ("max_calls", c.sip.max_calls as u64, 1..=1_000_000),
        ] {
            if !range.contains(&value) {
                self.problem(
                    &[Key("sip"), Key(field)],
                    format!("expected {} to {}, got {value}", range.start(), range.end()),
                );
            }
        }

        // Listeners must not collide (port 0 asks the system for a free port each).
        let mut listeners = vec![("next_hop.listen", c.next_hop.listen)];
        listeners.extend(c.gateway_listen.tls.map(|a| ("gateway_listen.tls", a)));
        listeners.extend(c.gateway_listen.tcp.map(|a| ("gateway_listen.tcp", a)));
        listeners.push(("metrics.listen", c.metrics.listen));
        for (i, (name, addr)) in listeners.iter().enumerate() {
            let clash = listeners[..i]
                .iter()
                .find(|(_, a)| a == addr && addr.port() != 0);
            if let Some((other, _)) = clash {
                let (table, key) = name.split_once('.').unwrap_or((name, ""));
                self.problem(
                    &[Key(table), Key(key)],
                    format!("{addr} is already used by {other}"),
                );
            }
        }

        // [sip] UDP timers.
        if !(10..=10_000).contains(&c.sip.udp_t1_ms) {
            self.problem(
                &[Key("sip"), Key("udp_t1_ms")],
                "expected between 10 and 10000 milliseconds",
            );
        } else if c.sip.udp_t2_ms < c.sip.udp_t1_ms || c.sip.udp_t2_ms > 60_000 {
            self.problem(
                &[Key("sip"), Key("udp_t2_ms")],
                "expected at least udp_t1_ms and at most 60000 milliseconds",
            );
        }

        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&c.log.level) {
            self.problem(
                &[Key("log"), Key("level")],
                format!("expected a level or filter like \"info,mediation=debug\": {e}"),
            );
        }
        self.problems
    }

    fn file(&mut self, path: &[Seg], file: &Path) {
        if let Err(e) = std::fs::File::open(file) {
            self.problem(path, format!("cannot read {}: {e}", file.display()));
        }
    }
}

/// Whether an SRTP suite uses only FIPS 140 approved algorithms (AES counter mode with
/// HMAC-SHA1, AES-GCM). Every suite we implement does today; the match has no catch-all so
/// that a new suite must be classified here before it compiles.
fn fips_approved_srtp(suite: crate::srtp::SrtpSuite) -> bool {
    use crate::srtp::SrtpSuite as S;
    match suite {
        S::AesCm128HmacSha1_80
        | S::AesCm128HmacSha1_32
        | S::AesCm256HmacSha1_80
        | S::AesCm256HmacSha1_32
        | S::AeadAes128Gcm
        | S::AeadAes256Gcm => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid file whose certificate paths point at files that exist (this source file).
    fn valid() -> String {
        let me = file!().rsplit('/').next().unwrap();
        format!(
            r#"[node]
name = "mediation.example.test"

[tls]
certificate = "{me}"
private_key = "{me}"
trusted_cas = "{me}"

[next_hop]
listen = "127.0.0.1:5070"
address = "frontend.example.test:5061"
identity = "frontend.example.test"

[[gateway]]
name = "gw1"
address = "gw1.example.test:5067"
transport = "tls"
identity = "gw1.example.test"

[media]
advertise = "192.0.2.10"
ports = "40000-40009"
"#
        )
    }

    fn base() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/config")
    }

    fn problems(src: &str) -> Vec<Problem> {
        load_str(src, &base()).expect_err("expected problems")
    }

    #[test]
    fn valid_file_loads_with_secure_defaults() {
        let c = load_str(&valid(), &base()).unwrap();
        assert_eq!(c.next_hop.encryption, EncryptionLevel::Required);
        assert_eq!(c.gateways[0].srtp, SrtpMode::Optional);
        assert_eq!(c.tls.min_version, super::super::TlsVersion::Tls12);
        assert_eq!(c.media.ports.pairs(), 5);
        assert!(c.tls.certificate.is_absolute());
    }

    #[test]
    fn srtp_required_over_tcp_is_refused_with_field_and_line() {
        let src = valid().replace(
            "transport = \"tls\"\nidentity = \"gw1.example.test\"",
            "transport = \"tcp\"\nsrtp = \"required\"",
        );
        let p = problems(&src);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "gateway[0].srtp");
        assert_eq!(p[0].line, Some(18));
        assert!(p[0].message.contains("requires MTLS"), "{}", p[0]);
    }

    #[test]
    fn srtp_required_over_udp_is_refused_with_field_and_line() {
        let src = valid()
            .replace(
                "transport = \"tls\"\nidentity = \"gw1.example.test\"",
                "transport = \"udp\"\nsrtp = \"required\"",
            )
            .replace(
                "[media]",
                "[gateway_listen]\nudp = \"127.0.0.1:5069\"\n\n[media]",
            );
        let p = problems(&src);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "gateway[0].srtp");
        assert_eq!(p[0].line, Some(18));
        assert!(p[0].message.contains("plain UDP"), "{}", p[0]);
    }

    /// Security review, low findings: plain HTTP (with `/reload`) beyond loopback only when
    /// asked for, and limits that are bounded.
    #[test]
    fn plain_metrics_beyond_loopback_and_unbounded_limits_are_refused() {
        let src = format!(
            "{}\n[metrics]\nlisten = \"0.0.0.0:9464\"\n\n[sip]\nmax_message_bytes = 100000000\nanswer_timeout_secs = 0\nmax_calls = 0\n",
            valid()
        );
        let p = problems(&src);
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metrics.listen",
                "sip.max_message_bytes",
                "sip.answer_timeout_secs",
                "sip.max_calls"
            ],
            "{p:?}"
        );
        assert!(p[0].message.contains("[metrics.tls]"), "{}", p[0]);
        assert!(p[1].message.contains("got 100000000"), "{}", p[1]);
        let allowed = src.replace(
            "listen = \"0.0.0.0:9464\"",
            "listen = \"0.0.0.0:9464\"\nallow_plain_http = true",
        );
        assert_eq!(problems(&allowed).len(), 3);
    }

    #[test]
    fn udp_gateway_needs_the_udp_socket_and_sane_timers() {
        let src = valid()
            .replace(
                "transport = \"tls\"\nidentity = \"gw1.example.test\"",
                "transport = \"udp\"",
            )
            .replace("[media]", "[sip]\nudp_t1_ms = 1\n\n[media]");
        let p = problems(&src);
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["gateway[0].transport", "sip.udp_t1_ms"], "{p:?}");
    }

    #[test]
    fn missing_certificate_file_is_refused() {
        let src = valid().replace("certificate = \"load.rs\"", "certificate = \"nope.pem\"");
        let p = problems(&src);
        assert_eq!(p[0].field, "tls.certificate");
        assert_eq!(p[0].line, Some(5));
        assert!(p[0].message.contains("nope.pem"), "{}", p[0]);
    }

    #[test]
    fn empty_port_range_is_refused() {
        for range in ["40010-40000", "40001-40001", "40001-40002"] {
            let src = valid().replace("40000-40009", range);
            let p = problems(&src);
            assert_eq!(p[0].field, "media.ports", "{range}");
            assert_eq!(p[0].line, Some(22));
        }
        let p = problems(&valid().replace("40000-40009", "40000-70000"));
        assert_eq!(p[0].field, "media.ports");
        assert!(p[0].message.contains("70000"), "{}", p[0]);
    }

    #[test]
    fn bad_enum_value_names_field_line_and_choices() {
        let src = valid().replace(
            "identity = \"gw1.example.test\"",
            "identity = \"gw1.example.test\"\nsrtp = \"maybe\"",
        );
        let p = problems(&src);
        assert_eq!(p[0].field, "gateway[0].srtp");
        assert_eq!(p[0].line, Some(19));
        assert!(p[0].message.contains("optional"), "{}", p[0]);
    }

    #[test]
    fn unknown_field_and_unknown_suite_are_refused() {
        let p = problems(&valid().replace("[media]", "[media]\nport = 5"));
        assert!(p[0].message.contains("unknown field"), "{}", p[0]);
        assert_eq!(p[0].line, Some(21));
        let p = problems(&valid().replace("[media]", "[media]\nsrtp_suites = [\"NULL\"]"));
        assert!(p[0].message.contains("unknown SRTP suite"), "{}", p[0]);
        assert_eq!(p[0].field, "media.srtp_suites");
    }

    #[test]
    fn replay_window_and_gateway_suites_are_checked_with_their_field() {
        use crate::config::SrtpOfferStyle;
        let c = load_str(&valid(), &base()).unwrap();
        assert_eq!(c.media.replay_window, 128);
        assert_eq!(c.gateways[0].srtp_suites, None);
        assert_eq!(c.gateways[0].srtp_offer_style, SrtpOfferStyle::Savp);
        let src = valid().replace("[media]", "[media]\nreplay_window = 32");
        let p = problems(&src);
        assert_eq!(p[0].field, "media.replay_window");
        assert!(p[0].message.contains("64..=32768"), "{}", p[0]);
        let src = valid().replace(
            "identity = \"gw1.example.test\"",
            "identity = \"gw1.example.test\"\nsrtp_offer_style = \"avp-crypto\"\nsrtp_suites = [\"AES_CM_128_HMAC_SHA1_80\", \"AES_CM_128_HMAC_SHA1_80\"]",
        );
        let p = problems(&src);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "gateway[0].srtp_suites[1]");
        assert_eq!(p[0].line, Some(20));
        let src = valid()
            .replace(
                "identity = \"gw1.example.test\"",
                "identity = \"gw1.example.test\"\nsrtp = \"required\"\nsrtp_offer_style = \"avp-crypto\"\nsrtp_suites = [\"AEAD_AES_128_GCM\"]",
            )
            .replace("[media]", "[media]\nreplay_window = 1000");
        let c = load_str(&src, &base()).unwrap();
        assert_eq!(c.gateways[0].srtp_offer_style, SrtpOfferStyle::AvpCrypto);
        assert_eq!(
            c.gateways[0].srtp_suites,
            Some(vec![crate::srtp::SrtpSuite::AeadAes128Gcm])
        );
        assert_eq!(c.media.replay_window, 1000);
    }

    #[test]
    fn media_threads_default_to_one_per_core_and_are_bounded() {
        let c = load_str(&valid(), &base()).unwrap();
        assert_eq!(c.media.threads, 0);
        let c = load_str(&valid().replace("[media]", "[media]\nthreads = 4"), &base()).unwrap();
        assert_eq!(c.media.threads, 4);
        let p = problems(&valid().replace("[media]", "[media]\nthreads = 100000"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "media.threads");
        assert!(
            p[0].message.contains("0 (one per core) to 1024"),
            "{}",
            p[0]
        );
        assert!(p[0].line.is_some());
    }

    #[test]
    fn fips_accepts_every_srtp_suite_we_implement() {
        // All of them are AES (counter mode or GCM): FIPS mode narrows nothing on the media
        // side today, and `fips_approved_srtp` must classify any suite added later.
        assert!(crate::srtp::SrtpSuite::ALL
            .iter()
            .all(|s| fips_approved_srtp(*s)));
        let names = crate::srtp::SrtpSuite::ALL.map(|s| format!("\"{}\"", s.name()));
        let src = valid().replace("[tls]\n", "[tls]\nfips = true\n").replace(
            "[media]",
            &format!("[media]\nsrtp_suites = [{}]", names.join(", ")),
        );
        let c = load_str(&src, &base()).unwrap();
        assert!(c.tls.fips);
        assert_eq!(c.media.srtp_suites, crate::srtp::SrtpSuite::ALL.to_vec());
    }

    #[test]
    fn tls_gateway_without_identity_and_duplicate_names_are_refused() {
        let src = valid().replace("identity = \"gw1.example.test\"\n", "")
            + "\n[[gateway]]\nname = \"gw1\"\naddress = \"10.0.0.1:5068\"\ntransport = \"tcp\"\n";
        let p = problems(&src);
        let fields: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["gateway[0].identity", "gateway[1].name"]);
    }

    #[test]
    fn host_port_split() {
        assert_eq!(split_host_port("a.b:5061"), Some(("a.b", 5061)));
        assert_eq!(split_host_port("[::1]:5061"), Some(("::1", 5061)));
        assert_eq!(split_host_port("a.b"), None);
        assert_eq!(split_host_port(":5"), None);
        assert_eq!(split_host_port("a:0"), None);
    }
}
