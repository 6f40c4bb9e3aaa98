//! What both ends do the same way inside a call: wait for the next message of the call, answer
//! requests that do not change it (OPTIONS, INFO; 488 to a re-INVITE, which the simulator does
//! not support), and hang up with BYE and wait for its answer.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

use crate::dialog::Dialog;
use crate::report::CallReport;
use crate::sip_msg::{self, SipMsg};
use crate::ua::{Event, SipConnection};

/// Waits for the next message on the call, or why there is none.
pub async fn next_message(
    events: &mut mpsc::UnboundedReceiver<Event>,
    deadline: Instant,
) -> Result<SipMsg, String> {
    match timeout_at(deadline, events.recv()).await {
        Err(_) => Err("timeout".into()),
        Ok(None) => Err("connection gone".into()),
        Ok(Some(Event::Closed(reason))) => Err(reason),
        Ok(Some(Event::Message(m))) => Ok(m),
    }
}

/// Answers an in-dialog or early request that is not BYE: 200 to OPTIONS/INFO (and a stray
/// ACK needs nothing), 488 to a re-INVITE/UPDATE (not supported), 481 otherwise.
pub fn answer_request(conn: &SipConnection, m: &SipMsg) {
    let code = match m.method() {
        Some("ACK") | None => return,
        Some("OPTIONS") | Some("INFO") => 200,
        Some("INVITE") | Some("UPDATE") => 488,
        Some(_) => 481,
    };
    let _ = conn.send(sip_msg::response(m, code, None, &[], None));
}

/// Sends BYE and waits for its final response; failures go into the report.
pub async fn hang_up(
    conn: &SipConnection,
    dialog: &mut Dialog,
    events: &mut mpsc::UnboundedReceiver<Event>,
    wait: Duration,
    report: &mut CallReport,
) {
    let (bye, cseq) = dialog.request("BYE");
    if let Err(reason) = conn.send(bye) {
        return report.fail(format!("cannot send BYE: {reason}"));
    }
    let deadline = Instant::now() + wait;
    loop {
        match next_message(events, deadline).await {
            Ok(m) => match (m.status(), m.cseq()) {
                (Some(code), Some((n, "BYE"))) if n == cseq && code >= 200 => {
                    if code >= 300 {
                        report.fail(format!("BYE answered {code} {}", sip_msg::reason(code)));
                    }
                    return;
                }
                (Some(_), _) => {}
                (None, _) => {
                    if m.method() == Some("BYE") {
                        // Both ends hung up at once.
                        let _ = conn.send(sip_msg::response(&m, 200, None, &[], None));
                    } else {
                        answer_request(conn, &m);
                    }
                }
            },
            Err(reason) if reason == "timeout" => {
                return report.fail(format!(
                    "no response to BYE within {:.1} s",
                    wait.as_secs_f64()
                ))
            }
            Err(reason) => {
                return report.fail(format!(
                    "connection closed before BYE was answered: {reason}"
                ))
            }
        }
    }
}
