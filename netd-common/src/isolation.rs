//! Isolation between networks, inside networks and against spoofing. The bridge-port programs
//! read these map types and apply these rules; the rules are plain functions, so that the
//! whole isolation matrix is tested on the host.

use crate::nat::{PROTO_TCP, PROTO_UDP};

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
const DNS_PORT: u16 = 53;

/// One container interface, keyed by the ifindex of its host side (a bridge port).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Endpoint {
    /// The only source address the container may use on this interface.
    pub addr_be: u32,
    /// Datapath id of its network: the key of the network map.
    pub network: u32,
    /// The only source MAC it may use.
    pub mac: [u8; 6],
    /// `EP_*` bits.
    pub flags: u8,
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<Endpoint>() == 16);

/// The container is the target of published ports: its replies may need translating
/// whatever their destination.
pub const EP_DNAT_TARGET: u8 = 1 << 0;
/// The container is a backend of a virtual IP: its replies to members are translated back.
pub const EP_VIP_BACKEND: u8 = 1 << 1;

/// Whether a packet from `ep` to `daddr_be` may belong to a translated connection, and so
/// needs a conntrack lookup. Only replies of a published port's or a VIP's target and packets
/// for a host address (the gateway is the only one inside the subnet) can; traffic between
/// members of a network, the bulk of east-west traffic, skips the lookup. (Packets for a VIP
/// are found by the VIP lookup, on networks that have VIPs.)
#[inline(always)]
pub fn may_be_translated(ep: &Endpoint, net: &NetworkPolicy, daddr_be: u32) -> bool {
    ep.flags & (EP_DNAT_TARGET | EP_VIP_BACKEND) != 0
        || !net.contains(daddr_be)
        || daddr_be == net.gateway_be
}
#[cfg(feature = "user")]
unsafe impl aya::Pod for Endpoint {} // repr(C), no padding, any bit pattern valid

/// Where a container's address on a network is delivered: keyed by the address, for the
/// direct path between members of a network.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Member {
    /// The bridge port (host side of the container's veth).
    pub port_ifindex: u32,
    pub network: u32,
    /// The container interface's MAC.
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<Member>() == 16);
#[cfg(feature = "user")]
unsafe impl aya::Pod for Member {} // repr(C), explicit padding, any bit pattern valid

/// Whether a packet the container behind port `from_ifindex` sent to `member`'s address,
/// in a frame for `dst_mac`, goes straight into the member's namespace instead of through
/// the bridge: same network, another port, and addressed to the member's own MAC (any other
/// frame is the bridge's to switch, flood or drop). Asked only once the packet passed every
/// rule.
#[inline(always)]
pub fn delivers_directly(
    ep: &Endpoint,
    from_ifindex: u32,
    member: &Member,
    dst_mac: &[u8; 6],
) -> bool {
    member.network == ep.network && member.port_ifindex != from_ifindex && member.mac == *dst_mac
}

/// Members of the network may not talk to each other (`icc=false`).
pub const NET_ICC_OFF: u32 = 1 << 0;
/// `--internal`: members talk to each other and to the gateway's DNS, nothing else.
pub const NET_INTERNAL: u32 = 1 << 1;
/// `gateway-mode=routed`: the outside may reach members' addresses by routing.
pub const NET_ROUTED: u32 = 1 << 2;
/// The network has virtual IPs: destinations inside its subnet may be one.
pub const NET_VIPS: u32 = 1 << 3;

/// The rules of one bridge network, keyed by its datapath id.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct NetworkPolicy {
    pub subnet_be: u32,
    pub mask_be: u32,
    pub gateway_be: u32,
    /// `NET_*` bits.
    pub flags: u32,
    /// The bridge's own MAC: the only unicast destination of frames on an `icc=false` network.
    pub gateway_mac: [u8; 6],
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<NetworkPolicy>() == 24);
#[cfg(feature = "user")]
unsafe impl aya::Pod for NetworkPolicy {} // repr(C), no padding, any bit pattern valid

impl NetworkPolicy {
    #[inline(always)]
    pub fn contains(&self, addr_be: u32) -> bool {
        addr_be & self.mask_be == self.subnet_be
    }

    #[inline(always)]
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }
}

