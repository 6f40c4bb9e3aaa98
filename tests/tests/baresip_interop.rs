//! Interop with a SIP stack nobody here wrote: baresip (Debian `baresip-core`, its `srtp`
//! module with `mediaenc=srtp-mand`) plays the gateway over MTLS with the trusted certificate,
//! and a second baresip plays the internal next hop. The call must complete through the
//! mediation server with SRTP on both legs and audio flowing both ways.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use e2e::{free_port, Lab, Mediation, Setup};

/// A baresip config directory: listens on `port` (TLS on `port + 1`), presents `bundle`.
fn baresip_dir(
    lab: &Lab,
    name: &str,
    port: u16,
    bundle: &str,
    account: &str,
) -> std::path::PathBuf {
    let dir = lab.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("config"),
        format!(
            "module_path /usr/lib/baresip/modules\n\
             sip_listen 127.0.0.1:{port}\n\
             sip_certificate {bundle}\n\
             sip_cafile {ca}\n\
             net_interface 127.0.0.1\n\
             audio_player alsa,null\n\
             audio_source ausine,440\n\
             ausrc_srate 48000\n\
             ausrc_channels 2\n\
             module stdio.so\nmodule g711.so\nmodule ausine.so\nmodule alsa.so\nmodule srtp.so\n\
             module_app account.so\nmodule_app menu.so\n",
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
        if p < 65000 && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
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
    );
    let gw_dir = baresip_dir(
        &lab,
        "baresip-gateway",
        gw_port,
        "gateway-bundle.pem",
        "<sip:+15550001@127.0.0.1>;regint=0;mediaenc=srtp-mand;audio_codecs=PCMU",
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
