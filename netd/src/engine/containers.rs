//! Container lifecycle: create (namespace, interface, files), start, remove, and the sandbox
//! a process of the container runs in.

use std::path::PathBuf;

use super::{endpoints::EndpointRequest, Engine, EngineError, Errors};
use crate::{
    config::container::{ContainerSpec, NetworkMode},
    process::{self, SandboxEnv},
    state::model::{new_id, Container, Driver, Link, Process, Sandbox},
};

/// A process the caller must wait for, to record its exit.
#[derive(Debug)]
pub struct Started {
    pub container_id: String,
    pub child: tokio::process::Child,
}

/// What a failed create has made so far, undone in reverse.
enum Undo {
    Files(String),
    Netns(PathBuf),
}

impl Engine {
    pub async fn create_container(
        &mut self,
        spec: ContainerSpec,
    ) -> Result<(Container, Option<Started>), EngineError> {
        if let Some(other) = self.containers.values().find(|c| c.name == spec.name) {
            return Err(EngineError::Conflict(format!(
                "container name {} is already in use by container {}; remove it or pick another name",
                spec.name,
                &other.id[..12]
            )));
        }
        let id = new_id();
        let (mode_name, sandbox, network) = self.plan_sandbox(&id, &spec)?;
        let links = self.plan_links(&spec, network.as_deref())?;
        let mut c = Container {
            hostname: spec
                .hostname
                .clone()
                .unwrap_or_else(|| id[..12].to_string()),
            id,
            name: spec.name.clone(),
            created: chrono::Utc::now(),
            network_mode: mode_name,
            sandbox,
            endpoints: Vec::new(),
            command: spec.command.clone(),
            process: None,
            links,
            ports: Vec::new(),
            exposed: spec.expose.clone(),
            origin: spec.origin.clone(),
            removing: false,
        };
        let mut undo = vec![Undo::Files(c.id.clone())];
        let result = self
            .build_container(&mut c, &spec, network, &mut undo)
            .await;
        let started = match result {
            Ok(()) if spec.start => self.start_process(&mut c),
            Ok(()) => Ok(None),
            Err(e) => Err(e),
        };
        let started = match started.and_then(|s| {
            self.store
                .save_container(&c)
                .map(|()| s)
                .map_err(Into::into)
        }) {
            Ok(started) => started,
            Err(e) => {
                self.undo_create(&c, undo).await;
                return Err(e);
            }
        };
        self.containers.insert(c.id.clone(), c.clone());
        self.refresh_names();
        Ok((c, started))
    }

    /// Legacy links: only on the default bridge, to containers that are on it too.
    fn plan_links(
        &self,
        spec: &ContainerSpec,
        network: Option<&str>,
    ) -> Result<Vec<Link>, EngineError> {
        let Some(first) = spec.links.first() else {
            return Ok(Vec::new());
        };
        let bridge = self
            .networks
            .values()
            .find(|n| n.predefined && n.subnet.is_some())
            .map(|n| n.id.as_str());
        if network.is_none() || network != bridge {
            return Err(EngineError::Conflict(format!(
                "--link {}: links work on the default bridge only; on user-defined networks containers find each other by name",
                first.container
            )));
        }
        spec.links
            .iter()
            .map(|l| {
                let target = self.container(&l.container)?;
                if bridge.is_some_and(|b| target.endpoint_on(b).is_none()) {
                    return Err(EngineError::Conflict(format!(
                        "--link {}: container {} is not on the default bridge",
                        l.container, target.name
                    )));
                }
                Ok(Link {
                    container_id: target.id.clone(),
                    alias: l.alias.to_string(),
                })
            })
            .collect()
    }

    /// Hosts entries of the container's links: the target's bridge address, alias and name.
    pub(super) fn link_entries(&self, c: &Container) -> Vec<(std::net::Ipv4Addr, String)> {
        c.links
            .iter()
            .filter_map(|l| {
                let target = self.containers.get(&l.container_id)?;
                let ip = target.endpoints.first()?.ip;
                let names = if l.alias == target.name.as_str() {
                    target.name.to_string()
                } else {
                    format!("{} {}", l.alias, target.name)
                };
                Some((ip, names))
            })
            .collect()
    }

