//! A map's entries read and written as bytes, whatever their types: what moving entries
//! between two builds' layouts needs (aya's typed maps know one layout, this build's).

use std::{io, os::fd::RawFd};

// Insert only (BPF_NOEXIST): an entry the new programs made already is newer than the old.
pub(super) use super::batch::BPF_NOEXIST;
use super::batch::{
    elem, ElemAttr, BPF_MAP_GET_NEXT_KEY, BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM,
};

/// A map's shape as the syscalls see it: a per-CPU map's value is one 8-byte-aligned slot
/// per possible CPU.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub key_size: usize,
    pub value_size: usize,
    pub per_cpu: bool,
    pub cpus: usize,
}

impl Shape {
    /// Bytes of one value slot (a CPU's, for a per-CPU map).
    pub fn slot(&self) -> usize {
        if self.per_cpu {
            self.value_size.div_ceil(8) * 8
        } else {
            self.value_size
        }
    }

    /// Bytes a lookup writes.
    pub fn value_len(&self) -> usize {
        if self.per_cpu {
            self.slot() * self.cpus
        } else {
            self.value_size
        }
    }
}

/// Every entry of the map `fd`; one deleted while it is read is skipped.
pub fn entries(fd: RawFd, shape: Shape) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut key: Option<Vec<u8>> = None;
    loop {
        let mut next = vec![0u8; shape.key_size];
        let mut attr = ElemAttr {
            map_fd: fd as u32,
            _pad: 0,
            key: key.as_ref().map_or(0, |k| k.as_ptr() as u64),
            value: next.as_mut_ptr() as u64,
            flags: 0,
        };
        match elem(BPF_MAP_GET_NEXT_KEY, &mut attr) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
            Err(e) => return Err(e),
        }
        let mut value = vec![0u8; shape.value_len()];
        let mut attr = ElemAttr {
            map_fd: fd as u32,
            _pad: 0,
            key: next.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            flags: 0,
        };
        match elem(BPF_MAP_LOOKUP_ELEM, &mut attr) {
            Ok(()) => out.push((next.clone(), value)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        key = Some(next);
    }
}

/// Writes one entry; with [`BPF_NOEXIST`], an existing one is kept (`Ok(false)`).
pub fn insert(fd: RawFd, key: &[u8], value: &[u8], flags: u64) -> io::Result<bool> {
    let mut attr = ElemAttr {
        map_fd: fd as u32,
        _pad: 0,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        flags,
    };
    match elem(BPF_MAP_UPDATE_ELEM, &mut attr) {
        Ok(()) => Ok(true),
        Err(e) if flags == BPF_NOEXIST && e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

/// `value` (of `from`'s shape) in `to`'s: each slot zero-extended to the grown size. Fields
/// appended to a value start at zero; a change whose zero means something else bumps the
/// map's meaning version instead, and its entries are not moved.
pub fn widen(value: &[u8], from: Shape, to: Shape) -> Vec<u8> {
    let slots = if from.per_cpu { from.cpus } else { 1 };
    let mut out = vec![0u8; to.value_len()];
    for cpu in 0..slots.min(if to.per_cpu { to.cpus } else { 1 }) {
        let src = &value[cpu * from.slot()..][..from.value_size];
        out[cpu * to.slot()..][..from.value_size].copy_from_slice(src);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(value_size: usize, per_cpu: bool) -> Shape {
        Shape {
            key_size: 4,
            value_size,
            per_cpu,
            cpus: 2,
        }
    }

    #[test]
    fn a_grown_value_is_zero_extended() {
        let v = widen(&[1, 2, 3, 4], shape(4, false), shape(12, false));
        assert_eq!(v, [1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn each_cpu_slot_of_a_per_cpu_value_is_zero_extended() {
        // 4-byte values sit in 8-byte slots; grown to 12 they take 16.
        let old = [1, 2, 3, 4, 0, 0, 0, 0, 5, 6, 7, 8, 0, 0, 0, 0];
        let v = widen(&old, shape(4, true), shape(12, true));
        assert_eq!(v.len(), 32);
        assert_eq!(&v[..16], &[1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&v[16..], &[5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
