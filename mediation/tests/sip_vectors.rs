//! The RFC 4475 (SIP torture messages) and RFC 5118 (IPv6 torture messages) test vectors in
//! `tests/vectors/`, byte for byte as the RFCs' archives hold them, through our parser: each
//! message the RFC calls well formed parses to the values the RFC names (`manifest.toml`), each
//! one it calls invalid is refused with the 4xx/5xx it names (or any 4xx when it names none),
//! and a request we refuse still gets an answer. Nothing panics.

use std::path::Path;

use mediation::sip::{parse, response_for, Host, Message, ResponseExtras, Start};

struct Vector {
    name: String,
    file: String,
    valid: bool,
    expect: String,
    response: u16,
    may_be_liberal: bool,
    values: toml::Table,
    bytes: Vec<u8>,
}

fn vectors() -> Vec<Vector> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors");
    let text = std::fs::read_to_string(dir.join("manifest.toml")).unwrap();
    let manifest: toml::Table = toml::from_str(&text).unwrap();
    let messages = manifest["message"].as_array().unwrap();
    messages
        .iter()
        .map(|m| {
            let file = m["file"].as_str().unwrap().to_string();
            Vector {
                name: m["name"].as_str().unwrap().to_string(),
                valid: m["valid"].as_bool().unwrap(),
                expect: m["expect"].as_str().unwrap().to_string(),
                response: m["response"].as_integer().unwrap() as u16,
                may_be_liberal: m
                    .get("liberal_accept_allowed")
                    .and_then(toml::Value::as_bool)
                    .unwrap_or(false),
                values: m
                    .get("values")
                    .and_then(toml::Value::as_table)
                    .cloned()
                    .unwrap_or_default(),
                bytes: std::fs::read(dir.join(&file)).unwrap(),
                file,
            }
        })
        .collect()
}

/// Three RFC 5118 messages announce a Content-Length their own bodies do not have (an error in
/// the RFC's archive, not a test of framing): their Content-Length is set to the body's length.
fn reframed(v: &Vector) -> Vec<u8> {
    let declared = v.values.get("content_length").and_then(|c| c.as_str());
    let actual = v.values.get("body_octets_in_file").and_then(|c| c.as_str());
    match (declared, actual) {
        (Some(d), Some(a)) if v.valid && d != a && v.file.starts_with("rfc5118/") => {
            let text = String::from_utf8(v.bytes.clone()).unwrap();
            text.replacen(
                &format!("Content-Length: {d}"),
                &format!("Content-Length: {a}"),
                1,
            )
            .into_bytes()
        }
        _ => v.bytes.clone(),
    }
}

fn host_text(h: &Host) -> String {
    match h {
        Host::V6(a) => a.to_string(),
        other => other.to_string(),
    }
}

/// Compares every value the manifest names that our model holds; returns how many it checked.
fn check_values(v: &Vector, m: &Message, bytes_changed: bool) -> usize {
    let view = m.view();
    let mut checked = 0;
    for (key, want) in &v.values {
        let Some(want) = want.as_str() else { continue };
        let nth_via = |n: usize| view.vias.get(n);
        let got: Option<String> = match key.as_str() {
            "method" => m.method().map(|x| x.to_string()),
            "request_uri" => m.request_uri().map(|u| u.to_string()),
            "request_uri_host" => m.request_uri().and_then(|u| u.host()).map(host_text),
            "request_uri_port" => m
                .request_uri()
                .and_then(|u| u.sip())
                .map(|u| u.port.map(|p| p.to_string()).unwrap_or_default()),
            "status_code" => m.code().map(|c| c.to_string()),
            "call_id" => Some(view.call_id.clone()),
            "cseq_number" => Some(view.cseq.seq.to_string()),
            "cseq_method" => Some(view.cseq.method.to_string()),
            "max_forwards" => view.max_forwards.map(|n| n.to_string()),
            "from_tag" => view.from_tag().map(str::to_string),
            "to_tag" => view.to_tag().map(str::to_string),
            "from_uri" => Some(view.from.uri_text.clone()),
            "to_uri" => Some(view.to.uri_text.clone()),
            "via_count" => Some(view.vias.len().to_string()),
            "top_via_host" => nth_via(0).map(|x| host_text(&x.host)),
            "top_via_port" => nth_via(0).and_then(|x| x.port).map(|p| p.to_string()),
            "top_via_branch" => nth_via(0).and_then(|x| x.branch()).map(str::to_string),
            "top_via_transport" => nth_via(0).map(|x| x.transport.clone()),
            "top_via_received" => nth_via(0).and_then(|x| x.received()).map(str::to_string),
            "second_via_host" => nth_via(1).map(|x| host_text(&x.host)),
            "second_via_branch" => nth_via(1).and_then(|x| x.branch()).map(str::to_string),
            "third_via_host" => nth_via(2).map(|x| host_text(&x.host)),
            "third_via_transport" => nth_via(2).map(|x| x.transport.clone()),
            "contact_uri" | "contact_uri_1" => view.contacts.first().map(|c| c.uri_text.clone()),
            "contact_uri_2" => view.contacts.get(1).map(|c| c.uri_text.clone()),
            "contact_count" => Some(view.contacts.len().to_string()),
            "content_type" => view.content_type.clone(),
            // (The three reframed RFC 5118 messages: their announced length is the RFC's error.)
            "content_length" if bytes_changed => continue,
            "content_length" => Some(m.body().len().to_string()),
            "route" => view.route.first().cloned(),
            _ => continue,
        };
        let got = got.unwrap_or_default();
        // An address may be spelled otherwise (`::192.0.2.1` is `::c000:201`).
        let same_ip = |a: &str, b: &str| {
            a.parse::<std::net::IpAddr>()
                .ok()
                .is_some_and(|a| b.parse() == Ok(a))
        };
        assert!(
            got == want || same_ip(&got, want),
            "{}: {key}: {got} != {want}",
            v.name
        );
        checked += 1;
    }
    checked
}

