//! Load balancing of a virtual IP over its backends. Maglev consistent hashing: a lookup
//! table in which every backend owns about 1/N of the slots. Tables are built and changed by
//! the control plane into caller-provided slices (no allocation: this crate is `no_std`); the
//! datapath only reads a slot.

/// Slots of a Maglev table: a prime well above any backend count netd allows (Maglev wants
/// M >> N for an even spread).
pub const MAGLEV_SIZE: usize = 4093;
/// Backends of one virtual IP at most.
pub const MAX_BACKENDS: usize = 64;
/// A slot no backend owns (no backend at all).
pub const NO_BACKEND: u32 = u32::MAX;

/// FNV-1a, with a seed so that one name gives two independent hashes.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Where backend `id`'s preference list starts and how it steps through the table.
fn permutation(id: u32) -> (usize, usize) {
    let key = id.to_le_bytes();
    let offset = (fnv1a(0x5eed_0001, &key) % MAGLEV_SIZE as u64) as usize;
    let skip = (fnv1a(0x5eed_0002, &key) % (MAGLEV_SIZE as u64 - 1)) as usize + 1;
    (offset, skip)
}

/// The `n`-th slot of backend `id`'s preference list.
fn preference(id: u32, n: usize) -> usize {
    let (offset, skip) = permutation(id);
    (offset + n * skip) % MAGLEV_SIZE
}

/// Fills every slot of `table` holding `NO_BACKEND` by Maglev's round: each backend in turn
/// takes its next preferred free slot. `next` holds each backend's position in its list and
/// must start at 0 for a fresh table. Slots already owned are kept: after a backend is
/// removed (its slots set to `NO_BACKEND`), only its slots move, so no connection of another
/// backend is re-mapped.
pub fn maglev_fill(table: &mut [u32; MAGLEV_SIZE], backends: &[u32], next: &mut [usize]) {
    let mut free = table.iter().filter(|s| **s == NO_BACKEND).count();
    if backends.is_empty() {
        return;
    }
    while free > 0 {
        for (i, id) in backends.iter().enumerate() {
            let slot = loop {
                let slot = preference(*id, next[i]);
                next[i] += 1;
                if table[slot] == NO_BACKEND {
                    break slot;
                }
            };
            table[slot] = *id;
            free -= 1;
            if free == 0 {
                return;
            }
        }
    }
}

/// Releases every slot of backend `id`, for `maglev_fill` to hand to the others.
pub fn maglev_release(table: &mut [u32; MAGLEV_SIZE], id: u32) {
    for slot in table.iter_mut().filter(|s| **s == id) {
        *slot = NO_BACKEND;
    }
}

/// The slot of a connection: a hash of its 5-tuple, the same for every packet of it.
#[inline(always)]
pub fn maglev_slot(saddr_be: u32, daddr_be: u32, sport_be: u16, dport_be: u16, proto: u8) -> usize {
    // A multiplicative mix of the tuple; enough to spread client ports over the table.
    let mut h = u64::from(saddr_be) ^ (u64::from(daddr_be) << 32);
    h ^= (u64::from(sport_be) << 16 | u64::from(dport_be)) << 8 | u64::from(proto);
    h = h.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^= h >> 29;
    (h % MAGLEV_SIZE as u64) as usize
}

#[cfg(test)]
#[path = "lb_tests.rs"]
mod tests;
