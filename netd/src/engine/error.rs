use crate::{config::ConfigError, ipam::IpamError, state::StoreError};

use super::host::HostError;

/// Why an operation was refused or failed. Each variant maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("{kind} {name} not found")]
    NotFound { kind: &'static str, name: String },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Process(String),
    /// Teardown keeps going past failures and reports them all.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Many(Vec<EngineError>),
}

impl EngineError {
    pub fn not_found(kind: &'static str, name: impl Into<String>) -> Self {
        Self::NotFound {
            kind,
            name: name.into(),
        }
    }
}

/// Collects the errors of a teardown that goes on past each failure.
#[derive(Default)]
pub struct Errors(Vec<EngineError>);

impl Errors {
    pub fn note<T, E: Into<EngineError>>(&mut self, result: Result<T, E>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                let e = e.into();
                log::warn!("{e}");
                self.0.push(e);
                None
            }
        }
    }

    pub fn finish(mut self) -> Result<(), EngineError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(self.0.remove(0)),
            _ => Err(EngineError::Many(self.0)),
        }
    }
}
