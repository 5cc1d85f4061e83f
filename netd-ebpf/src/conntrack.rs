//! Connection tracking: find the translation of a packet's connection, keep its TCP state and
//! last-seen time, and create the two entries of a new translated connection (in the pending
//! table, until the connection's first reply).

use aya_ebpf::{
    bindings::{BPF_ANY, BPF_NOEXIST},
    helpers::bpf_ktime_get_ns,
};
use netd_common::{
    churn::CHURN_DATAPATH,
    nat::{
        ct_ticks, datagram_established, tcp_next, CtEntry, CtKey, TcpState, CT_FLAG_REPLIED,
        CT_FLAG_REPLY, LAST_SEEN_GRANULARITY_NS, PROTO_TCP, TCP_FLAG_ACK, TCP_FLAG_SYN,
    },
};

use crate::{
    maps::{CONNTRACK, CT_CHURN, CT_NEW, CT_STATS},
    parse::L4Packet,
};

/// One of the two conntrack tables. Entries go in and out only through these methods, which
/// count them: the daemon tells from the counts how many entries LRU evicted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Table {
    Main,
    Pending,
}

impl Table {
    #[inline(always)]
    fn get_ptr_mut(self, key: CtKey) -> Option<*mut CtEntry> {
        match self {
            Table::Main => CONNTRACK.get_ptr_mut(key),
            Table::Pending => CT_NEW.get_ptr_mut(key),
        }
    }

    /// Inserts `key` only if no entry has it (another CPU's packet may have made it).
    #[inline(always)]
    pub fn add(self, key: &CtKey, e: &CtEntry) -> bool {
        let added = match self {
            Table::Main => CONNTRACK.insert(key, e, BPF_NOEXIST.into()),
            Table::Pending => CT_NEW.insert(key, e, BPF_NOEXIST.into()),
        }
        .is_ok();
        if added {
            churn(self, true);
        }
        added
    }

    /// Sets `key`'s entry, replacing one that is there (a replacement is no new entry).
    #[inline(always)]
    pub fn put(self, key: &CtKey, e: &CtEntry) -> bool {
        self.add(key, e)
            || match self {
                Table::Main => CONNTRACK.insert(key, e, BPF_ANY.into()),
                Table::Pending => CT_NEW.insert(key, e, BPF_ANY.into()),
            }
            .is_ok()
    }

    #[inline(always)]
    pub fn remove(self, key: &CtKey) {
        let removed = match self {
            Table::Main => CONNTRACK.remove(key),
            Table::Pending => CT_NEW.remove(key),
        }
        .is_ok();
        if removed {
            churn(self, false);
        }
    }
}

/// Counts an entry that came into or left `table`.
#[inline(always)]
fn churn(table: Table, added: bool) {
    if let Some(c) = CT_CHURN.get_ptr_mut(CHURN_DATAPATH) {
        // SAFETY: per-CPU value, written by this CPU only, preemption off.
        unsafe {
            match (table, added) {
                (Table::Main, true) => (*c).main_added += 1,
                (Table::Main, false) => (*c).main_removed += 1,
                (Table::Pending, true) => (*c).pending_added += 1,
                (Table::Pending, false) => (*c).pending_removed += 1,
            }
        }
    }
}

/// The translation of `p`'s connection, with its state brought up to date. A connection
/// lives in the pending table until it is answered (see [`answered`]), then in the main one:
/// a flood of new flows (spoofed SYNs, UDP to every port) churns only the pending table, and
/// the answered connections stay.
#[inline(always)]
pub fn lookup(p: &L4Packet) -> Option<CtEntry> {
    if let Some(entry) = CONNTRACK.get_ptr_mut(p.key()) {
        return refresh(p, entry, Table::Main);
    }
    let entry = CT_NEW.get_ptr_mut(p.key())?;
    let e = refresh(p, entry, Table::Pending)?;
    if answered(p, &e) {
        promote(p, &e);
    }
    Some(e)
}

