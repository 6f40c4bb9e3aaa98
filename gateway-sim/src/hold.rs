//! Putting a call on hold and resuming it ourselves (`call --hold-at --resume-at`): at each
//! time a re-INVITE (`a=sendonly`, then `a=sendrecv`) with our current keys, its ACK, what the
//! answer changes for the media, and the outcome in the call's report.

use mediation::sdp::Direction;
use tokio::time::Instant;

use crate::dialog::Dialog;
use crate::in_dialog::Reoffers;
use crate::reoffer::{check_reanswer, make_reoffer, SdpState};
use crate::report::{CallReport, Reinvite};
use crate::rtp_stream::MediaHandle;
use crate::sip_msg::SipMsg;
use crate::ua::SipConnection;

/// A re-INVITE of ours waiting for its final response.
#[derive(Debug)]
struct Pending {
    cseq: u32,
    offered: SdpState,
    /// Its entry in the report's `reinvites`.
    index: usize,
}

/// The hold and resume re-INVITEs of one call.
#[derive(Debug)]
pub(crate) struct HoldDriver {
    /// What is still to send, earliest first.
    steps: Vec<(Instant, Direction)>,
    pending: Option<Pending>,
}

impl HoldDriver {
    /// Hold at `hold_at` and resume at `resume_at`, both counted from `start` (the ACK).
    pub(crate) fn new(
        start: Instant,
        hold_at: Option<std::time::Duration>,
        resume_at: Option<std::time::Duration>,
    ) -> Self {
        let mut steps: Vec<(Instant, Direction)> = hold_at
            .map(|d| (start + d, Direction::SendOnly))
            .into_iter()
            .chain(resume_at.map(|d| (start + d, Direction::SendRecv)))
            .collect();
        steps.sort_by_key(|(at, _)| *at);
        steps.reverse(); // popped from the end
        Self {
            steps,
            pending: None,
        }
    }

    /// When the next re-INVITE is due (none while one is pending).
    pub(crate) fn next_due(&self) -> Option<Instant> {
        match self.pending {
            Some(_) => None,
            None => self.steps.last().map(|(at, _)| *at),
        }
    }

    /// Sends the due re-INVITE.
    pub(crate) fn fire(
        &mut self,
        conn: &SipConnection,
        dialog: &mut Dialog,
        reoffers: &Reoffers,
        report: &mut CallReport,
    ) {
        let Some((_, direction)) = self.steps.pop() else {
            return;
        };
        let (sdp, offered) = make_reoffer(&reoffers.state, direction);
        let (invite, cseq) = dialog.reinvite(&sdp);
        report.reinvites.push(Reinvite {
            purpose: purpose(direction).into(),
            direction: direction.as_str().into(),
            status: None,
            answer_direction: None,
        });
        let index = report.reinvites.len() - 1;
        if let Err(reason) = conn.send(invite) {
            return report.fail(format!(
                "cannot send the {} re-INVITE: {reason}",
                purpose(direction)
            ));
        }
        self.pending = Some(Pending {
            cseq,
            offered,
            index,
        });
    }

    /// Takes a response; true if it was the final response to our pending re-INVITE.
    pub(crate) fn on_response(
        &mut self,
        conn: &SipConnection,
        dialog: &Dialog,
        m: &SipMsg,
        reoffers: &mut Reoffers,
        media: &MediaHandle,
        report: &mut CallReport,
    ) -> bool {
        let (Some(code), Some((cseq, "INVITE"))) = (m.status(), m.cseq()) else {
            return false;
        };
        let Some(pending) = self.pending.take_if(|p| p.cseq == cseq && code >= 200) else {
            return false;
        };
        let entry = &mut report.reinvites[pending.index];
        entry.status = Some(code);
        let what = entry.purpose.clone();
        if code >= 300 {
            let _ = conn.send(dialog.ack(cseq));
            report.fail(format!("the {what} re-INVITE was answered {code}"));
            return true;
        }
        // New keys in the answer go to the media task before the ACK goes out: a peer that
        // switches to them on our ACK must find us ready.
        match check_reanswer(&pending.offered, &m.body) {
            Ok((state, change)) => {
                entry.answer_direction = mediation::sdp::parse(&m.body)
                    .ok()
                    .and_then(|sdp| sdp.audio())
                    .map(|a| a.direction.as_str().to_string());
                reoffers.state = state;
                media.update(change);
                let _ = conn.send(dialog.ack(cseq));
            }
            Err(reason) => {
                let _ = conn.send(dialog.ack(cseq));
                report.fail(format!("the answer to the {what} re-INVITE: {reason}"));
            }
        }
        true
    }

    /// At the end of the call: a re-INVITE still unanswered, or never sent, fails the call.
    pub(crate) fn finish(&self, report: &mut CallReport) {
        if let Some(p) = &self.pending {
            let what = report.reinvites[p.index].purpose.clone();
            report.fail(format!("no final response to the {what} re-INVITE"));
        }
        if let Some((_, direction)) = self.steps.last() {
            report.fail(format!(
                "the call ended before the {} re-INVITE was due",
                purpose(*direction)
            ));
        }
    }
}

fn purpose(direction: Direction) -> &'static str {
    match direction {
        Direction::SendRecv => "resume",
        _ => "hold",
    }
}
