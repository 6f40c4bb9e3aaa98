//! The README's first command, `gateway-sim demo`, as a newcomer runs it: it must print the
//! table and exit 0 only when every row matches docs/design.md §2.

use std::process::Command;

#[test]
fn demo_prints_the_table_and_every_row_matches() {
    let out = Command::new(e2e::bin("gateway-sim"))
        .arg("demo")
        .output()
        .expect("run gateway-sim demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("every row matches docs/design.md §2"),
        "{stdout}"
    );
    let rows: Vec<&str> = stdout.lines().filter(|l| l.ends_with(" ok")).collect();
    assert_eq!(rows.len(), 5, "{stdout}");
    assert!(
        rows[0].contains("MTLS") && rows[0].contains("verified_mtls"),
        "{stdout}"
    );
    assert!(
        rows[1].contains("TCP") && rows[1].contains("tcp_transport"),
        "{stdout}"
    );
    assert!(rows[4].contains("untrusted_ca"), "{stdout}");
}