/// Whether `p` makes its pending connection an answered one, as Linux conntrack's
/// "assured": for TCP the client's ACK of the server's SYN-ACK (a spoofed SYN is answered,
/// never acknowledged); for UDP and ICMP traffic about two seconds after the connection
/// opened, once it has seen a reply (a spoofed query is answered once, then nothing).
#[inline(always)]
fn answered(p: &L4Packet, e: &CtEntry) -> bool {
    if p.proto != PROTO_TCP {
        let now = ct_ticks(unsafe { bpf_ktime_get_ns() });
        let reply = e.flags & CT_FLAG_REPLY != 0;
        if reply && !datagram_established(e.opened_ticks, now, true) {
            mark_replied(e.partner(p.proto));
        }
        return datagram_established(e.opened_ticks, now, reply || e.flags & CT_FLAG_REPLIED != 0);
    }
    if e.flags & CT_FLAG_REPLY != 0 || p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) != TCP_FLAG_ACK {
        return false;
    }
    // SAFETY: pointer from a successful lookup of a plain value.
    CT_NEW
        .get_ptr(e.partner(p.proto))
        .is_some_and(|r| unsafe { (*r).tcp_state } == TcpState::Established as u8)
}

/// Records on a pending connection's forward entry (`forward`) that it has seen a reply.
#[inline(always)]
fn mark_replied(forward: CtKey) {
    if let Some(f) = CT_NEW.get_ptr_mut(forward) {
        // SAFETY: pointer from a successful lookup. Read before the write: replies would
        // otherwise bounce the entry's cache line between CPUs; a racing writer can only set
        // the same bit, or refresh last_seen, which one stale packet does not harm.
        unsafe {
            if (*f).flags & CT_FLAG_REPLIED == 0 {
                (*f).flags |= CT_FLAG_REPLIED;
            }
        }
    }
}

/// Whether conntrack has an entry for `key`, in either table.
#[inline(always)]
pub fn has(key: CtKey) -> bool {
    CONNTRACK.get_ptr(key).is_some() || CT_NEW.get_ptr(key).is_some()
}

/// The entry of `key` as it is, in either table, without touching its state (an ICMP error
/// is no sign of life of its connection).
#[inline(always)]
pub fn peek(key: CtKey) -> Option<CtEntry> {
    // SAFETY: pointers from successful lookups of plain values.
    if let Some(e) = CONNTRACK.get_ptr(key) {
        return Some(unsafe { *e });
    }
    CT_NEW.get_ptr(key).map(|e| unsafe { *e })
}

/// The first reply of a pending connection: both its entries move to the main table.
#[inline(always)]
fn promote(p: &L4Packet, e: &CtEntry) {
    let partner = e.partner(p.proto);
    if let Some(other) = CT_NEW.get_ptr(partner) {
        // SAFETY: pointer from a successful lookup of a plain value.
        let other = unsafe { *other };
        Table::Main.put(&partner, &other);
    }
    Table::Main.put(&p.key(), e);
    Table::Pending.remove(&partner);
    Table::Pending.remove(&p.key());
}

#[inline(always)]
fn refresh(p: &L4Packet, entry: *mut CtEntry, table: Table) -> Option<CtEntry> {
    // SAFETY: the pointer comes from a successful lookup; concurrent writers can at worst make
    // last_seen or the state one packet stale, which the timeouts tolerate.
    let e = unsafe { &mut *entry };
    let now = unsafe { bpf_ktime_get_ns() };
    if p.proto == PROTO_TCP {
        let state = TcpState::from_u8(e.tcp_state);
        // A SYN on a finished connection opens a new one with the same ports: the old
        // translation (and its other direction) must not capture it.
        if state == TcpState::Closing && p.tcp_flags & TCP_FLAG_SYN != 0 {
            table.remove(&e.partner(p.proto));
            table.remove(&p.key());
            return None;
        }
        let next = tcp_next(state, p.tcp_flags, e.flags & CT_FLAG_REPLY != 0);
        if next != state {
            e.tcp_state = next as u8;
            // A FIN or RST ends both directions: the other entry must not outlive it as
            // "established" and capture a later connection with the same ports.
            if next == TcpState::Closing {
                if let Some(other) = table.get_ptr_mut(e.partner(p.proto)) {
                    // SAFETY: pointer from a successful lookup; a racing writer can only
                    // store the same state.
                    unsafe { (*other).tcp_state = TcpState::Closing as u8 };
                }
            }
        }
    }
    if now.wrapping_sub(e.last_seen_ns) > LAST_SEEN_GRANULARITY_NS {
        e.last_seen_ns = now;
    }
    Some(*e)
}

