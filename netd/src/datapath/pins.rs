//! Pinned maps across builds. aya reuses a pin of the same name as it is, so a build that
//! changed a map's type, key, value or size would run its programs on the old layout, or
//! fail to load. Before loading, every pin is checked against the object's definition of its
//! map and against its meaning version (recorded beside the pins, under `layouts/`):
//! - the same layout and version: kept, entries and all;
//! - a value grown, or another number of entries, at the same version: the map is made anew
//!   and its entries moved into it (zero-extended), once right after the load and once more
//!   when the new programs run, for what the old ones added meanwhile;
//! - anything else (type, key, a shrunk value, another version): made anew empty.
//!
//! The log says which maps moved or were reset, and why.

use std::{
    fs,
    os::fd::{AsFd, AsRawFd},
    path::{Path, PathBuf},
};

use aya::maps::MapData;
use aya_obj::maps::PinningType;

use super::{
    raw::{self, Shape},
    DatapathError,
};

/// What a map is made with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

/// Why a pin of layout `pinned` cannot serve a build that wants `built`, if it cannot.
pub fn mismatch(pinned: Layout, built: Layout) -> Option<String> {
    let mut why = Vec::new();
    for (what, was, now) in [
        ("type", pinned.map_type, built.map_type),
        ("key size", pinned.key_size, built.key_size),
        ("value size", pinned.value_size, built.value_size),
        ("entries", pinned.max_entries, built.max_entries),
    ] {
        if was != now {
            why.push(format!("{what} {was} -> {now}"));
        }
    }
    (!why.is_empty()).then(|| why.join(", "))
}

/// What becomes of a pin.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Keep,
    /// Made anew, its entries moved; why it changed.
    Move(String),
    /// Made anew, empty; why.
    Reset(String),
}

// BPF_MAP_TYPE_*: the kinds whose entries can be listed and written back one by one.
const HASH: u32 = 1;
const ARRAY: u32 = 2;
const PERCPU_HASH: u32 = 5;
const PERCPU_ARRAY: u32 = 6;
const LRU_HASH: u32 = 9;
const LRU_PERCPU_HASH: u32 = 10;
const LPM_TRIE: u32 = 11;

fn movable(map_type: u32) -> bool {
    [
        HASH,
        ARRAY,
        PERCPU_HASH,
        PERCPU_ARRAY,
        LRU_HASH,
        LRU_PERCPU_HASH,
        LPM_TRIE,
    ]
    .contains(&map_type)
}

fn per_cpu(map_type: u32) -> bool {
    [PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH].contains(&map_type)
}

fn array(map_type: u32) -> bool {
    [ARRAY, PERCPU_ARRAY].contains(&map_type)
}

/// What to do with a pin of layout `pinned` and meaning version `was` for a build that makes
/// the map with `built` and version `now`.
pub fn decide(pinned: Layout, was: u32, built: Layout, now: u32) -> Decision {
    let layout = mismatch(pinned, built);
    if layout.is_none() && was == now {
        return Decision::Keep;
    }
    let mut why: Vec<String> = layout.into_iter().collect();
    if was != now {
        why.push(format!("meaning version {was} -> {now}"));
    }
    let why = why.join(", ");
    let same_kind = pinned.map_type == built.map_type && pinned.key_size == built.key_size;
    if same_kind && was == now && pinned.value_size <= built.value_size && movable(built.map_type) {
        Decision::Move(why)
    } else {
        Decision::Reset(why)
    }
}

/// A pinned map being replaced by this build's: the old map stays open until its entries
/// are moved for the last time.
pub struct Moving {
    pub name: String,
    old: MapData,
    from: Shape,
    to: Shape,
    array: bool,
    why: String,
}

/// What [`prepare`] found: the maps reset, and the ones whose entries move.
#[derive(Default)]
pub struct Prepared {
    pub reset: Vec<String>,
    pub moving: Vec<Moving>,
}

