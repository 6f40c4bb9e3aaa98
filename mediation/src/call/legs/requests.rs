//! How our side writes each leg's dialog: responses to the caller's INVITE and to re-offers,
//! and our requests in either dialog (BYE, ACK, CANCEL, refreshes, relayed requests) with the
//! leg's tags, CSeq, Route set and a fresh branch from the call's generator.

use bytes::Bytes;

use super::super::session_timer::LegTimer;
use super::{ALeg, BLeg, Call, Side};
use crate::sip::outgoing::{branch, Outgoing, ReceivedRequest};

impl Call {
    /// Our response to a re-offer (re-INVITE or UPDATE) on a leg, in that leg's dialog; a 2xx
    /// carries our Contact, Allow and the session timer (RFC 4028 §9).
    pub(crate) fn reoffer_response(
        &self,
        side: Side,
        request: &ReceivedRequest,
        code: u16,
        reason: &str,
        timer: Option<(LegTimer, bool)>,
    ) -> Outgoing {
        let (tag, local) = match side {
            Side::Callee => (&self.b.local_tag, &self.b.local),
            Side::Caller => (&self.a.local_tag, &self.a.local),
        };
        let out = request.respond(code, reason, tag);
        if code >= 300 {
            return out;
        }
        out.header("Contact", local.contact.clone())
            .header("Allow", crate::sip::ALLOW)
            .session_expires(
                timer.map(|(t, _)| t.header(false)),
                timer.is_some_and(|(_, require)| require),
            )
    }

    /// A request within the B dialog (BYE; ACK for a 2xx uses [`Call::b_ack`]).
    pub(crate) fn b_request(&mut self, method: &str) -> Bytes {
        self.b_new_request(method).encode()
    }

    /// A new request within the B dialog (before the answer, its early dialog), its CSeq
    /// taken, for more headers to be added.
    pub(crate) fn b_new_request(&mut self, method: &str) -> Outgoing {
        self.b.local_cseq += 1;
        let cseq = self.b.local_cseq;
        let branch = branch(&mut self.rng);
        let b = &self.b;
        let dialog = match (&b.remote_tag, &b.early_dialog) {
            (None, Some((tag, target))) => (Some(tag.as_str()), target.as_deref()),
            _ => (b.remote_tag.as_deref(), b.remote_target.as_deref()),
        };
        b_dialog_request(b, method, cseq, dialog, branch)
    }

    /// ACK for the 2xx to our INVITE with CSeq number `cseq` (its own transaction).
    pub(crate) fn b_ack(&mut self, cseq: u32) -> Bytes {
        let branch = branch(&mut self.rng);
        let b = &self.b;
        b_dialog_request(
            b,
            "ACK",
            cseq,
            (b.remote_tag.as_deref(), b.remote_target.as_deref()),
            branch,
        )
        .encode()
    }

    /// ACK and BYE for the dialog a second fork set up with its 2xx (tag `tag`, Contact
    /// `target`): we keep the first answer and end the other (RFC 3261 §13.2.2.4).
    pub(crate) fn b_end_fork(&mut self, tag: &str, target: Option<&str>) -> [Bytes; 2] {
        let branches = [branch(&mut self.rng), branch(&mut self.rng)];
        let [ack, bye] = branches;
        let b = &self.b;
        [
            b_dialog_request(b, "ACK", 1, (Some(tag), target), ack).encode(),
            b_dialog_request(b, "BYE", 2, (Some(tag), target), bye).encode(),
        ]
    }

    /// ACK for a non-2xx final answer to our INVITE, or CANCEL of it: same transaction (branch,
    /// Request-URI, CSeq number), RFC 3261 §17.1.1.3 and §9.1.
    pub(crate) fn b_same_transaction(&self, method: &str, to_tag: Option<&str>) -> Bytes {
        let b = &self.b;
        let to = match to_tag {
            Some(tag) => format!("{};tag={tag}", b.to),
            None => b.to.clone(),
        };
        Outgoing::request(method, &b.uri)
            .header("Via", format!("{};branch={}", b.local.via, b.branch))
            .header("Max-Forwards", "70")
            .header("From", b.from.clone())
            .header("To", to)
            .header("Call-ID", b.call_id.clone())
            .header("CSeq", format!("1 {method}"))
            .encode()
    }

    /// ACK for a non-2xx answer to our in-dialog re-INVITE on leg `side`: the re-INVITE's
    /// transaction (branch, CSeq number), RFC 3261 §17.1.1.3.
    pub(crate) fn same_transaction_ack(
        &self,
        side: Side,
        cseq: u32,
        branch: &str,
        to_tag: Option<&str>,
    ) -> Bytes {
        let ack = match side {
            Side::Callee => {
                let b = &self.b;
                b_dialog_request(
                    b,
                    "ACK",
                    cseq,
                    (
                        to_tag.or(b.remote_tag.as_deref()),
                        b.remote_target.as_deref(),
                    ),
                    branch.to_string(),
                )
            }
            Side::Caller => a_dialog_request(&self.a, "ACK", cseq, branch.to_string()),
        };
        ack.encode()
    }

    /// A request within the A dialog (we are the callee there): BYE.
    pub(crate) fn a_request(&mut self, method: &str) -> Bytes {
        self.a_new_request(method).encode()
    }

    /// A new request within the A dialog, its CSeq taken, for more headers to be added.
    pub(crate) fn a_new_request(&mut self, method: &str) -> Outgoing {
        self.a.local_cseq += 1;
        let cseq = self.a.local_cseq;
        self.a_dialog_request(method, cseq)
    }

    /// A request within the A dialog with CSeq number `cseq` (ACK repeats its INVITE's).
    pub(crate) fn a_dialog_request(&mut self, method: &str, cseq: u32) -> Outgoing {
        let branch = branch(&mut self.rng);
        a_dialog_request(&self.a, method, cseq, branch)
    }

    /// A response to the A leg's INVITE.
    pub(crate) fn a_response(&self, code: u16, reason: &str) -> Outgoing {
        self.a.invite.respond(code, reason, &self.a.local_tag)
    }
}

/// A request in the A dialog (we are the callee there) with the given CSeq and Via branch.
fn a_dialog_request(a: &ALeg, method: &str, cseq: u32, branch: String) -> Outgoing {
    Outgoing::request(method, &a.remote_target)
        .header("Via", format!("{};branch={branch}", a.local.via))
        .header("Max-Forwards", "70")
        .header(
            "From",
            format!(
                "{};tag={}",
                crate::sip::outgoing::without_tag(a.invite.to()),
                a.local_tag
            ),
        )
        .header("To", a.invite.from().to_string())
        .header("Call-ID", a.call_id.clone())
        .header("CSeq", format!("{cseq} {method}"))
}

/// A request in the B dialog with the given CSeq, remote tag and target (the Request-URI of the
/// INVITE until the callee's Contact is known).
fn b_dialog_request(
    b: &BLeg,
    method: &str,
    cseq: u32,
    (tag, target): (Option<&str>, Option<&str>),
    branch: String,
) -> Outgoing {
    let target = target.unwrap_or(&b.uri);
    let to = match tag {
        Some(tag) => format!("{};tag={tag}", b.to),
        None => b.to.clone(),
    };
    let mut m =
        Outgoing::request(method, target).header("Via", format!("{};branch={branch}", b.local.via));
    for route in &b.route_set {
        m = m.header("Route", route.clone());
    }
    m.header("Max-Forwards", "70")
        .header("From", b.from.clone())
        .header("To", to)
        .header("Call-ID", b.call_id.clone())
        .header("CSeq", format!("{cseq} {method}"))
}
