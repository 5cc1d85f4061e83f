//! Start-up: load the persisted state, rebuild the address pools, make the kernel match it
//! (recreate what is missing, adopt what survived), and remove only orphans netd owns.

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
};

use super::{endpoints::plug_of, ipam_pools::IPAM_HOLDER, Engine, EngineError, Errors, Host};
use crate::state::{
    model::{Container, Process, Sandbox},
    Store,
};

impl Engine {
    /// Loads and reconciles. Returns the engine and the container processes of an earlier run
    /// that are still alive, for the caller to watch.
    pub async fn start(
        host: Host,
        store: Store,
        daemon_netns: PathBuf,
        protected: crate::netns::Protected,
    ) -> Result<(Self, Vec<(String, Process)>), EngineError> {
        let (networks, containers) = store.load()?;
        let ipam_pools = store.load_ipam_pools()?;
        let mut engine = Engine {
            host,
            store,
            networks: networks.into_iter().map(|n| (n.id.clone(), n)).collect(),
            containers: containers.into_iter().map(|c| (c.id.clone(), c)).collect(),
            pools: Default::default(),
            ipam_pools: ipam_pools.into_iter().map(|p| (p.id.clone(), p)).collect(),
            daemon_netns,
            protected,
            unsaved: Default::default(),
            reconciles: 0,
            repairs: 0,
            missing_ports: Default::default(),
        };
        engine.rebuild_pools();
        engine.create_predefined().await?;
        let mut errors = Errors::default();
        for net in engine.networks.values() {
            if let Some(driver) = engine.host.driver(net.driver) {
                errors.note(driver.setup(net).await);
            }
        }
        let mut phases = Phases::start();
        // An `rm` a crash cut short is finished, not undone.
        let removing: Vec<String> = engine
            .containers
            .values()
            .filter(|c| c.removing)
            .map(|c| c.id.clone())
            .collect();
        for id in removing {
            log::info!("finishing the removal of container {id} (a crash during rm)");
            errors.note(engine.remove_container_of_anyone(&id, true).await);
        }
        // Files and processes only: walked on another thread while the interfaces are adopted.
        let sweep = engine.sweep_files_and_processes();
        errors.note(engine.host.links.snapshot_links(true).await);
        let ids: Vec<String> = engine.containers.keys().cloned().collect();
        for id in ids {
            let c = engine.containers[&id].clone();
            errors.note(engine.restore_container(&c).await);
        }
        errors.note(engine.host.links.snapshot_links(false).await);
        phases.done("containers");
        engine.remove_orphans(&mut errors).await;
        match sweep.await {
            Ok(result) => errors.note(result),
            Err(e) => errors.note::<(), _>(Err(EngineError::Process(format!(
                "sweeping state files and processes: {e}"
            )))),
        };
        phases.done("orphans");
        let published: Vec<_> = engine
            .containers
            .values()
            .flat_map(|c| engine.publications(c))
            .collect();
        errors.note(engine.host.rules.publish_exactly(&published).await);
        phases.done("ports");
        errors.note(engine.sync_masq_subnets().await);
        errors.note(engine.sync_network_rules().await);
        engine.sync_dns().await;
        phases.done("rules and DNS");
        log::info!(
            "reconciled {} networks and {} containers: {}",
            engine.networks.len(),
            engine.containers.len(),
            phases.summary()
        );
        if let Err(e) = errors.finish() {
            log::warn!("reconcile finished with errors: {e}");
        }
        let (reconciles, counted) = engine.store.count_reconcile();
        if let Err(e) = counted {
            log::warn!("counting this reconcile: {e}");
        }
        engine.reconciles = reconciles;
        let alive = engine.refresh_processes();
        Ok((engine, alive))
    }

    /// Reserves every persisted address, so that none is given out twice.
    fn rebuild_pools(&mut self) {
        let mut pools = std::collections::HashMap::new();
        for net in self.networks.values() {
            let mut refused = Vec::new();
            if let Some(pool) = self.network_pool(net, &mut refused) {
                pools.insert(net.id.clone(), pool);
            }
            for err in refused {
                log::warn!("network {}: {err}", net.name);
            }
        }
        self.pools = pools;
        for c in self.containers.values() {
            for e in &c.endpoints {
                let Some(pool) = self.pools.get_mut(&e.network_id) else {
                    log::warn!(
                        "container {} has an endpoint on unknown network {}",
                        c.name,
                        e.network_id
                    );
                    continue;
                };
                // An address from netd's IPAM went to the endpoint it was asked for.
                if let Err(err) = pool.take_over(e.ip, IPAM_HOLDER, c.name.as_str()) {
                    log::warn!("container {}: {err}", c.name);
                }
            }
        }
    }

    pub(super) async fn restore_container(&self, c: &Container) -> Result<(), EngineError> {
        let netns = match &c.sandbox {
            Sandbox::Owned { path } => {
                if !self.host.links.netns_alive(path) {
                    log::info!("recreating the namespace of container {}", c.name);
                    self.host.links.remove_netns(path).await?;
                    self.host.links.create_netns(path).await?;
                }
                path.clone()
            }
            Sandbox::External { path } if self.host.links.netns_alive(path) => path.clone(),
            Sandbox::External { path } => {
                log::warn!(
                    "namespace {} of container {} is gone",
                    path.display(),
                    c.name
                );
                return Ok(());
            }
            Sandbox::Runtime { .. } => return self.restore_handed_over(c).await,
            Sandbox::Host | Sandbox::Shared { .. } => return Ok(()),
        };
        for e in &c.endpoints {
            let Some(net) = self.networks.get(&e.network_id) else {
                continue;
            };
            let driver = self.driver(net)?;
            let plug = plug_of(net, netns.clone(), e, !c.ports.is_empty());
            // Without a host end, adopting looks for the interface in the container.
            if !driver.host_end() || self.host.links.link_exists(e.host_ifname.as_str()).await? {
                driver.adopt(&plug).await?;
                self.serve_dns_in(net, &netns, e).await;
            } else {
                log::info!("recreating interface {} of container {}", e.ifname, c.name);
                driver.attach(&plug).await?;
            }
        }
        Ok(())
    }

