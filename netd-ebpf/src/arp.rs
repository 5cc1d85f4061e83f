//! The ARP responder for virtual IPs: no interface owns a VIP, so the datapath answers a
//! member's request for one with the gateway's MAC, and the member's packets for the VIP come
//! to the bridge port, where they are translated.

use aya_ebpf::{helpers::bpf_redirect, programs::TcContext};

use crate::{
    isolation::Port,
    parse::{Arp, ETH_HLEN},
};

const ARP_REPLY: u16 = 2;
/// Offset of the operation in the ARP header; sender and target follow it.
const ARP_OP: usize = 6;

/// Turns the request `req` into the reply and sends it back to the container. The frame is
/// rewritten in place: its length and the rest of the header stay as they are.
#[inline(always)]
pub fn answer(ctx: &TcContext, port: &Port, req: &Arp) -> Option<i32> {
    let gw = port.net.gateway_mac;
    let mut eth = [0u8; 12];
    eth[..6].copy_from_slice(&req.sender_mac);
    eth[6..].copy_from_slice(&gw);
    ctx.store(0, &eth, 0).ok()?;
    // op, sender MAC and address, target MAC and address.
    let mut body = [0u8; 22];
    body[..2].copy_from_slice(&ARP_REPLY.to_be_bytes());
    body[2..8].copy_from_slice(&gw);
    body[8..12].copy_from_slice(&req.target_be.to_ne_bytes());
    body[12..18].copy_from_slice(&req.sender_mac);
    body[18..22].copy_from_slice(&req.sender_be.to_ne_bytes());
    ctx.store(ETH_HLEN + ARP_OP, &body, 0).ok()?;
    // SAFETY: the kernel hands every TC program a valid __sk_buff.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    // Out of the port it came in on: to the container. SAFETY: plain helper call.
    Some(unsafe { bpf_redirect(ifindex, 0) } as i32)
}