    /// Resolves the network mode into a sandbox, and the bridge network to join if any.
    fn plan_sandbox(
        &self,
        id: &str,
        spec: &ContainerSpec,
    ) -> Result<(String, Sandbox, Option<String>), EngineError> {
        // Routes and interfaces of a given namespace are netd's to set: never the daemon's
        // own (its default route would be replaced) nor the host's.
        let own = || match &spec.netns_path {
            Some(path) => {
                self.guard_netns(path)?;
                Ok::<_, EngineError>(Sandbox::External { path: path.clone() })
            }
            None => Ok(Sandbox::Owned {
                path: self.store.netns_path(id),
            }),
        };
        Ok(match &spec.mode {
            NetworkMode::Host => ("host".into(), Sandbox::Host, None),
            NetworkMode::None => ("none".into(), own()?, None),
            NetworkMode::Container(key) => {
                let other = self.container(key)?;
                let sandbox = match &other.sandbox {
                    Sandbox::Shared { container_id } => Sandbox::Shared {
                        container_id: container_id.clone(),
                    },
                    Sandbox::Host => Sandbox::Host,
                    _ => Sandbox::Shared {
                        container_id: other.id.clone(),
                    },
                };
                (format!("container:{}", other.name), sandbox, None)
            }
            NetworkMode::Network(key) => {
                let net = self.network(key)?;
                match net.driver {
                    Driver::Host => ("host".into(), Sandbox::Host, None),
                    Driver::Null => ("none".into(), own()?, None),
                    Driver::Bridge | Driver::Macvlan => {
                        (net.name.to_string(), own()?, Some(net.id.clone()))
                    }
                }
            }
        })
    }

    async fn build_container(
        &mut self,
        c: &mut Container,
        spec: &ContainerSpec,
        network: Option<String>,
        undo: &mut Vec<Undo>,
    ) -> Result<(), EngineError> {
        if let Sandbox::Owned { path } = &c.sandbox {
            self.host.links.create_netns(path).await?;
            undo.push(Undo::Netns(path.clone()));
        }
        if let Some(network_id) = network {
            let net = self.networks[&network_id].clone();
            let netns = self.own_netns(c)?;
            let endpoint = self
                .attach_endpoint(EndpointRequest {
                    container: c.name.as_str(),
                    netns,
                    network: &net,
                    ifname: spec.ifname.clone(),
                    ip: spec.ip,
                    mac: spec.mac,
                    aliases: spec.aliases.iter().map(|a| a.to_string()).collect(),
                    default_route: true,
                    dnat_target: !spec.publish.is_empty(),
                    from_ipam: false,
                    handover: false,
                })
                .await?;
            c.endpoints.push(endpoint);
        }
        c.ports = self.resolve_ports(c, &spec.publish)?;
        self.host.rules.publish(&self.publications(c)).await?;
        self.write_files(c)
    }

    async fn undo_create(&mut self, c: &Container, undo: Vec<Undo>) {
        if let Some(p) = &c.process {
            process::kill(p);
        }
        let _ = self.host.rules.unpublish(&self.publications(c)).await;
        for e in &c.endpoints {
            let _ = self.detach_endpoint(c, e).await;
        }
        self.prune_alias_vips().await;
        for step in undo.into_iter().rev() {
            let _ = match step {
                Undo::Netns(path) => self
                    .host
                    .links
                    .remove_netns(&path)
                    .await
                    .map_err(EngineError::from),
                Undo::Files(id) => self.store.delete_container(&id).map_err(EngineError::from),
            };
        }
    }

    /// The namespace, files and hostname that processes of `c` get.
    pub fn sandbox_env(&self, c: &Container) -> SandboxEnv {
        let owner = match &c.sandbox {
            Sandbox::Shared { container_id } => self.containers.get(container_id).unwrap_or(c),
            _ => c,
        };
        match &owner.sandbox {
            Sandbox::Host | Sandbox::Shared { .. } => SandboxEnv {
                netns: Some(self.daemon_netns.clone()),
                hostname: None,
                binds: Vec::new(),
            },
            // The runtime's own files and hostname stay its business.
            Sandbox::Runtime { path } => SandboxEnv {
                netns: path.clone(),
                hostname: None,
                binds: Vec::new(),
            },
            Sandbox::Owned { path } | Sandbox::External { path } => {
                let dir = self.store.container_dir(&owner.id);
                SandboxEnv {
                    netns: Some(path.clone()),
                    hostname: Some(owner.hostname.clone()),
                    binds: ["hosts", "resolv.conf", "hostname"]
                        .into_iter()
                        .map(|f| (dir.join(f), PathBuf::from("/etc").join(f)))
                        .collect(),
                }
            }
        }
    }

