//! Published ports, connection tracking and address translation: map types shared with the
//! datapath, and the pure rules (TCP states, timeouts) it follows.

pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;

/// Key of the published-port map: the host-side destination to rewrite. Network byte order.
/// `addr_be` 0 is a port published on every host address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PortKey {
    pub addr_be: u32,
    pub port_be: u16,
    pub proto: u8,
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<PortKey>() == 8);
#[cfg(feature = "user")]
unsafe impl aya::Pod for PortKey {} // repr(C), no padding, any bit pattern valid

/// Where a published port leads: the container's address and port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PortTarget {
    pub addr_be: u32,
    pub port_be: u16,
    pub _pad: u16,
    /// A field a later build appended (`test-grown-ports`, for the upgrade test only).
    #[cfg(feature = "test-grown-ports")]
    pub _grown: [u32; 2],
}
#[cfg(not(feature = "test-grown-ports"))]
const _: () = assert!(core::mem::size_of::<PortTarget>() == 8);
#[cfg(feature = "test-grown-ports")]
const _: () = assert!(core::mem::size_of::<PortTarget>() == 16);

impl PortTarget {
    pub fn new(addr_be: u32, port_be: u16) -> Self {
        Self {
            addr_be,
            port_be,
            ..bytemuck::Zeroable::zeroed()
        }
    }
}
#[cfg(feature = "user")]
unsafe impl aya::Pod for PortTarget {} // repr(C), no padding, any bit pattern valid

/// A connection-tracking key: the 5-tuple of one direction, as seen on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CtKey {
    pub saddr_be: u32,
    pub daddr_be: u32,
    pub sport_be: u16,
    pub dport_be: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<CtKey>() == 16);
#[cfg(feature = "user")]
unsafe impl aya::Pod for CtKey {} // repr(C), no padding, any bit pattern valid

impl CtKey {
    /// The key of the other direction of the same connection.
    pub fn reversed(&self) -> Self {
        Self {
            saddr_be: self.daddr_be,
            daddr_be: self.saddr_be,
            sport_be: self.dport_be,
            dport_be: self.sport_be,
            proto: self.proto,
            _pad: [0; 3],
        }
    }
}

/// Connection-tracking activity (per CPU, one slot): connections opened, and inserts the
/// table refused even after LRU eviction (the connection then goes to the stack
/// untranslated, and the stack refuses it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CtStats {
    pub opened: u64,
    pub insert_failures: u64,
}
const _: () = assert!(core::mem::size_of::<CtStats>() == 16);
#[cfg(feature = "user")]
unsafe impl aya::Pod for CtStats {} // repr(C), no padding, any bit pattern valid

/// Key of the fragment map: what the fragments of one datagram share (RFC 791). Network
/// byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FragKey {
    pub saddr_be: u32,
    pub daddr_be: u32,
    pub id_be: u16,
    pub proto: u8,
    pub _pad: u8,
}
const _: () = assert!(core::mem::size_of::<FragKey>() == 12);
#[cfg(feature = "user")]
unsafe impl aya::Pod for FragKey {} // repr(C), no padding, any bit pattern valid

/// The ports (or echo identifier) of a fragmented datagram, from its first fragment: the
/// later ones carry none, and are translated with the connection these name.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct FragPorts {
    pub sport_be: u16,
    pub dport_be: u16,
}
const _: () = assert!(core::mem::size_of::<FragPorts>() == 4);
#[cfg(feature = "user")]
unsafe impl aya::Pod for FragPorts {} // repr(C), no padding, any bit pattern valid

/// A connection-tracking entry: how packets matching its key are rewritten (every field, so
/// that one kind of entry serves DNAT, reverse DNAT, SNAT and its reverse), and the state
/// that ages it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CtEntry {
    pub last_seen_ns: u64,
    pub new_saddr_be: u32,
    pub new_daddr_be: u32,
    pub new_sport_be: u16,
    pub new_dport_be: u16,
    /// [`CT_FLAG_REPLY`], [`CT_FLAG_SNAT`], …
    pub flags: u8,
    /// A [`TcpState`] as u8; 0 for UDP.
    pub tcp_state: u8,
    /// When the connection opened, in [`ct_ticks`].
    pub opened_ticks: u16,
}
const _: () = assert!(core::mem::size_of::<CtEntry>() == 24);
#[cfg(feature = "user")]
unsafe impl aya::Pod for CtEntry {} // repr(C), no padding, any bit pattern valid

impl CtEntry {
    /// The key of the other direction of this entry's connection (protocol `proto`): the
    /// reverse of the tuple this entry rewrites to.
    #[inline(always)]
    pub fn partner(&self, proto: u8) -> CtKey {
        CtKey {
            saddr_be: self.new_daddr_be,
            daddr_be: self.new_saddr_be,
            sport_be: self.new_dport_be,
            dport_be: self.new_sport_be,
            proto,
            _pad: [0; 3],
        }
    }
}

