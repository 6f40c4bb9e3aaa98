//! What both ends do the same way inside a call: wait for the next message of the call, answer
//! requests that do not change it (OPTIONS, INFO, MESSAGE, NOTIFY), answer in-dialog offers (re-INVITE, UPDATE)
//! as a gateway does ([`Reoffers`], rules in [`crate::reoffer`]), and hang up with BYE and wait
//! for its answer.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};

use crate::dialog::{Dialog, USER_AGENT};
use crate::reoffer::{answer_reoffer, check_reanswer, MediaChange, Reanswer, SdpState};
use crate::report::CallReport;
use crate::rtp_stream::MediaHandle;
use crate::sip_msg::{self, SipMsg};
use crate::ua::{Event, SipConnection};

/// Waits for the next message on the call, or why there is none.
pub(crate) async fn next_message(
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

/// Answers an in-dialog or early request that is not BYE: 200 to OPTIONS, INFO, MESSAGE and
/// NOTIFY (and a stray ACK needs nothing), 488 to a re-INVITE/UPDATE before the call is up (an
/// established call answers them with [`Reoffers`]), 481 otherwise.
pub(crate) fn answer_request(conn: &SipConnection, m: &SipMsg) {
    let code = match m.method() {
        Some("ACK") | None => return,
        Some("OPTIONS" | "INFO" | "MESSAGE" | "NOTIFY") => 200,
        Some("INVITE") | Some("UPDATE") => 488,
        Some(_) => 481,
    };
    let _ = conn.send(sip_msg::response(m, code, None, &[], None));
}

/// Sends BYE and waits for its final response; failures go into the report.
pub(crate) async fn hang_up(
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

/// The offer/answer state of an established call and the answers to the peer's re-offers.
#[derive(Debug)]
pub(crate) struct Reoffers {
    /// The call's SDP state now.
    pub(crate) state: SdpState,
    /// Our offer in a 200 to a re-INVITE without SDP; its answer comes in the ACK.
    awaiting_ack: Option<SdpState>,
    /// Answer with a fresh key of ours.
    rekey: bool,
    /// Our new send key, used once the ACK shows the peer has our answer (re-INVITE).
    deferred_key: Option<MediaChange>,
    /// Our Contact.
    contact: String,
}

impl Reoffers {
    /// The state after set-up.
    pub(crate) fn new(state: SdpState, rekey: bool, contact: String) -> Self {
        Self {
            state,
            awaiting_ack: None,
            rekey,
            deferred_key: None,
            contact,
        }
    }

    /// Handles a request of the established call other than BYE.
    pub(crate) fn on_request(
        &mut self,
        conn: &SipConnection,
        m: &SipMsg,
        media: &MediaHandle,
        report: &mut CallReport,
    ) {
        match m.method() {
            Some("INVITE") | Some("UPDATE") => self.on_offer(conn, m, media, report),
            Some("ACK") => self.on_ack(m, media, report),
            _ => answer_request(conn, m),
        }
    }

    fn ok(&self, m: &SipMsg, sdp: Option<&str>) -> Vec<u8> {
        sip_msg::response(
            m,
            200,
            None,
            &[
                ("Contact", self.contact.clone()),
                ("Server", USER_AGENT.into()),
            ],
            sdp.map(|s| ("application/sdp", s.as_bytes())),
        )
    }

    /// A re-INVITE or UPDATE: a refresh without SDP, else an offer to answer.
    fn on_offer(
        &mut self,
        conn: &SipConnection,
        m: &SipMsg,
        media: &MediaHandle,
        report: &mut CallReport,
    ) {
        let is_invite = m.method() == Some("INVITE");
        if m.body.is_empty() {
            // UPDATE: a session refresh, 200 without SDP. re-INVITE: our SDP is the offer,
            // the answer comes in the ACK.
            let sdp = is_invite.then(|| self.state.sdp());
            if is_invite {
                self.awaiting_ack = Some(self.state.clone());
            }
            let _ = conn.send(self.ok(m, sdp.as_deref()));
            report.reoffers_answered += 1;
            return;
        }
        match answer_reoffer(&self.state, &m.body, self.rekey) {
            Reanswer::Accept {
                sdp,
                state,
                mut change,
            } => {
                let _ = conn.send(self.ok(m, Some(&sdp)));
                self.state = *state;
                if is_invite && change.new_ours.is_some() {
                    // Packets under our new key before the peer has the answer would not
                    // authenticate there: switch on the ACK.
                    self.deferred_key = Some(MediaChange {
                        new_ours: change.new_ours.take(),
                        new_theirs: None,
                        ..change.clone()
                    });
                }
                media.update(change);
                report.reoffers_answered += 1;
            }
            Reanswer::Reject(reason) => {
                let warning = format!("399 gateway-sim \"{}\"", reason.replace('"', "'"));
                let _ = conn.send(sip_msg::response(
                    m,
                    488,
                    None,
                    &[("Warning", warning)],
                    None,
                ));
                report.reoffers_refused += 1;
            }
        }
    }

    /// The ACK of a 200 in which we made the offer carries the answer.
    fn on_ack(&mut self, m: &SipMsg, media: &MediaHandle, report: &mut CallReport) {
        if let Some(change) = self.deferred_key.take() {
            media.update(change);
        }
        let Some(offered) = self.awaiting_ack.take() else {
            return;
        };
        if m.body.is_empty() {
            return report.fail("the ACK to our offer in a 200 carries no answer");
        }
        match check_reanswer(&offered, &m.body) {
            Ok((state, change)) => {
                self.state = state;
                media.update(change);
            }
            Err(reason) => report.fail(format!("the answer in the ACK: {reason}")),
        }
    }
}
