//! One SIP dialog as seen from our side (RFC 3261 §12): the From/To we use in our requests,
//! where they go (remote target and route set), our CSeq, and the Via/Contact of our end of the
//! connection. Builds the in-dialog requests (ACK, BYE) both the caller and the answerer send.

use std::net::SocketAddr;

use crate::options::Transport;
use crate::sip_msg::{self, Body};

/// The value of a Via header for our end of the connection.
pub(crate) fn via(transport: Transport, local: SocketAddr, branch: &str) -> String {
    format!(
        "SIP/2.0/{} {local};branch={branch};rport",
        transport.via_token()
    )
}

/// The value of our Contact header.
pub(crate) fn contact(transport: Transport, local: SocketAddr) -> String {
    format!("<sip:gateway-sim@{local};transport={}>", transport.as_str())
}

/// Our `User-Agent` / `Server` value.
pub(crate) const USER_AGENT: &str = concat!("gateway-sim/", env!("CARGO_PKG_VERSION"));

/// Dialog state for the requests we send.
#[derive(Debug, Clone)]
pub(crate) struct Dialog {
    /// Call-ID.
    pub(crate) call_id: String,
    /// Our party, with our tag: the From of our requests.
    pub(crate) local: String,
    /// Their party, with their tag: the To of our requests.
    pub(crate) remote: String,
    /// Request-URI of our requests (their Contact).
    pub(crate) remote_target: String,
    /// Route headers of our requests, in order.
    pub(crate) route_set: Vec<String>,
    /// CSeq of our last request.
    pub(crate) local_cseq: u32,
    /// SIP transport.
    pub(crate) transport: Transport,
    /// Our end of the connection.
    pub(crate) local_addr: SocketAddr,
}

impl Dialog {
    /// A request with a new branch. `cseq` is the CSeq number to use.
    fn build(&self, method: &str, cseq: u32, body: Body<'_>) -> Vec<u8> {
        self.build_with(method, cseq, &[], body)
    }

    /// A request with a new branch, `extra` headers and `body`.
    fn build_with(
        &self,
        method: &str,
        cseq: u32,
        extra: &[(&str, String)],
        body: Body<'_>,
    ) -> Vec<u8> {
        let mut headers: Vec<(&str, String)> = vec![
            (
                "Via",
                via(self.transport, self.local_addr, &sip_msg::branch()),
            ),
            ("Max-Forwards", "70".into()),
            ("From", self.local.clone()),
            ("To", self.remote.clone()),
            ("Call-ID", self.call_id.clone()),
            ("CSeq", format!("{cseq} {method}")),
        ];
        for route in &self.route_set {
            headers.push(("Route", route.clone()));
        }
        headers.extend(extra.iter().cloned());
        headers.push(("User-Agent", USER_AGENT.into()));
        sip_msg::serialize(
            &format!("{method} {} SIP/2.0", self.remote_target),
            &headers,
            body,
        )
    }

    /// The ACK for a 2xx to our INVITE with CSeq `invite_cseq` (a new transaction).
    pub(crate) fn ack(&self, invite_cseq: u32) -> Vec<u8> {
        self.build("ACK", invite_cseq, None)
    }

    /// A re-INVITE carrying `sdp`, with the next CSeq; returns it and that CSeq.
    pub(crate) fn reinvite(&mut self, sdp: &str) -> (Vec<u8>, u32) {
        self.local_cseq += 1;
        let contact = [("Contact", contact(self.transport, self.local_addr))];
        let body = Some(("application/sdp", sdp.as_bytes()));
        (
            self.build_with("INVITE", self.local_cseq, &contact, body),
            self.local_cseq,
        )
    }

    /// A new request (BYE, ...) with the next CSeq; returns it and that CSeq.
    pub(crate) fn request(&mut self, method: &str) -> (Vec<u8>, u32) {
        self.request_with_body(method, None)
    }

    /// As [`Dialog::request`], carrying `body` (an INFO's DTMF).
    pub(crate) fn request_with_body(&mut self, method: &str, body: Body<'_>) -> (Vec<u8>, u32) {
        self.local_cseq += 1;
        (self.build(method, self.local_cseq, body), self.local_cseq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip_msg::SipMsg;

    #[test]
    fn bye_follows_the_dialog() {
        let mut d = Dialog {
            call_id: "c1".into(),
            local: "<sip:gw@127.0.0.1>;tag=ours".into(),
            remote: "<sip:x@example.test>;tag=theirs".into(),
            remote_target: "sip:mediation@127.0.0.1:5068;transport=tcp".into(),
            route_set: vec!["<sip:p1;lr>".into()],
            local_cseq: 1,
            transport: Transport::Tcp,
            local_addr: "127.0.0.1:40000".parse().unwrap(),
        };
        let (bye, cseq) = d.request("BYE");
        assert_eq!(cseq, 2);
        let m = SipMsg::parse(&bye).unwrap();
        assert_eq!(m.method(), Some("BYE"));
        assert_eq!(m.cseq(), Some((2, "BYE")));
        assert_eq!(m.from_tag(), Some("ours"));
        assert_eq!(m.to_tag(), Some("theirs"));
        assert_eq!(m.header("Route"), Some("<sip:p1;lr>"));
        assert!(m
            .header("Via")
            .unwrap()
            .starts_with("SIP/2.0/TCP 127.0.0.1:40000;branch=z9hG4bK"));
        let ack = SipMsg::parse(&d.ack(1)).unwrap();
        assert_eq!(ack.cseq(), Some((1, "ACK")));
    }
}
