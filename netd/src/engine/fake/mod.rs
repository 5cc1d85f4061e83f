//! A fake machine behind every interface of [`Host`], and a test lab around the engine, for
//! the engine tests (no privileges).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use ipnetwork::Ipv4Network;

use super::{
    host::{Drivers, Host, NetworkRules, Plug},
    Engine, EngineError,
};
use crate::{
    config::{
        container::{ContainerSpec, CreateContainer},
        network::{CreateNetwork, NetworkSpec},
    },
    datapath::{nat::Publication, vips::VipSpec},
    dns::{DnsNetwork, Names},
    netns::{NsId, Protected},
    state::Store,
};

mod drivers;
mod machine;

#[derive(Default)]
pub(super) struct Kernel {
    /// Link name -> owner mark.
    pub(super) links: BTreeMap<String, String>,
    pub(super) netns: BTreeSet<PathBuf>,
    /// Other paths of a namespace (a bind mount, /proc/PID/ns/net): path -> the namespace's.
    pub(super) ns_aliases: BTreeMap<PathBuf, PathBuf>,
    /// Namespaces whose identity cannot be read.
    pub(super) ns_unreadable: BTreeSet<PathBuf>,
    pub(super) plugs: BTreeMap<String, Plug>,
    pub(super) routes: Vec<Ipv4Network>,
    pub(super) fail_plug: bool,
    pub(super) published: Vec<Publication>,
    pub(super) flushed: Vec<Ipv4Addr>,
    pub(super) masq: Vec<Ipv4Network>,
    pub(super) rules: Vec<NetworkRules>,
    pub(super) dns: Vec<DnsNetwork>,
    /// Servers in containers' namespaces, by endpoint id.
    pub(super) dns_in: BTreeMap<String, DnsNetwork>,
    pub(super) names: Option<Names>,
    pub(super) bound: Vec<u16>,
    /// The host's addresses besides loopback.
    pub(super) addresses: Vec<Ipv4Addr>,
    /// Addresses machines on the LAN answer ARP for, with their MACs.
    pub(super) lan: BTreeMap<Ipv4Addr, [u8; 6]>,
    pub(super) vips: Vec<VipSpec>,
    /// The ports each call that forgot the datapath entries of the others kept.
    pub(super) forgets: Vec<Vec<String>>,
}

#[derive(Default)]
pub(super) struct FakeHost(pub(super) Mutex<Kernel>);

impl FakeHost {
    pub(super) fn k(&self) -> std::sync::MutexGuard<'_, Kernel> {
        self.0.lock().unwrap()
    }

    /// The engine's view of this fake: every interface is served by it.
    pub(super) fn interfaces(self: &Arc<Self>) -> Host {
        Host {
            links: self.clone(),
            rules: self.clone(),
            dns: self.clone(),
            telemetry: self.clone(),
            facts: self.clone(),
            drivers: Drivers {
                bridge: Arc::new(drivers::FakeBridge(self.clone())),
                macvlan: Arc::new(drivers::FakeMacvlan(self.clone())),
            },
        }
    }
}

/// The fake's protected namespaces: the daemon's own and the host's.
pub(super) const PROTECTED: [(&str, &str); 2] = [
    ("/proc/self/ns/net", "the daemon's own network namespace"),
    ("/proc/1/ns/net", "the host's network namespace (PID 1's)"),
];

/// A fake namespace's identity: one per path the fake knows as a namespace.
pub(super) fn fake_ns_id(path: &Path) -> NsId {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    NsId {
        dev: 4,
        ino: h.finish(),
    }
}

pub(super) struct Lab {
    pub(super) host: Arc<FakeHost>,
    pub(super) dir: tempfile::TempDir,
    pub(super) engine: Engine,
}

pub(super) async fn lab_with_routes(routes: &[&str]) -> Lab {
    let host = Arc::new(FakeHost::default());
    host.k().routes = routes.iter().map(|r| r.parse().unwrap()).collect();
    let dir = tempfile::tempdir().unwrap();
    let engine = start(&host, dir.path()).await;
    Lab { host, dir, engine }
}

pub(super) async fn lab() -> Lab {
    lab_with_routes(&[]).await
}

pub(super) async fn start(host: &Arc<FakeHost>, dir: &Path) -> Engine {
    let store = Store::open(dir).unwrap();
    let host = host.interfaces();
    let mut protected = Protected::default();
    for (path, what) in PROTECTED {
        protected.add(fake_ns_id(Path::new(path)), what);
    }
    Engine::start(host, store, "/proc/self/ns/net".into(), protected)
        .await
        .unwrap()
        .0
}

pub(super) fn net_spec(name: &str, subnet: Option<&str>) -> NetworkSpec {
    NetworkSpec::try_from(CreateNetwork {
        name: name.into(),
        subnet: subnet.map(Into::into),
        ..Default::default()
    })
    .unwrap()
}

pub(super) fn spec(name: &str, network: &str, ip: Option<&str>) -> ContainerSpec {
    ContainerSpec::try_from(CreateContainer {
        name: name.into(),
        network: Some(network.into()),
        ip: ip.map(Into::into),
        ..Default::default()
    })
    .unwrap()
}

impl Lab {
    pub(super) async fn run(
        &mut self,
        name: &str,
        network: &str,
        ip: Option<&str>,
    ) -> Result<Ipv4Addr, EngineError> {
        let (c, _) = self
            .engine
            .create_container(spec(name, network, ip))
            .await?;
        Ok(c.endpoints
            .first()
            .map(|e| e.ip)
            .unwrap_or(Ipv4Addr::UNSPECIFIED))
    }

    /// Links, namespaces and container folders that exist.
    pub(super) fn footprint(&self) -> (usize, usize, usize) {
        let k = self.host.k();
        let dirs = std::fs::read_dir(self.dir.path().join("containers"))
            .unwrap()
            .count();
        (k.links.len(), k.netns.len(), dirs)
    }
}

pub(super) fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
