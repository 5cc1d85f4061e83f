//! Map operations aya 0.14 lacks: batches (BPF_MAP_{LOOKUP,UPDATE,DELETE}_BATCH, kernel
//! 5.6+), without which publishing 10,000 ports or reading a large connection table costs a
//! syscall per entry; and lookup-and-delete of one hash-map entry (5.14+), which takes an
//! entry and tells what was taken in one step.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd},
};

use aya::Pod;

pub(super) const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
pub(super) const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
pub(super) const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
const BPF_MAP_LOOKUP_AND_DELETE_ELEM: libc::c_long = 21;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
pub(super) const BPF_NOEXIST: u64 = 1;

/// The element member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
pub(super) struct ElemAttr {
    pub(super) map_fd: u32,
    pub(super) _pad: u32,
    pub(super) key: u64,
    pub(super) value: u64,
    pub(super) flags: u64,
}

pub(super) fn elem(cmd: libc::c_long, attr: &mut ElemAttr) -> io::Result<()> {
    // SAFETY: `attr` is a valid bpf_attr prefix for the element commands, and its pointers
    // refer to a live key and value of the map's sizes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut ElemAttr,
            size_of::<ElemAttr>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Deletes `key` and returns the value it had; `None` if it was not there.
pub fn take<K: Pod, V: Pod>(fd: BorrowedFd<'_>, key: &K) -> io::Result<Option<V>> {
    // SAFETY: V is Pod: all-zero is a valid value, and the kernel overwrites it.
    let mut value: V = unsafe { std::mem::zeroed() };
    let mut a = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key as *const K as u64,
        value: &mut value as *mut V as u64,
        ..Default::default()
    };
    match elem(BPF_MAP_LOOKUP_AND_DELETE_ELEM, &mut a) {
        Ok(()) => Ok(Some(value)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Inserts `key` unless it exists (then leaves what is there). Returns whether it inserted.
pub fn insert_new<K: Pod, V: Pod>(fd: BorrowedFd<'_>, key: &K, value: &V) -> io::Result<bool> {
    let mut a = ElemAttr {
        map_fd: fd.as_raw_fd() as u32,
        key: key as *const K as u64,
        value: value as *const V as u64,
        flags: BPF_NOEXIST,
        ..Default::default()
    };
    match elem(BPF_MAP_UPDATE_ELEM, &mut a) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
        Err(e) => Err(e),
    }
}

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
const BPF_MAP_DELETE_BATCH: libc::c_long = 27;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Runs one batch command; returns how many elements the kernel processed, and the error
/// that stopped it, if any.
fn batch(cmd: libc::c_long, attr: &mut BatchAttr) -> (usize, Option<io::Error>) {
    // SAFETY: `attr` is a valid bpf_attr prefix for the batch commands, and every pointer in
    // it refers to a live buffer of the size its count implies.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut BatchAttr,
            size_of::<BatchAttr>(),
        )
    };
    let err = (rc < 0).then(io::Error::last_os_error);
    (attr.count as usize, err)
}

fn attr(fd: BorrowedFd<'_>) -> BatchAttr {
    BatchAttr {
        map_fd: fd.as_raw_fd() as u32,
        ..Default::default()
    }
}

/// Inserts or replaces every `(key, value)` pair in one call per chunk.
pub fn update<K: Pod, V: Pod>(fd: BorrowedFd<'_>, entries: &[(K, V)]) -> io::Result<()> {
    let keys: Vec<K> = entries.iter().map(|(k, _)| *k).collect();
    let values: Vec<V> = entries.iter().map(|(_, v)| *v).collect();
    let mut done = 0;
    while done < keys.len() {
        let mut a = attr(fd);
        a.keys = keys[done..].as_ptr() as u64;
        a.values = values[done..].as_ptr() as u64;
        a.count = (keys.len() - done) as u32;
        match batch(BPF_MAP_UPDATE_BATCH, &mut a) {
            (n, None) => done += n,
            (_, Some(e)) => return Err(e),
        }
    }
    Ok(())
}

/// Deletes every key; keys already gone are skipped. Returns how many were deleted.
pub fn delete<K: Pod>(fd: BorrowedFd<'_>, keys: &[K]) -> io::Result<usize> {
    let (mut done, mut deleted) = (0, 0);
    while done < keys.len() {
        let mut a = attr(fd);
        a.keys = keys[done..].as_ptr() as u64;
        a.count = (keys.len() - done) as u32;
        match batch(BPF_MAP_DELETE_BATCH, &mut a) {
            (n, None) => {
                done += n;
                deleted += n;
            }
            // The kernel stops at a missing key, after deleting the ones before it.
            (n, Some(e)) if e.raw_os_error() == Some(libc::ENOENT) => {
                done += n + 1;
                deleted += n;
            }
            (_, Some(e)) => return Err(e),
        }
    }
    Ok(deleted)
}

/// Every entry of a hash map, read a chunk at a time.
pub fn entries<K: Pod, V: Pod>(fd: BorrowedFd<'_>) -> io::Result<Vec<(K, V)>> {
    let mut chunk = 4096;
    let mut out = Vec::new();
    // The kernel's cursor: a bucket index for hash maps.
    let mut cursor = 0u64;
    let mut first = true;
    loop {
        // SAFETY: K and V are Pod: all-zero is a valid value, and the kernel overwrites them.
        let mut keys: Vec<K> = vec![unsafe { std::mem::zeroed() }; chunk];
        let mut values: Vec<V> = vec![unsafe { std::mem::zeroed() }; chunk];
        let mut next = 0u64;
        let mut a = attr(fd);
        a.in_batch = if first {
            0
        } else {
            &cursor as *const u64 as u64
        };
        a.out_batch = &mut next as *mut u64 as u64;
        a.keys = keys.as_mut_ptr() as u64;
        a.values = values.as_mut_ptr() as u64;
        a.count = chunk as u32;
        let (n, err) = batch(BPF_MAP_LOOKUP_BATCH, &mut a);
        match err {
            // A bucket holds more entries than the chunk: retry it with room for them.
            Some(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                chunk *= 2;
                continue;
            }
            Some(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
            _ => {}
        }
        out.extend(keys.into_iter().zip(values).take(n));
        // ENOENT: no more buckets.
        if err.is_some() {
            return Ok(out);
        }
        cursor = next;
        first = false;
    }
}
