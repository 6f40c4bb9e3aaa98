//! The call layer's entry point: receives every message the connections hand over and owns the
//! table of live connections. Until the B2BUA lands it refuses calls with `501`.

use std::collections::HashMap;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;
use crate::sip;
use crate::transport::{ConnId, SipEvent, SERVER};

/// Runs until `shutdown` turns true or every connection sender is gone.
pub async fn run(
    mut events: mpsc::Receiver<SipEvent>,
    metrics: Metrics,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns: HashMap<ConnId, mpsc::Sender<Bytes>> = HashMap::new();
    loop {
        let event = tokio::select! {
            e = events.recv() => match e { Some(e) => e, None => return },
            _ = shutdown.changed() => return,
        };
        match event {
            SipEvent::Opened { conn, out, .. } => {
                conns.insert(conn, out);
            }
            SipEvent::Closed { conn } => {
                conns.remove(&conn);
            }
            SipEvent::Message {
                conn,
                msg: rsip::SipMessage::Request(req),
            } => {
                metrics
                    .sip_requests
                    .with_label_values(&[&req.method.to_string()])
                    .inc();
                if req.method == rsip::Method::Ack {
                    continue;
                }
                let extras = sip::ResponseExtras {
                    to_tag: Some("mediation"),
                    server: Some(SERVER),
                    headers: &[],
                };
                let reply = sip::response_for_request(&req, 501, "Not Implemented", &extras);
                if let (Some(out), Some(reply)) = (conns.get(&conn), reply) {
                    let _ = out.send(Bytes::from(reply)).await;
                }
            }
            SipEvent::Message { .. } => {}
        }
    }
}
