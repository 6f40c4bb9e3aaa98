//! Settings that are allowed but weaken what the appliance promises: `check-config` prints each
//! as a `WARNING:` line and the service logs each at start, so an insecure choice is always
//! spelled out where the operator looks.

use std::path::Path;

use super::model::{Config, EncryptionLevel, MediaSources};

/// The warnings `config` deserves, one sentence each, naming the field.
pub fn warnings(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if config.next_hop.encryption == EncryptionLevel::NotSupported {
        out.push(
            "next_hop.encryption = \"not-supported\": media toward the internal next hop is plain RTP, never SRTP"
                .to_string(),
        );
    }
    for g in &config.gateways {
        if g.media_sources == MediaSources::Any {
            out.push(format!(
                "gateway \"{}\": media_sources = \"any\": plain RTP from any address may take the leg until the gateway's own media arrives (use only for a gateway behind NAT)",
                g.name
            ));
        }
    }
    if !config.metrics.listen.ip().is_loopback() && config.metrics.tls.is_none() {
        out.push(format!(
            "metrics.listen = \"{}\" serves plain HTTP (POST /reload included) beyond this host (allow_plain_http = true)",
            config.metrics.listen
        ));
    }
    if let Some(mode) = others_may_read(&config.tls.private_key) {
        out.push(format!(
            "tls.private_key {} is readable by group or others (mode {mode:03o}): chmod 600 it",
            config.tls.private_key.display()
        ));
    }
    out
}

/// The file's permission bits when group or others may read it.
fn others_may_read(file: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn config(extra: &str, key: &Path) -> Config {
        let src = format!(
            r#"[node]
name = "m.example.test"
[tls]
certificate = "{key}"
private_key = "{key}"
trusted_cas = "{key}"
[next_hop]
address = "fe.example.test:5061"
identity = "fe.example.test"
{extra}
[[gateway]]
name = "gw1"
address = "gw1.example.test:5067"
transport = "tcp"
srtp = "not-supported"
media_sources = "any"
[media]
advertise = "192.0.2.10"
ports = "40000-40009"
[metrics]
listen = "0.0.0.0:9464"
allow_plain_http = true
"#,
            key = key.display()
        );
        super::super::load_str(&src, Path::new("/")).unwrap()
    }

    #[test]
    fn each_weakening_setting_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        let w = warnings(&config("encryption = \"not-supported\"", &key));
        let all = w.join("\n");
        for needle in [
            "next_hop.encryption = \"not-supported\"",
            "media_sources = \"any\"",
            "metrics.listen = \"0.0.0.0:9464\"",
            "mode 640",
        ] {
            assert!(all.contains(needle), "{needle} not in:\n{all}");
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let w = warnings(&config("", &key));
        assert!(!w.join("\n").contains("private_key"), "{w:?}");
        assert_eq!(w.len(), 2, "{w:?}");
    }
}