/// Why the datapath dropped a packet. Stored as a `u8` in [`DropKey`].
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// From a bridge port netd has no endpoint for (fail closed).
    UnknownEndpoint = 1,
    SpoofedMac = 2,
    SpoofedIp = 3,
    /// An ARP packet claiming a MAC or address that is not the sender's.
    SpoofedArp = 4,
    RouterAdvert = 5,
    /// To a container or gateway of another network.
    OtherNetwork = 6,
    /// Between members of an `icc=false` network.
    Icc = 7,
    /// Leaving an internal network, or to a host service other than DNS.
    Internal = 8,
    /// From outside the host straight to a network's address without a published port: a
    /// container's (unless the network is routed) or its gateway's.
    DirectAccess = 9,
    /// An IPv4 header the programs cannot read.
    Malformed = 10,
    /// A translation could not be written into the packet.
    NatRewrite = 11,
    /// Masquerade found no free source port.
    PortsExhausted = 12,
    /// A new connection to a virtual IP that has no backend.
    NoBackend = 13,
    /// A packet of a masqueraded network that masquerade cannot translate (a protocol
    /// without ports, a fragment, a TCP segment of no known connection): it would leave with
    /// the container's private address.
    Untranslatable = 14,
    /// IPv6 from a container on a network without IPv6.
    Ipv6Disabled = 15,
}

impl DropReason {
    pub const ALL: [Self; 15] = [
        Self::UnknownEndpoint,
        Self::SpoofedMac,
        Self::SpoofedIp,
        Self::SpoofedArp,
        Self::RouterAdvert,
        Self::OtherNetwork,
        Self::Icc,
        Self::Internal,
        Self::DirectAccess,
        Self::Malformed,
        Self::NatRewrite,
        Self::PortsExhausted,
        Self::NoBackend,
        Self::Untranslatable,
        Self::Ipv6Disabled,
    ];

    pub fn from_u8(v: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|r| *r as u8 == v)
    }

    /// The label value in `netd stats` and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::UnknownEndpoint => "unknown_endpoint",
            Self::SpoofedMac => "spoofed_mac",
            Self::SpoofedIp => "spoofed_ip",
            Self::SpoofedArp => "spoofed_arp",
            Self::RouterAdvert => "router_advertisement",
            Self::OtherNetwork => "other_network",
            Self::Icc => "icc_disabled",
            Self::Internal => "internal_network",
            Self::DirectAccess => "direct_access",
            Self::Malformed => "malformed",
            Self::NatRewrite => "nat_rewrite",
            Self::PortsExhausted => "ports_exhausted",
            Self::NoBackend => "no_backend",
            Self::Untranslatable => "untranslatable",
            Self::Ipv6Disabled => "ipv6_disabled",
        }
    }
}

/// Sent by a container (seen at its bridge port's ingress).
pub const DIR_FROM_CONTAINER: u8 = 0;
/// On its way to a container or its network.
pub const DIR_TO_CONTAINER: u8 = 1;

pub fn direction_name(direction: u8) -> &'static str {
    if direction == DIR_FROM_CONTAINER {
        "from_container"
    } else {
        "to_container"
    }
}

/// Key of the drop counters: network datapath id (0 when none applies), reason, direction.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DropKey {
    pub network: u32,
    pub reason: u8,
    pub direction: u8,
    pub _pad: [u8; 2],
}
const _: () = assert!(core::mem::size_of::<DropKey>() == 8);
#[cfg(feature = "user")]
unsafe impl aya::Pod for DropKey {} // repr(C), no padding, any bit pattern valid

/// Per-CPU drop counters of one key, summed by the reader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DropCounters {
    pub packets: u64,
    pub bytes: u64,
}
const _: () = assert!(core::mem::size_of::<DropCounters>() == 16);
#[cfg(feature = "user")]
unsafe impl aya::Pod for DropCounters {} // repr(C), no padding, any bit pattern valid

impl DropCounters {
    pub fn merge(&mut self, other: &Self) {
        self.packets += other.packets;
        self.bytes += other.bytes;
    }
}

