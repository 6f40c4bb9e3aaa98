//! Reads `mediation.toml`, checks it, and reports every problem at once with its field, its line
//! and what was expected. Contradictions (SRTP required over plain TCP, an empty port range, a
//! certificate file that is not there) are refused here, before anything starts.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::locate::{Locator, Seg};
use super::model::{AddressList, Config, EncryptionLevel, GatewayTransport, IpFamily, SrtpMode};

/// Most media threads `[media] threads` may ask for (far beyond any core count a relay box has).
const MAX_MEDIA_THREADS: usize = 1024;

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the field, e.g. `gateway[0].srtp`.
    pub(crate) field: String,
    /// 1-based line in the file, where the field (or its table) is written.
    pub(crate) line: Option<usize>,
    /// What is wrong and what was expected.
    pub(crate) message: String,
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
pub(crate) fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0 && !host.contains(char::is_whitespace)).then_some((host, port))
}

/// The host of `host:port` when it is an IP address.
fn literal_ip(s: &str) -> Option<IpAddr> {
    split_host_port(s).and_then(|(host, _)| host.parse().ok())
}

/// What is wrong with a `host:port` value, if anything: an IPv6 address must be bracketed
/// (`[2001:db8::1]:5061`), as it is in the SIP URIs written from it.
fn host_port_problem(s: &str) -> Option<String> {
    let Some((host, port)) = split_host_port(s) else {
        return Some(format!(
            "expected \"host:port\" (\"[v6]:port\" for IPv6), got \"{s}\""
        ));
    };
    (host.contains(':') && !s.starts_with('[')).then(|| {
        format!("an IPv6 address is written in brackets: expected \"[{host}]:{port}\", got \"{s}\"")
    })
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
        if let Some(why) = host_port_problem(&c.next_hop.address) {
            self.problem(&[Key("next_hop"), Key("address")], why);
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
            if let Some(why) = host_port_problem(&g.address) {
                self.problem(&at("address"), why);
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

        // [[gateway.number_rules]]: a replacement names only groups its pattern has, and
        // writes only what a SIP URI's user part may hold.
        for (i, g) in c.gateways.iter().enumerate() {
            for (j, rule) in g.number_rules.iter().enumerate() {
                if let Err(why) = super::numbers::check_replacement(&rule.pattern, &rule.replace) {
                    self.problem(
                        &[
                            Key("gateway"),
                            Index(i),
                            Key("number_rules"),
                            Index(j),
                            Key("replace"),
                        ],
                        why,
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
        self.check_families(c);
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

        // [sip] pass_headers: never a header the B2BUA writes itself on the far leg (a second
        // Via or Call-ID would break the dialog), and names or `prefix*` only.
        for (i, name) in c.sip.pass_headers.iter().enumerate() {
            let at = [Key("sip"), Key("pass_headers"), Index(i)];
            let bare = name.strip_suffix('*').unwrap_or(name);
            let token = !bare.is_empty()
                && bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.!%_+`'~".contains(&b));
            if !token {
                self.problem(
                    &at,
                    format!("{name:?}: expected a header name or a prefix ending in *"),
                );
            } else if let Some(managed) = crate::sip::outgoing::MANAGED_HEADERS.iter().find(|m| {
                if name.ends_with('*') {
                    m.len() >= bare.len() && m[..bare.len()].eq_ignore_ascii_case(bare)
                } else {
                    m.eq_ignore_ascii_case(bare)
                }
            }) {
                self.problem(
                    &at,
                    format!(
                        "{name:?} would pass {managed}, which the B2BUA writes itself on each leg"
                    ),
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

    /// `[media] advertise` and `bind`: at least one address to advertise, at most one address
    /// per family in each, a bind only for a family that is advertised; and every peer address
    /// written as an IP address (next hop, gateways and their sources) of an advertised family,
    /// reachable from the UDP socket for `udp` gateways.
    fn check_families(&mut self, c: &Config) {
        use Seg::{Index, Key};
        let media = &c.media;
        // A one-address list is written as a plain string: name the field without an index.
        let at = |key: &'static str, list: &AddressList, i: usize| {
            let mut path = vec![Key("media"), Key(key)];
            if list.as_slice().len() > 1 {
                path.push(Index(i));
            }
            path
        };
        if media.advertise.is_empty() {
            self.problem(
                &[Key("media"), Key("advertise")],
                "expected the address peers send media to (one per family at most)",
            );
        }
        for (key, list) in [("advertise", &media.advertise), ("bind", &media.bind)] {
            for (i, family) in list.repeated_families() {
                self.problem(
                    &at(key, list, i),
                    format!(
                        "{} is a second {family} address: [media] {key} takes at most one address per family (one IPv4, one IPv6)",
                        list.as_slice()[i]
                    ),
                );
            }
        }
        for (i, ip) in media.advertise.as_slice().iter().enumerate() {
            if ip.is_unspecified() || ip.is_multicast() {
                self.problem(
                    &at("advertise", &media.advertise, i),
                    format!("{ip} is not an address peers can send media to"),
                );
            }
        }
        for (i, ip) in media.bind.as_slice().iter().enumerate() {
            let family = IpFamily::of(*ip);
            if media.advertise.get(family).is_none() {
                self.problem(
                    &at("bind", &media.bind, i),
                    format!("{ip} is {family} but [media] advertise has no {family} address"),
                );
            }
        }
        if media.advertise.is_empty() {
            return;
        }
        let unadvertised = |ip: IpAddr| {
            let family = IpFamily::of(ip);
            media.advertise.get(family).is_none().then_some(family)
        };
        if let Some(family) = literal_ip(&c.next_hop.address).and_then(unadvertised) {
            self.problem(
                &[Key("next_hop"), Key("address")],
                format!(
                    "next hop address {} is {family} but [media] advertise has no {family} address",
                    c.next_hop.address
                ),
            );
        }
        let udp = c.gateway_listen.udp;
        // A socket on `::` takes IPv4 too (dual stack); one on an IPv4 address or a given IPv6
        // address reaches its own family only.
        let udp_misses = |ip: IpAddr| {
            udp.filter(|u| {
                let dual = u.ip() == IpFamily::V6.unspecified();
                !dual && IpFamily::of(u.ip()) != IpFamily::of(ip)
            })
        };
        for (i, g) in c.gateways.iter().enumerate() {
            let is_udp = g.transport == GatewayTransport::Udp;
            if let Some(ip) = literal_ip(&g.address) {
                let family = IpFamily::of(ip);
                if unadvertised(ip).is_some() {
                    self.problem(
                        &[Key("gateway"), Index(i), Key("address")],
                        format!(
                            "gateway {} address {} is {family} but [media] advertise has no {family} address",
                            g.name, g.address
                        ),
                    );
                } else if let Some(u) = udp_misses(ip).filter(|_| is_udp) {
                    self.problem(
                        &[Key("gateway"), Index(i), Key("address")],
                        format!(
                            "gateway {} address {} is {family} but [gateway_listen] udp {u} cannot send to it: bind the UDP socket to \"[::]:{}\" (both families)",
                            g.name, g.address, u.port()
                        ),
                    );
                }
            }
            for (j, ip) in g.sources.iter().enumerate() {
                let family = IpFamily::of(*ip);
                let path = [Key("gateway"), Index(i), Key("sources"), Index(j)];
                if unadvertised(*ip).is_some() {
                    self.problem(
                        &path,
                        format!(
                            "gateway {} source {ip} is {family} but [media] advertise has no {family} address",
                            g.name
                        ),
                    );
                } else if let Some(u) = udp_misses(*ip).filter(|_| is_udp) {
                    self.problem(
                        &path,
                        format!(
                            "gateway {} source {ip} is {family} but [gateway_listen] udp {u} does not receive {family}: bind the UDP socket to \"[::]:{}\" (both families)",
                            g.name, u.port()
                        ),
                    );
                }
            }
        }
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

    #[test]
    fn pass_headers_cannot_name_what_the_b2bua_writes() {
        let src = format!(
            "{}\n[sip]\npass_headers = [\"X-*\", \"ms-*\", \"User-to-User\", \"via\", \"Call*\", \"*\", \"bad name\"]\n",
            valid()
        );
        let p = problems(&src);
        let fields: Vec<&str> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "sip.pass_headers[3]",
                "sip.pass_headers[4]",
                "sip.pass_headers[5]",
                "sip.pass_headers[6]"
            ],
            "{p:?}"
        );
        assert!(p[0].message.contains("would pass Via"), "{}", p[0]);
        assert!(p[1].message.contains("would pass Call-ID"), "{}", p[1]);
        assert!(p.iter().all(|p| p.line.is_some()), "{p:?}");
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
    fn advertise_is_one_address_or_one_per_family_and_binds_default_per_family() {
        let c = load_str(&valid(), &base()).unwrap();
        let v4: IpAddr = "192.0.2.10".parse().unwrap();
        assert_eq!(c.media.advertise.as_slice(), [v4]);
        assert_eq!(
            c.media.bind_for(IpFamily::V4),
            Some("0.0.0.0".parse().unwrap())
        );
        assert_eq!(c.media.bind_for(IpFamily::V6), None);

        let src = valid().replace(
            "advertise = \"192.0.2.10\"",
            "advertise = [\"192.0.2.10\", \"2001:db8::10\"]\nbind = \"2001:db8::10\"",
        );
        let c = load_str(&src, &base()).unwrap();
        assert_eq!(c.media.advertise.get(IpFamily::V4), Some(v4));
        assert_eq!(
            c.media.advertise.get(IpFamily::V6),
            Some("2001:db8::10".parse().unwrap())
        );
        assert_eq!(
            c.media.bind_for(IpFamily::V4),
            Some("0.0.0.0".parse().unwrap())
        );
        assert_eq!(
            c.media.bind_for(IpFamily::V6),
            Some("2001:db8::10".parse().unwrap())
        );
        let src = valid().replace("advertise = \"192.0.2.10\"", "advertise = [\"::1\"]");
        let c = load_str(&src, &base()).unwrap();
        assert_eq!(c.media.bind_for(IpFamily::V6), Some("::".parse().unwrap()));
        assert_eq!(c.media.bind_for(IpFamily::V4), None);
    }

    #[test]
    fn two_addresses_of_a_family_are_refused_with_field_and_line() {
        let src = valid().replace(
            "advertise = \"192.0.2.10\"",
            "advertise = [\"192.0.2.10\", \"192.0.2.11\"]\nbind = [\"::1\", \"::2\"]",
        );
        let p = problems(&src);
        let fields: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "media.advertise[1]",
                "media.bind[1]",
                "media.bind[0]",
                "media.bind[1]"
            ],
            "{p:?}"
        );
        assert_eq!(p[0].line, Some(21));
        assert!(
            p[0].message.contains("192.0.2.11 is a second IPv4 address")
                && p[0]
                    .message
                    .contains("[media] advertise takes at most one address per family"),
            "{}",
            p[0]
        );
        assert_eq!(p[1].line, Some(22));
        assert!(p[1].message.contains("second IPv6"), "{}", p[1]);
        assert!(
            p[2].message
                .contains("::1 is IPv6 but [media] advertise has no IPv6 address"),
            "{}",
            p[2]
        );
        let p = problems(&valid().replace("\"192.0.2.10\"", "[]"));
        assert_eq!(p[0].field, "media.advertise");
        let p = problems(&valid().replace("\"192.0.2.10\"", "\"0.0.0.0\""));
        assert_eq!(p[0].field, "media.advertise");
        assert!(
            p[0].message.contains("not an address peers can send"),
            "{}",
            p[0]
        );
        let p = problems(&valid().replace("\"192.0.2.10\"", "\"media.example\""));
        assert_eq!(p[0].field, "media.advertise");
        assert_eq!(p[0].line, Some(21));
    }

    #[test]
    fn peers_of_a_family_we_do_not_advertise_are_refused_with_field_and_line() {
        let src = valid()
            .replace("frontend.example.test:5061", "[2001:db8::5]:5061")
            .replace(
                "name = \"gw1\"\naddress = \"gw1.example.test:5067\"",
                "name = \"gw6\"\naddress = \"[::1]:5998\"",
            )
            + "\n[[gateway]]\nname = \"gw7\"\naddress = \"gw7.example.test:5068\"\ntransport = \"tcp\"\nsources = [\"192.0.2.7\", \"2001:db8::7\"]\n";
        let p = problems(&src);
        let fields: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "next_hop.address",
                "gateway[0].address",
                "gateway[1].sources[1]"
            ],
            "{p:?}"
        );
        assert_eq!(p[0].line, Some(11));
        assert!(
            p[0].message.contains(
                "next hop address [2001:db8::5]:5061 is IPv6 but [media] advertise has no IPv6 address"
            ),
            "{}",
            p[0]
        );
        assert_eq!(p[1].line, Some(16));
        assert_eq!(
            p[1].message,
            "gateway gw6 address [::1]:5998 is IPv6 but [media] advertise has no IPv6 address"
        );
        assert!(p[2].line.is_some());
        assert!(
            p[2].message
                .contains("gateway gw7 source 2001:db8::7 is IPv6"),
            "{}",
            p[2]
        );
        // With an IPv6 address to advertise, the same peers are fine.
        let both = src.replace(
            "advertise = \"192.0.2.10\"",
            "advertise = [\"192.0.2.10\", \"2001:db8::10\"]",
        );
        load_str(&both, &base()).unwrap();
        // And an IPv6-only relay refuses its IPv4 source.
        let v6_only = src.replace("advertise = \"192.0.2.10\"", "advertise = \"2001:db8::10\"");
        let p = problems(&v6_only);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "gateway[1].sources[0]");
        assert!(p[0].message.contains("is IPv4 but"), "{}", p[0]);
    }

    #[test]
    fn ipv6_host_ports_need_brackets_and_udp_gateways_a_socket_that_reaches_them() {
        let p = problems(&valid().replace("frontend.example.test:5061", "2001:db8::5:5061"));
        assert_eq!(p[0].field, "next_hop.address");
        assert!(
            p[0].message.contains("expected \"[2001:db8::5]:5061\""),
            "{}",
            p[0]
        );
        let udp = |listen: &str| {
            valid()
                .replace(
                    "address = \"gw1.example.test:5067\"\ntransport = \"tls\"\nidentity = \"gw1.example.test\"",
                    "address = \"[2001:db8::9]:5060\"\ntransport = \"udp\"",
                )
                .replace(
                    "advertise = \"192.0.2.10\"",
                    "advertise = [\"192.0.2.10\", \"2001:db8::10\"]",
                )
                .replace(
                    "[media]",
                    &format!("[gateway_listen]\nudp = \"{listen}\"\n\n[media]"),
                )
        };
        let p = problems(&udp("0.0.0.0:5069"));
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "gateway[0].address");
        assert!(p[0].message.contains("\"[::]:5069\""), "{}", p[0]);
        load_str(&udp("[::]:5069"), &base()).unwrap();
        load_str(&udp("[2001:db8::10]:5069"), &base()).unwrap();
    }

    #[test]
    fn listeners_and_metrics_may_be_ipv6() {
        let src = valid().replace("127.0.0.1:5070", "[::1]:5070").replace(
            "[media]",
            "[gateway_listen]\ntls = \"[::]:5067\"\ntcp = \"[::1]:5068\"\nudp = \"[::]:5069\"\n\n[metrics]\nlisten = \"[::1]:9464\"\n\n[media]",
        );
        let c = load_str(&src, &base()).unwrap();
        assert_eq!(c.next_hop.listen, "[::1]:5070".parse().unwrap());
        assert_eq!(c.metrics.listen, "[::1]:9464".parse().unwrap());
        assert_eq!(c.gateway_listen.udp, Some("[::]:5069".parse().unwrap()));
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