/// The entry is for the reply direction of its connection.
pub const CT_FLAG_REPLY: u8 = 1;
/// The connection was masqueraded (source NAT to an uplink address).
pub const CT_FLAG_SNAT: u8 = 2;
/// The connection goes through a published port (or a VIP, with [`CT_FLAG_VIP`]).
pub const CT_FLAG_DNAT: u8 = 4;
/// The connection goes to a virtual IP's backend.
pub const CT_FLAG_VIP: u8 = 8;
/// A host socket's own UDP flow from a published port's number (bound to it explicitly):
/// recorded untranslated, so that its replies reach the socket, not the port's container.
pub const CT_FLAG_HOST: u8 = 16;

/// On the forward entry of a pending UDP or ICMP connection: it has seen a reply.
pub const CT_FLAG_REPLIED: u8 = 32;

/// Conntrack's coarse clock: ticks of 2^28 ns (about 0.27 s) in 16 bits, which wrap after
/// about 4.9 hours. Enough to tell the age of a pending connection in an entry's spare bytes.
#[inline(always)]
pub fn ct_ticks(now_ns: u64) -> u16 {
    (now_ns >> 28) as u16
}

/// How long a UDP or ICMP connection must have lived, answered, to count as established:
/// about 2.1 s, as Linux's conntrack waits 2 s before it calls a UDP flow assured.
pub const ESTABLISHED_AFTER_TICKS: u16 = 8;

/// Whether a pending UDP or ICMP connection that opened at `opened` (in [`ct_ticks`]) is
/// established by a packet at `now`: it has seen a reply and still has traffic about two
/// seconds after it opened. A flood that its target answers once (a DNS query from a spoofed
/// source) then stays pending, like one nobody answers. Wrapping: a connection pending for
/// longer than the clock's range may wait one more round of it.
#[inline(always)]
pub fn datagram_established(opened: u16, now: u16, replied: bool) -> bool {
    replied && now.wrapping_sub(opened) >= ESTABLISHED_AFTER_TICKS
}

/// Key of the published-port counters: the container side of a publication and its host port
/// (with the protocol, they identify the publication; the host address may be any of the
/// host's when it is 0.0.0.0). Network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PortStatsKey {
    pub target_addr_be: u32,
    pub target_port_be: u16,
    pub host_port_be: u16,
    pub proto: u8,
    pub _pad: [u8; 3],
}
const _: () = assert!(core::mem::size_of::<PortStatsKey>() == 12);
#[cfg(feature = "user")]
unsafe impl aya::Pod for PortStatsKey {} // repr(C), no padding, any bit pattern valid

/// Traffic of one published port: `in` is what clients sent to the container, `out` its
/// replies. Per-CPU, summed by the reader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PortStats {
    pub in_packets: u64,
    pub in_bytes: u64,
    pub out_packets: u64,
    pub out_bytes: u64,
    pub connections: u64,
}
const _: () = assert!(core::mem::size_of::<PortStats>() == 40);
#[cfg(feature = "user")]
unsafe impl aya::Pod for PortStats {} // repr(C), no padding, any bit pattern valid

impl PortStats {
    /// Adds another CPU's share.
    pub fn merge(&mut self, o: &Self) {
        self.in_packets += o.in_packets;
        self.in_bytes += o.in_bytes;
        self.out_packets += o.out_packets;
        self.out_bytes += o.out_bytes;
        self.connections += o.connections;
    }
}

/// TCP connection states, as far as timeouts care.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpState {
    None = 0,
    SynSent = 1,
    Established = 2,
    Closing = 3,
}

impl TcpState {
    pub fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::SynSent,
            2 => Self::Established,
            3 => Self::Closing,
            _ => Self::None,
        }
    }
}

pub const TCP_FLAG_FIN: u8 = 0x01;
pub const TCP_FLAG_SYN: u8 = 0x02;
pub const TCP_FLAG_RST: u8 = 0x04;
pub const TCP_FLAG_ACK: u8 = 0x10;

/// The state after a segment with `flags`, seen in the reply direction or not.
#[inline(always)]
pub fn tcp_next(state: TcpState, flags: u8, reply: bool) -> TcpState {
    if flags & (TCP_FLAG_FIN | TCP_FLAG_RST) != 0 {
        return TcpState::Closing;
    }
    match state {
        TcpState::None | TcpState::SynSent if reply && flags & TCP_FLAG_ACK != 0 => {
            TcpState::Established
        }
        TcpState::None if flags & TCP_FLAG_SYN != 0 => TcpState::SynSent,
        s => s,
    }
}

const SECOND: u64 = 1_000_000_000;

