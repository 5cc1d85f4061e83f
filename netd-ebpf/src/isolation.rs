//! Isolation and anti-spoofing: netd-common's rules applied to what the maps say about a
//! bridge port, its network and a packet's destination.

use aya_ebpf::{maps::lpm_trie::Key, programs::TcContext};
use netd_common::isolation::{
    check_arp, check_frame, check_from_outside, check_ipv4_destination, check_ipv4_source,
    DropReason, Endpoint, NetworkPolicy, DIR_FROM_CONTAINER, DIR_TO_CONTAINER, ETH_P_ARP, ETH_P_IP,
    ETH_P_IPV6,
};

use crate::{
    maps::{BRIDGES, ENDPOINTS, NETWORKS, NETWORK_SUBNETS, UPLINKS},
    parse::{self, Arp, Ipv4, L4Packet},
    vip,
};

const ARP_REQUEST: u16 = 1;

/// A packet the datapath refuses, with what its counter needs.
pub struct Drop {
    pub reason: DropReason,
    /// Datapath id of the network concerned, 0 when none is.
    pub network: u32,
    pub direction: u8,
}

/// A bridge port: the container interface behind it and that interface's network.
pub struct Port {
    pub ifindex: u32,
    pub ep: Endpoint,
    pub net: NetworkPolicy,
}

impl Port {
    pub fn drop(&self, reason: DropReason) -> Drop {
        Drop {
            reason,
            network: self.ep.network,
            direction: DIR_FROM_CONTAINER,
        }
    }
}

/// The port `ctx` runs on. A port netd has not described is closed: the control plane writes
/// the endpoint before it attaches the programs.
#[inline(always)]
pub fn port(ctx: &TcContext) -> Result<Port, Drop> {
    // SAFETY: the kernel hands every TC program a valid __sk_buff.
    let ifindex = unsafe { (*ctx.skb.skb).ifindex };
    let unknown = |network| Drop {
        reason: DropReason::UnknownEndpoint,
        network,
        direction: DIR_FROM_CONTAINER,
    };
    // SAFETY: read-only lookups of plain values.
    let ep = *unsafe { ENDPOINTS.get(ifindex) }.ok_or(unknown(0))?;
    let net = *unsafe { NETWORKS.get(ep.network) }.ok_or(unknown(ep.network))?;
    Ok(Port { ifindex, ep, net })
}

/// What the entry points' subprograms for rare packets (ICMP errors, later fragments)
/// return for a packet they leave as it was, to the entry point's own path.
pub const UNTOUCHED: i32 = i32::MIN;

/// Where such a subprogram meets a packet: what a drop is counted against, and whether it
/// sends the packet on itself (at an uplink's egress it is already on its way).
pub struct Seen {
    pub network: u32,
    pub direction: u8,
    pub send_on: bool,
}

impl Seen {
    /// Counts the drop of the packet: the program's action. Inlined: as a subprogram its
    /// stack adds to its caller's, and theirs are near the limit.
    #[inline(always)]
    pub fn drop(&self, ctx: &TcContext, reason: DropReason) -> i32 {
        let drop = Drop {
            reason,
            network: self.network,
            direction: self.direction,
        };
        crate::counters::drop(ctx, &drop)
    }
}

/// What a container sent, once its sender is checked.
pub enum Sent {
    /// IPv4, for translation and the destination rules.
    Ipv4(Ipv4),
    /// An ARP request for a virtual IP of the sender's network, for the datapath to answer.
    ArpForVip(Arp),
    Other,
}

