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