#[test]
fn every_torture_message_is_read_or_refused_as_its_rfc_says() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 61, "49 messages of RFC 4475, 12 of RFC 5118");
    let (mut read, mut refused, mut values) = (0, 0, 0);
    for v in &vectors {
        let bytes = reframed(v);
        let door = parse(&bytes);
        let model = Message::parse(&bytes);
        let wants_error = matches!(v.expect.as_str(), "reject-4xx" | "reject-5xx");
        if wants_error {
            let e = door.as_ref().expect_err(&v.name);
            let (code, phrase) = e.response_status();
            if v.response != 0 {
                assert_eq!(code, v.response, "{}: {e}", v.name);
            } else {
                assert!((400..500).contains(&code), "{}: {code} {e}", v.name);
            }
            // A refused request still gets its answer, saying why; heads whose echoed headers
            // are missing (insuf), doubled (multi01) or broken (quotbal, baddn, badaspec) get
            // none, as a response could not be matched to them (and the connection survives).
            let is_request = !bytes.starts_with(b"SIP/");
            let answer = response_for(&bytes, code, &phrase, &ResponseExtras::default());
            if is_request
                && !["insuf", "multi01", "quotbal", "baddn", "badaspec"].contains(&v.name.as_str())
            {
                let answer = answer.unwrap_or_else(|| panic!("{}: no answer", v.name));
                let status = format!("SIP/2.0 {code} {phrase}\r\n");
                assert!(answer.starts_with(status.as_bytes()), "{}", v.name);
            }
            refused += 1;
            continue;
        }
        if v.expect == "drop" && !v.valid {
            // A broken response: nothing to answer, dropped.
            assert!(door.is_err(), "{}", v.name);
            refused += 1;
            continue;
        }
        // "accept" (and "drop" of a well-formed message, a transaction-layer decision): the
        // parser must read it. The two the RFCs only allow a liberal reading of (an IPv6
        // reference with three colons) may instead be refused with a 400.
        let m = match model {
            Ok(m) => m,
            Err(e) if !v.valid && (v.may_be_liberal || v.name == "ipv6-bug-abnf-3-colons") => {
                assert_eq!(e.response_status().0, 400, "{}: {e}", v.name);
                refused += 1;
                continue;
            }
            Err(e) => panic!("{} ({}): {e}", v.name, v.file),
        };
        values += check_values(v, &m, bytes != v.bytes);
        // Whatever we read, we write back byte for byte (the body cut to Content-Length).
        let again = Message::parse(&m.encode()).unwrap();
        assert_eq!(again, m, "{}", v.name);
        // At the door, an unknown method or scheme gets the code the RFC names.
        match door {
            Ok(_) => {}
            Err(e) => assert_eq!(e.response_status().0, v.response, "{}: {e}", v.name),
        }
        if let Start::Response { .. } = m.start() {
            assert!(m.request_uri().is_none());
        }
        read += 1;
    }
    println!("{read} read, {refused} refused, {values} values checked");
    assert!(values > 300, "only {values} values checked");
}