/// What a container sent, before any translation: its own MAC, address and ARP claims, no
/// IPv6 (router advertisements counted apart), and on an `icc=false` network frames for the
/// gateway only.
#[inline(always)]
pub fn check_sender(ctx: &TcContext, port: &Port) -> Result<Sent, Drop> {
    let eth = parse::ethernet(ctx).ok_or(port.drop(DropReason::Malformed))?;
    check_frame(&port.ep, &port.net, &eth.src, &eth.dst, eth.ethertype)
        .map_err(|r| port.drop(r))?;
    match eth.ethertype {
        ETH_P_IP => {
            let ip = parse::ipv4(ctx).ok_or(port.drop(DropReason::Malformed))?;
            check_ipv4_source(&port.ep, ip.saddr_be).map_err(|r| port.drop(r))?;
            Ok(Sent::Ipv4(ip))
        }
        ETH_P_ARP => {
            if let Some(arp) = parse::arp(ctx) {
                check_arp(
                    &port.ep,
                    &port.net,
                    &eth.dst,
                    &arp.sender_mac,
                    arp.sender_be,
                    arp.target_be,
                )
                .map_err(|r| port.drop(r))?;
                if arp.op == ARP_REQUEST
                    && vip::of_network(&port.net, port.ep.network, arp.target_be).is_some()
                {
                    return Ok(Sent::ArpForVip(arp));
                }
            }
            Ok(Sent::Other)
        }
        ETH_P_IPV6 if parse::is_router_advert(ctx) => Err(port.drop(DropReason::RouterAdvert)),
        // Every network is IPv4-only until netd gives containers IPv6 addresses: what a
        // container sends over IPv6 (neighbour discovery, MLD, link-local services) reaches
        // neither the host nor its neighbours.
        ETH_P_IPV6 => Err(port.drop(DropReason::Ipv6Disabled)),
        _ => Ok(Sent::Other),
    }
}

/// Where an untranslated IPv4 packet from the container may go.
#[inline(always)]
pub fn check_destination(port: &Port, ip: &Ipv4, l4: Option<&L4Packet>) -> Result<(), Drop> {
    check_ipv4_destination(
        &port.net,
        ip.daddr_be,
        l4.map(|p| (p.proto, p.dport_be)),
        || network_of(ip.daddr_be).is_some(),
    )
    .map_err(|r| port.drop(r))
}

/// The netd network whose subnet holds `addr_be`.
#[inline(always)]
pub fn network_of(addr_be: u32) -> Option<u32> {
    NETWORK_SUBNETS.get(Key::new(32, addr_be)).copied()
}

/// A packet from outside the host that no translation claimed, for `daddr_be`: container
/// addresses are reachable only on routed networks.
#[inline(always)]
pub fn check_outside_destination(daddr_be: u32) -> Result<(), Drop> {
    let Some(network) = network_of(daddr_be) else {
        return Ok(());
    };
    // SAFETY: read-only lookup of a plain value.
    let Some(net) = (unsafe { NETWORKS.get(network) }) else {
        return Ok(());
    };
    check_from_outside(net, daddr_be).map_err(|reason| Drop {
        reason,
        network,
        direction: DIR_TO_CONTAINER,
    })
}

/// Whether a packet on its way to a container came in through an interface whose own
/// programs already applied netd's rules (a bridge port, a bridge, an uplink), or from the
/// host itself (ingress ifindex 0).
#[inline(always)]
pub fn came_through_netd(ctx: &TcContext) -> bool {
    // SAFETY: the kernel hands every TC program a valid __sk_buff.
    let iif = unsafe { (*ctx.skb.skb).ingress_ifindex };
    // SAFETY: read-only lookups of plain values.
    iif == 0
        || unsafe { ENDPOINTS.get(iif) }.is_some()
        || unsafe { UPLINKS.get(iif) }.is_some()
        || unsafe { BRIDGES.get(iif) }.is_some()
}

/// What reaches a container from an interface netd does not police (another NIC, a tunnel):
/// container addresses take it only on routed networks.
#[inline(always)]
pub fn check_foreign_source(ctx: &TcContext) -> Result<(), Drop> {
    if came_through_netd(ctx) {
        return Ok(());
    }
    if u16::from_be(parse::at::<u16>(ctx, 12).unwrap_or(0)) != ETH_P_IP {
        return Ok(());
    }
    match parse::ipv4(ctx) {
        Some(ip) => check_outside_destination(ip.daddr_be),
        None => Ok(()),
    }
}
