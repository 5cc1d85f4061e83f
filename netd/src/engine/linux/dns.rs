//! The embedded DNS as the engine's [`DnsServing`].

use crate::{
    dns::{Dns, DnsNetwork, Names},
    engine::host::{DnsServing, HostError},
};

#[async_trait::async_trait]
impl DnsServing for Dns {
    async fn serve_dns(&self, networks: &[DnsNetwork]) -> Result<(), HostError> {
        self.serve(networks).await.map_err(|errors| {
            let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
            HostError::new("serve", "DNS", std::io::Error::other(all.join("; ")))
        })
    }

    async fn serve_dns_in(&self, key: &str, spec: &DnsNetwork) -> Result<(), HostError> {
        self.serve_in(key, spec)
            .await
            .map_err(|e| HostError::new("serve", "DNS", e))
    }

    fn stop_dns_in(&self, key: &str) {
        self.stop_in(key);
    }

    fn set_names(&self, names: Names) {
        Dns::set_names(self, names);
    }
}