/// Checks the pins under `bpffs`'s `maps/` against `object`'s maps (with the sizes in
/// `entries` set at start instead of the object's) and their recorded versions, and removes
/// the pins that this build makes anew. Call before loading, then [`Moving::copy`] each.
pub fn prepare(
    bpffs: &Path,
    object: &[u8],
    entries: &[(&str, u32)],
) -> Result<Prepared, DatapathError> {
    let maps_dir = bpffs.join("maps");
    let parsed =
        aya_obj::Object::parse(object).map_err(|e| DatapathError::Object(e.to_string()))?;
    let cpus = aya::util::nr_cpus().map_or(1, |n| n);
    let mut prepared = Prepared::default();
    for (name, map) in &parsed.maps {
        if map.pinning() != PinningType::ByName {
            continue;
        }
        let pin = maps_dir.join(name);
        let Ok(pinned) = MapData::from_pin(&pin) else {
            continue;
        };
        let Ok(info) = pinned.info() else {
            continue;
        };
        let built = Layout {
            map_type: map.map_type(),
            key_size: map.key_size(),
            value_size: map.value_size(),
            max_entries: entries
                .iter()
                .find(|(n, _)| n == name)
                .map_or(map.max_entries(), |(_, e)| *e),
        };
        let was = Layout {
            map_type: info.map_type().map_or(u32::MAX, |t| t as u32),
            key_size: info.key_size(),
            value_size: info.value_size(),
            max_entries: info.max_entries(),
        };
        let version = netd_common::maps::layout_version(name);
        // A pin without a record is older than the records: version 1's.
        let recorded = recorded_version(bpffs, name).unwrap_or(1);
        let shape = |l: Layout| Shape {
            key_size: l.key_size as usize,
            value_size: l.value_size as usize,
            per_cpu: per_cpu(l.map_type),
            cpus,
        };
        match decide(was, recorded, built, version) {
            Decision::Keep => continue,
            Decision::Move(why) => prepared.moving.push(Moving {
                name: name.clone(),
                old: pinned,
                from: shape(was),
                to: shape(built),
                array: array(built.map_type),
                why,
            }),
            Decision::Reset(why) => {
                log::warn!(
                    "pinned map {name} is not this build's ({why}): made anew, its entries are reset"
                );
                drop(pinned);
                prepared.reset.push(name.clone());
            }
        }
        fs::remove_file(&pin).map_err(|source| DatapathError::Bpffs {
            op: "remove",
            path: pin.clone(),
            source,
        })?;
    }
    Ok(prepared)
}

impl Moving {
    /// Moves the old map's entries into this build's map pinned under `bpffs`. The first
    /// copy writes every entry; the last (`last`) only those the new map lacks, since what
    /// it holds by then the new programs wrote. Returns the entries written.
    pub fn copy(&self, bpffs: &Path, last: bool) -> Result<usize, DatapathError> {
        // An array's slots always exist: copied once, before anything writes them.
        if last && self.array {
            return Ok(0);
        }
        let pin = bpffs.join("maps").join(&self.name);
        let new = MapData::from_pin(&pin).map_err(|e| DatapathError::Object(e.to_string()))?;
        let io = |source| DatapathError::Bpffs {
            op: "move entries into",
            path: pin.clone(),
            source,
        };
        let flags = if last { raw::BPF_NOEXIST } else { 0 };
        let mut written = 0;
        let mut refused = 0;
        for (key, value) in
            raw::entries(self.old.fd().as_fd().as_raw_fd(), self.from).map_err(io)?
        {
            let value = raw::widen(&value, self.from, self.to);
            match raw::insert(new.fd().as_fd().as_raw_fd(), &key, &value, flags) {
                Ok(true) => written += 1,
                Ok(false) => {}
                // A smaller map: what does not fit is lost.
                Err(_) => refused += 1,
            }
        }
        if !last {
            log::warn!(
                "pinned map {} is not this build's ({}): made anew, {written} entries moved into it{}",
                self.name,
                self.why,
                if refused > 0 { format!(", {refused} did not fit") } else { String::new() }
            );
        }
        Ok(written)
    }
}