/// The Ethernet header of a frame a container sent: its own MAC as source and, on an
/// `icc=false` network, the gateway as destination (broadcasts only for ARP and IPv4, whose
/// own rules then apply). On an internal network, only IPv4 and ARP reach the gateway.
#[inline(always)]
pub fn check_frame(
    ep: &Endpoint,
    net: &NetworkPolicy,
    src: &[u8; 6],
    dst: &[u8; 6],
    ethertype: u16,
) -> Result<(), DropReason> {
    if *src != ep.mac {
        return Err(DropReason::SpoofedMac);
    }
    let ip_or_arp = ethertype == ETH_P_IP || ethertype == ETH_P_ARP;
    if *dst == net.gateway_mac {
        if net.has(NET_INTERNAL) && !ip_or_arp {
            return Err(DropReason::Internal);
        }
        return Ok(());
    }
    if net.has(NET_ICC_OFF) && !(*dst == BROADCAST_MAC && ip_or_arp) {
        return Err(DropReason::Icc);
    }
    Ok(())
}

/// An ARP packet a container sent: its own MAC and address as sender (or 0.0.0.0, a probe).
/// On an `icc=false` network a broadcast may only ask for the gateway; what is sent to the
/// gateway's MAC alone (replies to the host, which may ask with any of its addresses) goes.
#[inline(always)]
pub fn check_arp(
    ep: &Endpoint,
    net: &NetworkPolicy,
    frame_dst: &[u8; 6],
    sender_mac: &[u8; 6],
    sender_be: u32,
    target_be: u32,
) -> Result<(), DropReason> {
    if *sender_mac != ep.mac || (sender_be != ep.addr_be && sender_be != 0) {
        return Err(DropReason::SpoofedArp);
    }
    if net.has(NET_ICC_OFF) && *frame_dst != net.gateway_mac && target_be != net.gateway_be {
        return Err(DropReason::Icc);
    }
    Ok(())
}

#[inline(always)]
pub fn check_ipv4_source(ep: &Endpoint, saddr_be: u32) -> Result<(), DropReason> {
    if saddr_be != ep.addr_be {
        return Err(DropReason::SpoofedIp);
    }
    Ok(())
}

/// 255.255.255.255 and 224.0.0.0/4: they stay on the container's segment.
#[inline(always)]
fn is_broadcast_or_multicast(addr_be: u32) -> bool {
    addr_be == u32::MAX || u32::from_be(addr_be) >> 28 == 0xe
}

/// Where an untranslated IPv4 packet from a member of `net` may go. `l4` is the protocol and
/// destination port (network order) when the packet has them; `in_other_network` says whether
/// the destination lies in another netd network (asked only when it matters).
#[inline(always)]
pub fn check_ipv4_destination(
    net: &NetworkPolicy,
    daddr_be: u32,
    l4: Option<(u8, u16)>,
    in_other_network: impl FnOnce() -> bool,
) -> Result<(), DropReason> {
    let internal = net.has(NET_INTERNAL);
    if net.contains(daddr_be) {
        if daddr_be == net.gateway_be {
            let dns = matches!(l4, Some((PROTO_TCP | PROTO_UDP, port)) if port == DNS_PORT.to_be());
            if internal && !dns {
                return Err(DropReason::Internal);
            }
            return Ok(());
        }
        if net.has(NET_ICC_OFF) {
            return Err(DropReason::Icc);
        }
        return Ok(());
    }
    if is_broadcast_or_multicast(daddr_be) {
        if net.has(NET_ICC_OFF) {
            return Err(DropReason::Icc);
        }
        return Ok(());
    }
    if in_other_network() {
        return Err(DropReason::OtherNetwork);
    }
    if internal {
        return Err(DropReason::Internal);
    }
    Ok(())
}

/// A packet from outside the host for an address of `net` that no translation claimed:
/// allowed only to containers of routed networks, never to an internal one. Nor to the
/// gateway: it is the host's address for its containers, and what listens there (the
/// embedded DNS, any host service bound to every address) is theirs, not the LAN's.
#[inline(always)]
pub fn check_from_outside(net: &NetworkPolicy, daddr_be: u32) -> Result<(), DropReason> {
    if daddr_be != net.gateway_be && net.has(NET_ROUTED) && !net.has(NET_INTERNAL) {
        return Ok(());
    }
    Err(DropReason::DirectAccess)
}

#[cfg(test)]
#[path = "isolation_tests.rs"]
mod tests;
