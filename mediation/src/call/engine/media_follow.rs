//! The relay follows a peer that moves its media: a re-offer or answer naming a new RTP
//! address becomes a `MediaCommand::Remote` for that leg (a gateway held to its
//! `media_networks`; a hold with `0.0.0.0` moves nothing).

use super::super::legs::Side;
use super::super::media_plan;
use super::{Engine, MediaCommand, Output, PortAllocator};
use crate::sdp;

impl<P: PortAllocator> Engine<P> {
    /// The peer of leg `side` asks for media where `body`'s audio says (a re-offer, or an
    /// answer to ours): the relay follows when that is a new address. A hold with `0.0.0.0` or
    /// port 0 moves nothing.
    pub(super) fn follow_remote(&mut self, id: u64, side: Side, body: &[u8]) {
        if let Ok(sdp) = sdp::parse(body) {
            self.follow_remote_sdp(id, side, &sdp);
        }
    }

    /// As [`Engine::follow_remote`], from SDP already parsed.
    pub(super) fn follow_remote_sdp(&mut self, id: u64, side: Side, sdp: &sdp::PeerSdp) {
        let Some(audio) = sdp.audio() else {
            return;
        };
        let (Some(rtp), rtcp) = media_plan::remotes(&audio) else {
            return;
        };
        let gateway_leg = self
            .calls
            .get(&id)
            .map(|c| (c.is_gateway_leg(side), c.gateway.clone()));
        if let Some((true, gateway)) = gateway_leg {
            if !self.media_allowed(&gateway, &audio) {
                tracing::warn!(call = id, %rtp, "the gateway moved its media outside its media_networks: not followed");
                return;
            }
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let known = &mut call.media_remotes[side.index()];
        if !call.media_started || *known == Some(rtp) {
            return;
        }
        *known = Some(rtp);
        let leg = call.leg_label(side);
        tracing::info!(call = id, leg, %rtp, "the peer moved its media");
        self.out.push_back(Output::Media(MediaCommand::Remote {
            call: id,
            leg,
            rtp,
            rtcp: rtcp.filter(|_| !audio.rtcp_mux),
        }));
    }
}
