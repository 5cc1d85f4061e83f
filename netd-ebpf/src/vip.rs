//! Virtual IPs of aliases: a new connection to a VIP goes to one backend, picked by the VIP's
//! algorithm; conntrack keeps every later packet of the connection on that backend.

use core::intrinsics::{atomic_xadd, AtomicOrdering};

use aya_ebpf::helpers::bpf_get_prandom_u32;
use netd_common::{
    isolation::{DropReason, NetworkPolicy, NET_ICC_OFF, NET_VIPS},
    lb::{maglev_slot, NO_BACKEND},
    nat::{CtKey, CT_FLAG_DNAT, CT_FLAG_VIP, PROTO_TCP, TCP_FLAG_ACK, TCP_FLAG_SYN},
    vip::{Algorithm, Vip, VipSlot},
};

use crate::{
    conntrack,
    maps::{VIPS, VIP_BACKENDS, VIP_CONNECTIONS, VIP_MAGLEV},
    parse::L4Packet,
};

/// The VIP at `daddr_be` if it belongs to `net`: only members of a VIP's network reach it
/// from a container. Networks without VIPs pay no lookup.
#[inline(always)]
pub fn of_network(net: &NetworkPolicy, network: u32, daddr_be: u32) -> Option<*mut Vip> {
    if !net.has(NET_VIPS) || !net.contains(daddr_be) {
        return None;
    }
    let vip = VIPS.get_ptr_mut(daddr_be)?;
    // SAFETY: pointer from a successful lookup; `network` is written once, with the entry.
    (unsafe { (*vip).network } == network).then_some(vip)
}

/// Any VIP at `addr_be`, for processes of the host.
#[inline(always)]
pub fn at(addr_be: u32) -> Option<*mut Vip> {
    VIPS.get_ptr_mut(addr_be)
}

/// The backend for a new connection; `hash` gives Maglev its slot. `None` when the VIP has no
/// backend (left, or not yet started).
#[inline(always)]
pub fn pick(vip: *mut Vip, hash: impl FnOnce() -> usize) -> Option<u32> {
    // SAFETY: pointer from a successful lookup; only `next` is written by the programs,
    // atomically, below.
    let (id, count, algorithm) =
        unsafe { ((*vip).id, u32::from((*vip).backends), (*vip).algorithm) };
    if count == 0 {
        return None;
    }
    let slot = if algorithm == Algorithm::Maglev as u8 {
        let table = VIP_MAGLEV.get_ptr(id)?;
        // The hash is below the table's size by construction, so the compiler would drop the
        // bounds check, but the verifier does not follow a modulo: keep the check it needs.
        let slot = core::hint::black_box(hash());
        // SAFETY: pointer from a successful lookup of a plain value.
        let backend = *unsafe { (*table).slots.get(slot) }?;
        return (backend != NO_BACKEND).then_some(backend);
    } else if algorithm == Algorithm::Random as u8 {
        // SAFETY: a helper every program may call.
        (unsafe { bpf_get_prandom_u32() }) % count
    } else {
        // SAFETY: `next` is an aligned u64 inside the map value; every CPU advances it with
        // atomic adds only (BPF_ATOMIC fetch-add: the target's atomic types offer no
        // read-modify-write), so each new connection takes the next turn. SeqCst, not
        // Relaxed: LLVM lowers a relaxed add to the legacy `lock +=`, which returns nothing,
        // and then reads the operand as if it were the old value (always the same turn).
        let turn =
            unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(&raw mut (*vip).next, 1) };
        (turn % u64::from(count)) as u32
    };
    // SAFETY: read-only lookup of a plain value.
    unsafe { VIP_BACKENDS.get(VipSlot { id, slot }) }.copied()
}

/// Counts a connection sent to `backend`, for `netd alias inspect`.
#[inline(always)]
pub fn count(vip: *const Vip, backend_be: u32) {
    // SAFETY: pointer from a successful lookup.
    let key = VipSlot {
        id: unsafe { (*vip).id },
        slot: backend_be,
    };
    match VIP_CONNECTIONS.get_ptr_mut(key) {
        // SAFETY: per-CPU value, written by this CPU only, preemption off.
        Some(c) => unsafe { *c += 1 },
        None => {
            let _ = VIP_CONNECTIONS.insert(key, 1, 0);
        }
    }
}

/// The translation of a new connection `p` from a member to the VIP, recorded in conntrack.
/// `Ok(None)` for a packet that opens no connection (a TCP segment other than a SYN); a
/// member of an `icc=false` network reaches no other member, through a VIP neither.
#[inline(always)]
pub fn open(
    p: &L4Packet,
    vip: *mut Vip,
    client_net: Option<&NetworkPolicy>,
) -> Result<Option<conntrack::Opened>, DropReason> {
    if p.proto == PROTO_TCP && p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) != TCP_FLAG_SYN {
        return Ok(None);
    }
    if client_net.is_some_and(|n| n.has(NET_ICC_OFF)) {
        return Err(DropReason::Icc);
    }
    let backend = pick(vip, || {
        maglev_slot(p.saddr_be, p.daddr_be, p.sport_be, p.dport_be, p.proto)
    })
    .ok_or(DropReason::NoBackend)?;
    // A backend reaching its own VIP (hairpin): its reply would stay inside it unless the
    // request seems to come from the VIP.
    let saddr_be = if p.saddr_be == backend {
        p.daddr_be
    } else {
        p.saddr_be
    };
    let to = CtKey {
        saddr_be,
        daddr_be: backend,
        sport_be: p.sport_be,
        dport_be: p.dport_be,
        proto: p.proto,
        _pad: [0; 3],
    };
    let opened = conntrack::create(p, &to, CT_FLAG_DNAT | CT_FLAG_VIP);
    if opened.first {
        count(vip, backend);
    }
    Ok(Some(opened))
}