/// A connection's translation as [`create`] left it. A struct with every field set, not a
/// `Result`: LLVM spills the undefined payload of the variant not taken, and the verifier
/// refuses to read an unset register.
pub struct Opened {
    pub entry: CtEntry,
    /// This packet made the entries. False when another CPU's packet of the same new flow
    /// made them first: its translation is the connection's.
    pub first: bool,
    /// The table took no new entry, even after LRU eviction: `entry` means nothing.
    pub full: bool,
}

/// Counts a connection opened, or an insert the table refused.
#[inline(always)]
pub fn count(failed: bool) {
    if let Some(stats) = CT_STATS.get_ptr_mut(0) {
        // SAFETY: per-CPU value, written by this CPU only, preemption off.
        unsafe {
            if failed {
                (*stats).insert_failures += 1;
            } else {
                (*stats).opened += 1;
            }
        }
    }
}

impl Opened {
    fn full() -> Self {
        count(true);
        Self {
            entry: CtEntry {
                last_seen_ns: 0,
                new_saddr_be: 0,
                new_daddr_be: 0,
                new_sport_be: 0,
                new_dport_be: 0,
                flags: 0,
                tcp_state: 0,
                opened_ticks: 0,
            },
            first: false,
            full: true,
        }
    }
}

/// Records a new connection whose first packet `p` is rewritten to `to`; the reply entry maps
/// the reverse of `to` back to the reverse of the original tuple. Returns the forward entry.
#[inline(always)]
pub fn create(p: &L4Packet, to: &CtKey, flags: u8) -> Opened {
    let now = unsafe { bpf_ktime_get_ns() };
    let state = tcp_next(TcpState::None, p.tcp_flags, false) as u8;
    let forward = CtEntry {
        last_seen_ns: now,
        new_saddr_be: to.saddr_be,
        new_daddr_be: to.daddr_be,
        new_sport_be: to.sport_be,
        new_dport_be: to.dport_be,
        flags,
        tcp_state: state,
        opened_ticks: ct_ticks(now),
    };
    let original = p.key();
    let reply = CtEntry {
        new_saddr_be: original.daddr_be,
        new_daddr_be: original.saddr_be,
        new_sport_be: original.dport_be,
        new_dport_be: original.sport_be,
        flags: flags | CT_FLAG_REPLY,
        ..forward
    };
    // The connection's own key first, and only if no other CPU's packet made it meanwhile:
    // two first packets of one flow must not pick two backends or two source ports.
    // The error code is not read (an unused one lets the compiler read a register the
    // verifier counts as unset): an entry that is there now is the winner's, and no entry
    // means the table refused.
    if !Table::Pending.add(&original, &forward) {
        // SAFETY: read-only lookup of a plain value.
        return match unsafe { CT_NEW.get(original) } {
            Some(winner) => Opened {
                entry: *winner,
                first: false,
                full: false,
            },
            None => Opened::full(),
        };
    }
    if !Table::Pending.put(&to.reversed(), &reply) {
        Table::Pending.remove(&original);
        return Opened::full();
    }
    count(false);
    Opened {
        entry: forward,
        first: true,
        full: false,
    }
}

/// A new TCP connection that is not translated supersedes whatever an earlier, translated
/// connection with the same addresses and ports left: without this, the new connection's
/// replies would match the old reply entry and be rewritten (a client port reused within the
/// old entry's lifetime).
#[inline(always)]
pub fn forget_stale_reply(p: &L4Packet) {
    if p.proto == PROTO_TCP && p.tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK) == TCP_FLAG_SYN {
        let stale = p.key().reversed();
        // Look first: a delete takes the bucket lock, and nearly every SYN finds nothing.
        if CONNTRACK.get_ptr(stale).is_some() {
            Table::Main.remove(&stale);
        }
        if CT_NEW.get_ptr(stale).is_some() {
            Table::Pending.remove(&stale);
        }
    }
}
