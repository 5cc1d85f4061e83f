//! Pinned maps whose layout is not this build's. aya reuses a pin of the same name as it is,
//! so a build that changed a map's type, key, value or size would run its programs on the
//! old layout, or fail to load. Before loading, every pin is checked against the object's
//! definition of its map: a mismatched one is removed, the map is made anew, and the log
//! says which map was reset and why.

use std::{fs, path::Path};

use aya::maps::MapData;
use aya_obj::maps::PinningType;

use super::DatapathError;

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

/// Removes the pins under `maps_dir` that do not match `object`'s maps (with the sizes in
/// `entries` set at start instead of the object's). Returns the maps reset.
pub fn drop_mismatched(
    maps_dir: &Path,
    object: &[u8],
    entries: &[(&str, u32)],
) -> Result<Vec<String>, DatapathError> {
    let parsed =
        aya_obj::Object::parse(object).map_err(|e| DatapathError::Object(e.to_string()))?;
    let mut reset = Vec::new();
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
        let Some(why) = mismatch(was, built) else {
            continue;
        };
        log::warn!(
            "pinned map {name} is not this build's ({why}): made anew, its entries are reset"
        );
        drop(pinned);
        fs::remove_file(&pin).map_err(|source| DatapathError::Bpffs {
            op: "remove",
            path: pin.clone(),
            source,
        })?;
        reset.push(name.clone());
    }
    Ok(reset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_difference_is_named() {
        let built = Layout {
            map_type: 9,
            key_size: 16,
            value_size: 24,
            max_entries: 1024,
        };
        assert_eq!(mismatch(built, built), None);
        let grown = Layout {
            value_size: 32,
            max_entries: 2048,
            ..built
        };
        assert_eq!(
            mismatch(built, grown).as_deref(),
            Some("value size 24 -> 32, entries 1024 -> 2048")
        );
        let other = Layout {
            map_type: 1,
            ..built
        };
        assert_eq!(mismatch(other, built).as_deref(), Some("type 1 -> 9"));
    }
}
