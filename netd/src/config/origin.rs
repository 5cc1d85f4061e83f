//! Who asked for a network or a container.

use serde::{Deserialize, Serialize};

/// Who asked for a network or a container: netd's own API, or a runtime through its plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", deny_unknown_fields)]
pub enum Origin {
    #[default]
    Netd,
    /// Docker's network plugin; `id` is Docker's network or endpoint id.
    Docker { id: String },
    /// A CNI runtime; `id` is its container id (CNI_CONTAINERID).
    Cni { id: String },
}

impl Origin {
    pub fn kind(&self) -> &'static str {
        match self {
            Origin::Netd => "netd",
            Origin::Docker { .. } => "docker",
            Origin::Cni { .. } => "cni",
        }
    }

    /// The runtime's id of the object, if a runtime made it.
    pub fn runtime_id(&self) -> Option<&str> {
        match self {
            Origin::Netd => None,
            Origin::Docker { id } | Origin::Cni { id } => Some(id),
        }
    }
}

/// Runtime ids at most this long, of name characters only, are used whole in a name.
const WHOLE_ID_MAX: usize = 32;

impl Origin {
    /// netd's name for a runtime's container: `KIND-ID` when the id is short and of name
    /// characters only (ctr's `ns-webserver1`), else `KIND-PREFIX-HASH`, the first name
    /// characters of the id and a hash of all of it (Docker's and podman's 64-hex ids). Two
    /// ids give two names, whatever the runtime sends: a prefix alone would not (ctr's
    /// `ct-webserver1` and `ct-webserver2` share twelve characters).
    pub fn container_name(&self) -> String {
        let id = self.runtime_id().unwrap_or_default();
        let is_name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        if !id.is_empty() && id.len() <= WHOLE_ID_MAX && id.chars().all(is_name_char) {
            return format!("{}-{id}", self.kind());
        }
        let prefix: String = id.chars().filter(|c| is_name_char(*c)).take(12).collect();
        let hash = stable_hash(id.as_bytes());
        match prefix.is_empty() {
            true => format!("{}-{hash:016x}", self.kind()),
            false => format!("{}-{prefix}-{hash:016x}", self.kind()),
        }
    }
}

/// FNV-1a over the bytes, then a 64-bit finalizer (splitmix64) so that ids differing in
/// one byte differ in many bits. Stable across builds: names are persisted.
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::names::Name;

    fn cni(id: &str) -> String {
        Origin::Cni { id: id.into() }.container_name()
    }

    #[test]
    fn short_ids_are_used_whole() {
        assert_eq!(cni("ct-webserver1"), "cni-ct-webserver1");
        assert_ne!(cni("ct-webserver1"), cni("ct-webserver2"));
    }

    #[test]
    fn long_ids_sharing_a_prefix_get_two_names() {
        let a = format!("{}{}", "e1".repeat(6), "a".repeat(52));
        let b = format!("{}{}", "e1".repeat(6), "b".repeat(52));
        let docker = Origin::Docker { id: a.clone() }.container_name();
        assert!(docker.starts_with("docker-e1e1e1e1e1e1-"), "{docker}");
        assert_ne!(cni(&a), cni(&b));
    }

    #[test]
    fn any_id_gives_a_valid_name() {
        for id in [
            "",
            "ü",
            "日本語のコンテナ",
            "-leading",
            "a/b",
            "x y",
            &"é".repeat(40),
            &"z".repeat(5000),
            "..",
        ] {
            let name = cni(id);
            Name::parse("name", &name).unwrap_or_else(|e| panic!("{id:?} gave {name:?}: {e}"));
        }
        assert_ne!(cni("a/b"), cni("a:b"), "ids that sanitise alike stay apart");
    }
}