/// The folder of version records: one empty directory `NAME@VERSION` per pinned map (bpffs
/// holds no regular files).
fn layouts_dir(bpffs: &Path) -> PathBuf {
    bpffs.join("layouts")
}

fn recorded_version(bpffs: &Path, name: &str) -> Option<u32> {
    let prefix = format!("{name}@");
    fs::read_dir(layouts_dir(bpffs))
        .ok()?
        .flatten()
        .find_map(|e| e.file_name().to_str()?.strip_prefix(&prefix)?.parse().ok())
}

/// Records the meaning version of each of `names` as this build's, once its maps are
/// pinned.
pub fn record_versions<'a>(
    bpffs: &Path,
    names: impl IntoIterator<Item = &'a String>,
) -> Result<(), DatapathError> {
    let dir = layouts_dir(bpffs);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DatapathError::Bpffs {
            op: "record the layout in",
            path,
            source,
        }
    };
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    for name in names {
        let version = netd_common::maps::layout_version(name);
        let want = format!("{name}@{version}");
        for entry in fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            if file.starts_with(&format!("{name}@")) && *file != want {
                let _ = fs::remove_dir(entry.path());
            }
        }
        let record = dir.join(&want);
        if !record.exists() {
            fs::create_dir(&record).map_err(io(&record))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUILT: Layout = Layout {
        map_type: HASH,
        key_size: 16,
        value_size: 24,
        max_entries: 1024,
    };

    #[test]
    fn every_difference_is_named() {
        assert_eq!(mismatch(BUILT, BUILT), None);
        let grown = Layout {
            value_size: 32,
            max_entries: 2048,
            ..BUILT
        };
        assert_eq!(
            mismatch(BUILT, grown).as_deref(),
            Some("value size 24 -> 32, entries 1024 -> 2048")
        );
        let other = Layout {
            map_type: ARRAY,
            ..BUILT
        };
        assert_eq!(mismatch(other, BUILT).as_deref(), Some("type 2 -> 1"));
    }

    #[test]
    fn grown_values_and_resized_tables_move_and_the_rest_resets() {
        assert_eq!(decide(BUILT, 1, BUILT, 1), Decision::Keep);
        let older = Layout {
            value_size: 16,
            ..BUILT
        };
        assert_eq!(
            decide(older, 1, BUILT, 1),
            Decision::Move("value size 16 -> 24".into())
        );
        let bigger = Layout {
            max_entries: 4096,
            ..BUILT
        };
        assert_eq!(
            decide(bigger, 1, BUILT, 1),
            Decision::Move("entries 4096 -> 1024".into())
        );
        let wider = Layout {
            value_size: 32,
            ..BUILT
        };
        assert_eq!(
            decide(wider, 1, BUILT, 1),
            Decision::Reset("value size 32 -> 24".into()),
            "a shrunk value loses fields"
        );
        assert_eq!(
            decide(older, 1, BUILT, 2),
            Decision::Reset("value size 16 -> 24, meaning version 1 -> 2".into())
        );
        assert_eq!(
            decide(BUILT, 1, BUILT, 2),
            Decision::Reset("meaning version 1 -> 2".into()),
            "same sizes, another meaning"
        );
        let other_key = Layout {
            key_size: 8,
            ..BUILT
        };
        assert!(matches!(decide(other_key, 1, BUILT, 1), Decision::Reset(_)));
        let ring = Layout {
            map_type: 27,
            max_entries: 4096,
            ..BUILT
        };
        let ring_built = Layout {
            map_type: 27,
            ..BUILT
        };
        assert!(
            matches!(decide(ring, 1, ring_built, 1), Decision::Reset(_)),
            "a ring buffer has no entries to move"
        );
    }
}