    fn start_process(&self, c: &mut Container) -> Result<Option<Started>, EngineError> {
        let log = self.store.container_dir(&c.id).join("log");
        let (child, process) = process::spawn(&c.command, &self.sandbox_env(c), &log)
            .map_err(|e| EngineError::Process(e.to_string()))?;
        c.process = Some(process);
        Ok(Some(Started {
            container_id: c.id.clone(),
            child,
        }))
    }

    /// Starts the container's command (again).
    pub fn start_container(&mut self, key: &str) -> Result<Option<Started>, EngineError> {
        let mut c = self.container(key)?.clone();
        if c.is_running() {
            return Err(EngineError::Conflict(format!(
                "container {} is already running",
                c.name
            )));
        }
        if c.command.is_empty() {
            return Err(EngineError::Conflict(format!(
                "container {} has no command to start; create it with one after --",
                c.name
            )));
        }
        let started = self.start_process(&mut c)?;
        self.commit_container(c)?;
        Ok(started)
    }

    pub async fn remove_container(
        &mut self,
        key: &str,
        force: bool,
    ) -> Result<String, EngineError> {
        self.remove_container_as(key, force, "netd").await
    }

    /// Removes a container on behalf of `kind` (netd's CLI, or a CNI runtime through the
    /// API): another runtime's containers are refused.
    pub async fn remove_container_as(
        &mut self,
        key: &str,
        force: bool,
        kind: &str,
    ) -> Result<String, EngineError> {
        let c = self.container(key)?;
        if c.origin.runtime_id().is_some() && c.origin.kind() != kind {
            return Err(EngineError::Forbidden(format!(
                "container {} belongs to {}: remove it there",
                c.name,
                c.origin.kind()
            )));
        }
        let id = c.id.clone();
        self.remove_container_of_anyone(&id, force).await
    }

    /// Removes a container whoever made it (a runtime's plugin removes its own).
    pub(super) async fn remove_container_of_anyone(
        &mut self,
        key: &str,
        force: bool,
    ) -> Result<String, EngineError> {
        let c = self.container(key)?.clone();
        if c.is_running() && !force {
            return Err(EngineError::Conflict(format!(
                "container {} is running; stop it first or use rm -f",
                c.name
            )));
        }
        let dependents: Vec<String> = self
            .containers
            .values()
            .filter(|o| {
                o.sandbox
                    == (Sandbox::Shared {
                        container_id: c.id.clone(),
                    })
            })
            .map(|o| o.name.to_string())
            .collect();
        if !dependents.is_empty() {
            return Err(EngineError::Conflict(format!(
                "container {} shares its network namespace with {}; remove them first",
                c.name,
                dependents.join(", ")
            )));
        }
        if !c.removing {
            self.store.mark_removing(&c.id)?;
            let marked = Container {
                removing: true,
                ..c.clone()
            };
            self.containers.insert(c.id.clone(), marked);
        }
        let mut errors = Errors::default();
        if let Some(p) = c.process.as_ref().filter(|p| p.exit_code.is_none()) {
            process::kill(p);
        }
        if let Sandbox::Owned { path } = &c.sandbox {
            // `netd exec` processes live in the namespace too; nothing else does.
            let killed = process::kill_all_in(path);
            if killed > 0 {
                log::info!(
                    "container {}: killed {killed} processes in its namespace",
                    c.name
                );
            }
        }
        errors.note(self.host.rules.unpublish(&self.publications(&c)).await);
        for e in &c.endpoints {
            errors.note(self.detach_endpoint(&c, e).await);
            self.host.rules.flush_connections(e.ip).await;
        }
        if let Sandbox::Owned { path } = &c.sandbox {
            errors.note(self.host.links.remove_netns(path).await);
        }
        errors.note(self.store.delete_container(&c.id));
        self.containers.remove(&c.id);
        self.prune_alias_vips().await;
        self.refresh_names();
        errors.finish().map(|()| c.name.to_string())
    }

    /// Marks processes of an earlier run that are gone; returns the ones still alive.
    pub(super) fn refresh_processes(&mut self) -> Vec<(String, Process)> {
        let mut alive = Vec::new();
        let ids: Vec<String> = self.containers.keys().cloned().collect();
        for id in ids {
            let Some(p) = self.containers[&id]
                .process
                .clone()
                .filter(|p| p.exit_code.is_none())
            else {
                continue;
            };
            if process::alive(&p) {
                alive.push((id, p));
            } else {
                // Not our child any more: its exit status is lost with the earlier daemon.
                self.process_exited(&id, p.pid, -1);
            }
        }
        alive
    }
}