    /// Interfaces a runtime moved into its sandbox get their datapath back; one that is gone
    /// cannot be remade here, since only the runtime can move a new one in.
    async fn restore_handed_over(&self, c: &Container) -> Result<(), EngineError> {
        for e in &c.endpoints {
            let Some(net) = self.networks.get(&e.network_id) else {
                continue;
            };
            if self.host.links.link_exists(e.host_ifname.as_str()).await? {
                let mut plug = plug_of(net, self.daemon_netns.clone(), e, !c.ports.is_empty());
                plug.handover = true;
                self.driver(net)?.adopt(&plug).await?;
            } else {
                log::warn!(
                    "interface {} of {} container {} is gone; {} must recreate the endpoint",
                    e.host_ifname,
                    c.origin.kind(),
                    c.name,
                    c.origin.kind()
                );
            }
        }
        Ok(())
    }

    /// What a crash left half-written in the state dir, and container processes no container
    /// records, on a blocking thread: on a busy host, walking /proc and the containers dir
    /// takes as long as adopting the interfaces.
    fn sweep_files_and_processes(&self) -> tokio::task::JoinHandle<Result<(), EngineError>> {
        let recorded: HashMap<String, i32> = self
            .containers
            .values()
            .filter_map(|c| {
                let p = c.process.as_ref()?;
                (p.exit_code.is_none() && crate::process::alive(p)).then(|| (c.id.clone(), p.pid))
            })
            .collect();
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            kill_orphan_processes(&store.root().join("containers"), &recorded);
            for path in store.remove_debris()? {
                log::info!("removing incomplete state {}", path.display());
            }
            Ok(())
        })
    }

    /// Links and namespaces that carry netd's mark but are in no state, and counters of
    /// ports that are gone.
    async fn remove_orphans(&self, errors: &mut Errors) {
        let mut owners: HashSet<&str> = self.networks.keys().map(String::as_str).collect();
        let mut ports = HashSet::new();
        let mut namespaces = HashSet::new();
        for c in self.containers.values() {
            for e in &c.endpoints {
                owners.insert(&e.id);
                ports.insert(e.host_ifname.to_string());
            }
            if let Sandbox::Owned { path } = &c.sandbox {
                namespaces.insert(path.clone());
            }
        }
        if let Some(links) = errors.note(self.host.links.owned_links().await) {
            for link in &links {
                if !link.half_made && !owners.contains(link.owner.as_str()) {
                    log::info!("removing orphan link {}", link.name);
                } else if link.half_made
                    && !self.networks.keys().any(|id| id.starts_with(&link.owner))
                {
                    log::info!(
                        "removing half-made bridge {} (a crash before it was marked)",
                        link.name
                    );
                } else {
                    continue;
                }
                errors.note(self.host.links.remove_link(&link.name).await);
            }
        }
        let ports: Vec<String> = ports.into_iter().collect();
        errors.note(
            self.host
                .rules
                .forget_ports_except(&ports, &self.lan_indexes())
                .await,
        );
        let entries = std::fs::read_dir(self.store.netns_dir())
            .into_iter()
            .flatten()
            .flatten();
        for path in entries
            .map(|e| e.path())
            .filter(|p| !namespaces.contains(p))
        {
            log::info!("removing orphan namespace {}", path.display());
            errors.note(self.host.links.remove_netns(&path).await);
        }
    }
}

/// Kills the container processes no container records: a crash between starting a process
/// and recording it leaves one, writing to its container's log. One of a recorded process's
/// session or mount namespace (its children) belongs to it. `recorded`: the live process of
/// each container.
fn kill_orphan_processes(containers_dir: &Path, recorded: &HashMap<String, i32>) {
    for w in crate::process::orphans::log_writers(containers_dir) {
        let belongs = recorded.get(&w.container_id).is_some_and(|&pid| {
            w.session == pid || crate::process::orphans::same_mount_namespace(w.pid, pid)
        });
        if belongs {
            continue;
        }
        log::info!(
            "killing process {} of container {}: no container records it (a crash before it was recorded)",
            w.pid,
            &w.container_id[..w.container_id.len().min(12)]
        );
        crate::process::orphans::kill_pid(w.pid);
    }
}

/// How long each part of a reconcile took, for the log: what an operator waits for at start.
struct Phases {
    last: std::time::Instant,
    took: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    fn start() -> Self {
        Phases {
            last: std::time::Instant::now(),
            took: Vec::new(),
        }
    }

    fn done(&mut self, phase: &'static str) {
        let now = std::time::Instant::now();
        self.took.push((phase, now - self.last));
        self.last = now;
    }

    fn summary(&self) -> String {
        let parts: Vec<String> = self
            .took
            .iter()
            .map(|(phase, d)| format!("{phase} {} ms", d.as_millis()))
            .collect();
        parts.join(", ")
    }
}