/// How long an idle entry lives, by protocol and state (Linux conntrack's spirit, shorter).
pub fn timeout_ns(proto: u8, state: TcpState) -> u64 {
    match (proto, state) {
        (PROTO_TCP, TcpState::Established) => 6 * 3600 * SECOND,
        (PROTO_TCP, TcpState::Closing) => 10 * SECOND,
        (PROTO_TCP, _) => 60 * SECOND,
        _ => 120 * SECOND,
    }
}

/// Minimum interval between two `last_seen_ns` writes of one entry, so that busy flows do
/// not bounce the entry's cache line between CPUs on every packet.
pub const LAST_SEEN_GRANULARITY_NS: u64 = SECOND;

/// Host information the programs need, in slot 0 of the config array.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct DatapathConfig {
    /// Network namespace cookie of the daemon: socket hooks only translate its sockets.
    pub netns_cookie: u64,
}
const _: () = assert!(core::mem::size_of::<DatapathConfig>() == 8);
#[cfg(feature = "user")]
unsafe impl aya::Pod for DatapathConfig {} // repr(C), no padding, any bit pattern valid

/// An uplink interface and the address masqueraded connections leave with.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Uplink {
    pub addr_be: u32,
}
#[cfg(feature = "user")]
unsafe impl aya::Pod for Uplink {} // repr(C), no padding, any bit pattern valid

/// First and last source port masquerade picks from (host order).
pub const SNAT_PORT_MIN: u16 = 32768;
pub const SNAT_PORT_MAX: u16 = 60999;
/// Candidate ports tried before a masqueraded connection is dropped.
pub const SNAT_TRIES: u32 = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_handshake_and_close() {
        let s = tcp_next(TcpState::None, TCP_FLAG_SYN, false);
        assert_eq!(s, TcpState::SynSent);
        let s = tcp_next(s, TCP_FLAG_SYN | TCP_FLAG_ACK, true);
        assert_eq!(s, TcpState::Established);
        assert_eq!(tcp_next(s, TCP_FLAG_ACK, false), TcpState::Established);
        assert_eq!(
            tcp_next(s, TCP_FLAG_FIN | TCP_FLAG_ACK, false),
            TcpState::Closing
        );
        assert_eq!(
            tcp_next(TcpState::SynSent, TCP_FLAG_RST, true),
            TcpState::Closing
        );
        assert_eq!(
            tcp_next(TcpState::SynSent, TCP_FLAG_ACK, false),
            TcpState::SynSent
        );
    }

    #[test]
    fn a_datagram_flow_is_established_answered_and_two_seconds_on() {
        let second = 1_000_000_000u64;
        let opened = ct_ticks(10 * second);
        // Answered at once, then nothing: a query from a spoofed source stays pending.
        assert!(!datagram_established(
            opened,
            ct_ticks(10 * second + 1),
            true
        ));
        assert!(!datagram_established(opened, ct_ticks(11 * second), true));
        // Traffic two seconds on, once answered.
        assert!(datagram_established(opened, ct_ticks(13 * second), true));
        // Never answered, however old.
        assert!(!datagram_established(opened, ct_ticks(100 * second), false));
        // Across the clock's wrap.
        let late = u64::from(u16::MAX) << 28;
        assert!(datagram_established(
            ct_ticks(late),
            ct_ticks(late + 3 * second),
            true
        ));
        assert!(!datagram_established(
            ct_ticks(late),
            ct_ticks(late + second),
            true
        ));
    }

    #[test]
    fn timeouts_by_state() {
        assert!(
            timeout_ns(PROTO_TCP, TcpState::Established) > timeout_ns(PROTO_TCP, TcpState::SynSent)
        );
        assert!(timeout_ns(PROTO_TCP, TcpState::Closing) < timeout_ns(PROTO_UDP, TcpState::None));
    }

    #[test]
    fn reversing_twice_is_identity() {
        let k = CtKey {
            saddr_be: 1,
            daddr_be: 2,
            sport_be: 3,
            dport_be: 4,
            proto: PROTO_TCP,
            _pad: [0; 3],
        };
        assert_eq!(k.reversed().reversed(), k);
        assert_eq!(k.reversed().saddr_be, 2);
    }
}

/// Key of the socket reverse-translation map: a socket (by cookie) and the container
/// address it was sent to instead of the published one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SockKey {
    pub cookie: u64,
    pub addr_be: u32,
    pub port_be: u16,
    pub _pad: u16,
}
const _: () = assert!(core::mem::size_of::<SockKey>() == 16);
#[cfg(feature = "user")]
unsafe impl aya::Pod for SockKey {} // repr(C), no padding, any bit pattern valid

/// The published address a socket asked for, given back by getpeername and recvmsg.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SockOrig {
    pub addr_be: u32,
    pub port_be: u16,
    pub _pad: u16,
}
const _: () = assert!(core::mem::size_of::<SockOrig>() == 8);
#[cfg(feature = "user")]
unsafe impl aya::Pod for SockOrig {} // repr(C), no padding, any bit pattern valid
