//! Control-plane operations: every API call counted by its route, and its errors by status.

use std::{collections::BTreeMap, sync::Mutex};

/// Calls and errors by operation (`METHOD /v1/route/{param}`).
#[derive(Debug, Default)]
pub struct Operations {
    counts: Mutex<BTreeMap<String, OpCount>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCount {
    pub calls: u64,
    /// Answers with a 4xx status: the request was refused.
    pub client_errors: u64,
    /// Answers with a 5xx status: the daemon or the machine failed.
    pub server_errors: u64,
}

impl Operations {
    pub fn record(&self, operation: String, status: u16) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let c = counts.entry(operation).or_default();
        c.calls += 1;
        match status {
            400..=499 => c.client_errors += 1,
            500..=599 => c.server_errors += 1,
            _ => {}
        }
    }

    pub fn snapshot(&self) -> Vec<(String, OpCount)> {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_and_errors_are_counted_by_operation() {
        let ops = Operations::default();
        ops.record("POST /v1/networks".into(), 201);
        ops.record("POST /v1/networks".into(), 409);
        ops.record("POST /v1/networks".into(), 500);
        ops.record("GET /v1/networks".into(), 200);
        let snap = ops.snapshot();
        assert_eq!(snap.len(), 2);
        let post = snap
            .iter()
            .find(|(k, _)| k == "POST /v1/networks")
            .unwrap()
            .1;
        assert_eq!(
            post,
            OpCount {
                calls: 3,
                client_errors: 1,
                server_errors: 1
            }
        );
    }
}
