//! `-d macvlan` options: the parent interface and the mode, as Docker spells them.

use serde::{Deserialize, Serialize};

use super::{names::IfName, ConfigError};

pub const DRIVER_MACVLAN: &str = "macvlan";
pub const OPT_PARENT: &str = "parent";
pub const OPT_MACVLAN_MODE: &str = "macvlan_mode";
/// netd's own option: a macvlan of the host's on the parent, so that the host reaches the
/// containers (the kernel never delivers a parent's frames to its own macvlans).
pub const OPT_HOST_ACCESS: &str = "host_access";

/// How a macvlan's frames reach its siblings on the same parent (see the kernel's macvlan).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacvlanMode {
    /// Siblings talk directly, inside the kernel.
    #[default]
    Bridge,
    /// Siblings never reach each other, not even through the LAN.
    Private,
    /// Everything goes out to the LAN; siblings meet only if the switch sends it back
    /// (a hairpin port).
    Vepa,
    /// The one container takes over the parent itself, MAC included.
    Passthru,
}

impl MacvlanMode {
    pub const ALL: [MacvlanMode; 4] = [
        MacvlanMode::Bridge,
        MacvlanMode::Private,
        MacvlanMode::Vepa,
        MacvlanMode::Passthru,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MacvlanMode::Bridge => "bridge",
            MacvlanMode::Private => "private",
            MacvlanMode::Vepa => "vepa",
            MacvlanMode::Passthru => "passthru",
        }
    }

    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str() == value)
            .ok_or_else(|| {
                ConfigError::invalid(
                    "network option",
                    format!("{OPT_MACVLAN_MODE}={value}"),
                    "expected bridge, private, vepa or passthru",
                )
            })
    }
}

/// A macvlan network's link to the LAN.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MacvlanSpec {
    /// The host interface on the LAN that the containers' macvlans sit on; `None` for an
    /// internal network, on a parent of netd's own (see `Network::macvlan_parent`).
    pub parent: Option<IfName>,
    pub mode: MacvlanMode,
    /// The host reaches the containers through a shim macvlan of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub host_access: bool,
}

impl MacvlanSpec {
    /// Applies `key=value` when `key` is a macvlan option; `Ok(false)` for other keys.
    pub fn apply(
        parent: &mut Option<IfName>,
        mode: &mut MacvlanMode,
        host_access: &mut bool,
        key: &str,
        value: &str,
    ) -> Result<bool, ConfigError> {
        match key {
            OPT_HOST_ACCESS => {
                *host_access = value.parse().map_err(|_| {
                    ConfigError::invalid(
                        "network option",
                        format!("{OPT_HOST_ACCESS}={value}"),
                        "expected true or false",
                    )
                })?
            }
            OPT_PARENT => *parent = Some(IfName::parse(value)?),
            OPT_MACVLAN_MODE => *mode = MacvlanMode::parse(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The options `network inspect` shows, as Docker does, with the parent in use.
    pub fn options(&self, parent: &IfName) -> [(&'static str, String); 3] {
        [
            (OPT_PARENT, parent.to_string()),
            (OPT_MACVLAN_MODE, self.mode.as_str().to_string()),
            (OPT_HOST_ACCESS, self.host_access.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_by_their_docker_names() {
        for m in MacvlanMode::ALL {
            assert_eq!(MacvlanMode::parse(m.as_str()).unwrap(), m);
        }
        let e = MacvlanMode::parse("hairpin").unwrap_err().to_string();
        assert!(
            e.contains("macvlan_mode=hairpin") && e.contains("passthru"),
            "{e}"
        );
    }

    #[test]
    fn a_parent_is_an_interface_name() {
        let (mut parent, mut mode, mut access) = (None, MacvlanMode::default(), false);
        assert!(MacvlanSpec::apply(&mut parent, &mut mode, &mut access, "parent", "eth0").unwrap());
        assert_eq!(parent.unwrap().as_str(), "eth0");
        let e = MacvlanSpec::apply(
            &mut None,
            &mut mode,
            &mut access,
            "parent",
            "a-name-far-too-long",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("a-name-far-too-long"), "{e}");
        assert!(!MacvlanSpec::apply(&mut None, &mut mode, &mut access, "icc", "true").unwrap());
        assert!(
            MacvlanSpec::apply(&mut None, &mut mode, &mut access, "host_access", "true").unwrap()
        );
        assert!(access);
        let e = MacvlanSpec::apply(&mut None, &mut mode, &mut access, "host_access", "yes")
            .unwrap_err()
            .to_string();
        assert!(e.contains("host_access=yes"), "{e}");
    }
}
