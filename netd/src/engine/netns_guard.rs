//! The guard on namespaces callers name (`--netns-path`, CNI_NETNS, Docker's sandbox key):
//! netd sets the interfaces and routes of such a namespace, so it must never be the host's
//! own, by whatever path it is named.

use std::path::Path;

use super::{Engine, EngineError};
use crate::config::ConfigError;

impl Engine {
    /// Refuses a path that names no namespace, one whose identity cannot be read (a check
    /// that cannot be made fails closed), and the protected namespaces.
    pub(super) fn guard_netns(&self, path: &Path) -> Result<(), EngineError> {
        let refuse = |why: String| {
            EngineError::Invalid(ConfigError::invalid(
                "netns path",
                path.display().to_string(),
                why,
            ))
        };
        if !self.host.links.netns_alive(path) {
            return Err(refuse("is not a network namespace".into()));
        }
        let id = self.host.links.netns_id(path).map_err(|e| {
            refuse(format!(
                "cannot be identified ({e}); netd refuses a namespace it cannot tell from the host's"
            ))
        })?;
        match self.protected.which(id) {
            Some(what) => Err(refuse(format!(
                "is {what}; a container needs a namespace of its own (use --network host to share the host's)"
            ))),
            None => Ok(()),
        }
    }

    /// The guard for a runtime's sandbox key (Docker's Join): Docker mounts the namespace
    /// only after Join, and moves the interface itself, so a path that is no namespace yet
    /// is taken; one that is a namespace already is checked as any other.
    pub(super) fn guard_runtime_sandbox(&self, path: &Path) -> Result<(), EngineError> {
        if !self.host.links.netns_alive(path) {
            return Ok(());
        }
        self.guard_netns(path)
    }
}
