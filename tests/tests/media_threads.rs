//! `[media] threads` as an operator sees it: the server runs exactly that many media threads
//! (`media-N` in `ps -L`), calls are spread over all of them (each thread's CPU time shows it
//! relayed packets), and they carry audio both ways, SRTP on both legs, with nothing lost.

use std::time::Duration;

use e2e::{Caller, Lab, Mediation, Setup, Sim};

/// The process's threads that relay media: name and CPU time so far (`schedstat`).
fn media_threads(pid: u32) -> Vec<(String, Duration)> {
    let mut threads: Vec<(String, Duration)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the server's threads")
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let name = std::fs::read_to_string(dir.join("comm")).ok()?;
            let schedstat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
            let nanos = schedstat.split_whitespace().next()?.parse().ok()?;
            Some((name.trim().to_string(), Duration::from_nanos(nanos)))
        })
        .filter(|(name, _)| name.starts_with("media-"))
        .collect();
    threads.sort();
    threads
}

fn names(threads: &[(String, Duration)]) -> Vec<&str> {
    threads.iter().map(|(name, _)| name.as_str()).collect()
}

#[test]
fn calls_spread_over_the_configured_media_threads_lose_nothing() {
    let lab = Lab::new();
    let setup = Setup {
        media_threads: 3,
        ..Setup::default()
    };
    let mediation = Mediation::start(&lab, &setup);
    let idle = media_threads(mediation.pid());
    assert_eq!(
        names(&idle),
        ["media-0", "media-1", "media-2"],
        "{}",
        mediation.log_text()
    );
    let next_hop = Sim::answer(
        &lab,
        "nexthop",
        setup.next_hop_port,
        Some("nexthop"),
        "offer",
    );
    // Six concurrent calls, 3 s each: two on each thread (a new call goes to the least busy).
    let (ok, placed) = Caller {
        lab: &lab,
        port: mediation.ports.gateway_tls,
        transport: "tls",
        cert: Some("gateway"),
        srtp: "offer",
        to: "sip:+15551234@mediation.example.test",
        duration: 3,
        extra: ["--calls", "6", "--concurrency", "6", "--rate", "20"]
            .map(String::from)
            .to_vec(),
    }
    .run("gateway");
    std::thread::sleep(Duration::from_millis(500));
    let busy = media_threads(mediation.pid());
    let answered = next_hop.stop();
    let context = format!(
        "caller:\n{placed:#}\nanswerer:\n{answered:#}\nmediation:\n{}",
        mediation.log_text()
    );
    assert!(ok, "the caller's run failed\n{context}");
    let calls = placed["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 6, "{context}");
    for c in calls {
        assert_eq!(c["error"], serde_json::Value::Null, "{context}");
        assert_eq!(c["wire_encrypted"], true, "{context}");
        assert_eq!(c["packets_lost"], 0, "{context}");
        assert!(
            c["packets_received"].as_u64().unwrap_or(0) > 100,
            "{context}"
        );
    }
    // An idle media thread wakes once a second (microseconds of CPU); one that relayed two
    // calls' 1 200 packets took milliseconds.
    for ((name, before), (_, after)) in idle.iter().zip(&busy) {
        assert!(
            *after - *before > Duration::from_millis(2),
            "{name} relayed nothing: {before:?} -> {after:?} of CPU\n{context}"
        );
    }
}
