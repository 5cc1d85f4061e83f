extern crate std;

use std::{collections::BTreeMap, vec, vec::Vec};

use super::*;

fn table(backends: &[u32]) -> [u32; MAGLEV_SIZE] {
    let mut t = [NO_BACKEND; MAGLEV_SIZE];
    let mut next = vec![0; backends.len()];
    maglev_fill(&mut t, backends, &mut next);
    t
}

fn shares(t: &[u32; MAGLEV_SIZE]) -> BTreeMap<u32, usize> {
    let mut m = BTreeMap::new();
    for id in t {
        *m.entry(*id).or_default() += 1;
    }
    m
}

#[test]
fn every_slot_is_owned_and_shares_are_even() {
    let backends = [11, 22, 33, 44, 55];
    let t = table(&backends);
    let s = shares(&t);
    assert!(!s.contains_key(&NO_BACKEND));
    assert_eq!(s.keys().copied().collect::<Vec<_>>(), backends);
    let fair = MAGLEV_SIZE / backends.len();
    for (id, n) in &s {
        // Maglev's bound: within a few percent of M/N.
        assert!(
            n.abs_diff(fair) <= fair / 20,
            "backend {id} owns {n} of {MAGLEV_SIZE}"
        );
    }
}

#[test]
fn the_same_backends_give_the_same_table() {
    assert_eq!(table(&[1, 2, 3]), table(&[1, 2, 3]));
}

#[test]
fn removing_a_backend_moves_only_its_slots() {
    let backends = [11, 22, 33, 44, 55];
    let mut t = [NO_BACKEND; MAGLEV_SIZE];
    let mut next = vec![0; backends.len()];
    maglev_fill(&mut t, &backends, &mut next);
    let before = t;
    maglev_release(&mut t, 33);
    let survivors = [11, 22, 44, 55];
    let mut next: Vec<usize> = [0, 1, 3, 4].iter().map(|i| next[*i]).collect();
    maglev_fill(&mut t, &survivors, &mut next);
    for (slot, (old, new)) in before.iter().zip(t.iter()).enumerate() {
        if *old != 33 {
            assert_eq!(old, new, "slot {slot} of a surviving backend moved");
        } else {
            assert!(survivors.contains(new));
        }
    }
    let s = shares(&t);
    let fair = MAGLEV_SIZE / survivors.len();
    for n in s.values() {
        assert!(n.abs_diff(fair) <= fair / 10, "{s:?}");
    }
}

#[test]
fn connections_spread_over_the_table() {
    let mut seen = BTreeMap::new();
    for port in 0..10_000u16 {
        let slot = maglev_slot(0x0a00_0002, 0x0a00_0064, port.to_be(), 80u16.to_be(), 6);
        *seen.entry(slot * 5 / MAGLEV_SIZE).or_insert(0) += 1;
    }
    for n in seen.values() {
        assert!((1_700..=2_300).contains(n), "{seen:?}");
    }
}
