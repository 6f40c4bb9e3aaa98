//! Sending one INFO with a DTMF digit in a call we placed (`call --info-at`), as PBXs and
//! gateways send keypresses out of band (`application/dtmf-relay`), and checking its answer:
//! its final status goes into the call's report, and anything but a 2xx fails the call.

use tokio::time::Instant;

use crate::dialog::Dialog;
use crate::report::CallReport;
use crate::sip_msg::SipMsg;
use crate::ua::SipConnection;

/// The digit we send: 5, for 160 ms.
pub(crate) const DTMF_RELAY: &str = "Signal=5\r\nDuration=160\r\n";

/// The INFO of one call: when it is due, then its CSeq until it is answered.
#[derive(Debug)]
pub(crate) struct InfoDriver {
    due: Option<Instant>,
    pending: Option<u32>,
}

impl InfoDriver {
    /// An INFO `at` after `start` (the ACK), or none.
    pub(crate) fn new(start: Instant, at: Option<std::time::Duration>) -> Self {
        Self {
            due: at.map(|d| start + d),
            pending: None,
        }
    }

    /// When the INFO is due, if it is still to send.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due
    }

    /// Sends the INFO.
    pub(crate) fn fire(
        &mut self,
        conn: &SipConnection,
        dialog: &mut Dialog,
        report: &mut CallReport,
    ) {
        self.due = None;
        let body = Some(("application/dtmf-relay", DTMF_RELAY.as_bytes()));
        let (info, cseq) = dialog.request_with_body("INFO", body);
        match conn.send(info) {
            Ok(()) => self.pending = Some(cseq),
            Err(reason) => report.fail(format!("cannot send the INFO: {reason}")),
        }
    }

    /// Takes a response; true if it answered our INFO (a final one is recorded).
    pub(crate) fn on_response(&mut self, m: &SipMsg, report: &mut CallReport) -> bool {
        let (Some(code), Some((cseq, "INFO"))) = (m.status(), m.cseq()) else {
            return false;
        };
        if self.pending != Some(cseq) {
            return false;
        }
        if code >= 200 {
            self.pending = None;
            report.info_status = Some(code);
            if code >= 300 {
                report.fail(format!("the INFO was answered {code}"));
            }
        }
        true
    }

    /// At the end of the call: an INFO unanswered, or never sent, fails the call.
    pub(crate) fn finish(&self, report: &mut CallReport) {
        if self.pending.is_some() {
            report.fail("no final response to the INFO");
        } else if self.due.is_some() {
            report.fail("the call ended before the INFO was due");
        }
    }
}
