//! A fake [`Host`] and a test lab around the engine, for the engine tests (no privileges).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use ipnetwork::Ipv4Network;
use netd_common::{
    counters::IfaceCounters,
    isolation::{DropCounters, DropKey},
    nat::{PortStats, PortStatsKey},
};

use super::{
    host::{BridgeSpec, Host, HostError, NetworkRules, OwnedLink, Plug, ShimSpec},
    Engine, EngineError,
};
use crate::{
    config::{
        container::{ContainerSpec, CreateContainer},
        mac::Mac,
        names::IfName,
        network::{CreateNetwork, NetworkSpec},
        port::Proto,
    },
    datapath::{nat::Publication, stats::Usage, vips::VipSpec},
    dns::{DnsNetwork, Names},
    netns::{NsId, Protected},
    state::Store,
};

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
}

#[async_trait::async_trait]
impl Host for FakeHost {
    async fn routes(&self) -> Result<Vec<Ipv4Network>, HostError> {
        Ok(self.k().routes.clone())
    }
    async fn ensure_internal_parent(
        &self,
        name: &IfName,
        network_id: &str,
        _: u32,
    ) -> Result<(), HostError> {
        self.k()
            .links
            .insert(name.to_string(), network_id.to_string());
        Ok(())
    }
    async fn ensure_shim(&self, shim: &ShimSpec) -> Result<(), HostError> {
        self.k()
            .links
            .insert(shim.name.to_string(), shim.network_id.clone());
        Ok(())
    }
    async fn ensure_bridge(&self, b: &BridgeSpec) -> Result<(), HostError> {
        self.k()
            .links
            .insert(b.name.to_string(), b.network_id.clone());
        Ok(())
    }
    async fn link_exists(&self, name: &str) -> Result<bool, HostError> {
        Ok(self.k().links.contains_key(name))
    }
    async fn snapshot_links(&self, _: bool) -> Result<(), HostError> {
        Ok(())
    }
    async fn remove_link(&self, name: &str) -> Result<(), HostError> {
        self.k().links.remove(name);
        Ok(())
    }
    async fn owned_links(&self) -> Result<Vec<OwnedLink>, HostError> {
        Ok(self
            .k()
            .links
            .iter()
            .map(|(name, owner)| OwnedLink {
                name: name.clone(),
                owner: owner.clone(),
                half_made: false,
            })
            .collect())
    }
    async fn create_netns(&self, path: &Path) -> Result<(), HostError> {
        std::fs::write(path, b"").unwrap();
        self.k().netns.insert(path.to_path_buf());
        Ok(())
    }
    async fn remove_netns(&self, path: &Path) -> Result<(), HostError> {
        let _ = std::fs::remove_file(path);
        self.k().netns.remove(path);
        Ok(())
    }
    fn netns_alive(&self, path: &Path) -> bool {
        let k = self.k();
        let ns = k.ns_aliases.get(path).map_or(path, |p| p.as_path());
        k.netns.contains(ns) || PROTECTED.iter().any(|(p, _)| Path::new(p) == ns)
    }
    async fn rebind_netns(&self, path: &Path, _: i32) -> Result<(), HostError> {
        self.k().netns.insert(path.to_path_buf());
        Ok(())
    }
    fn netns_id(&self, path: &Path) -> std::io::Result<NsId> {
        let k = self.k();
        let ns = k.ns_aliases.get(path).map_or(path, |p| p.as_path());
        if k.ns_unreadable.contains(ns) {
            return Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        }
        if !k.netns.contains(ns) && !PROTECTED.iter().any(|(p, _)| Path::new(p) == ns) {
            return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        }
        Ok(fake_ns_id(ns))
    }
    async fn plug(&self, plug: &Plug) -> Result<(), HostError> {
        let mut k = self.k();
        if k.fail_plug {
            return Err(HostError::new(
                "plug",
                &plug.host_ifname,
                std::io::Error::other("injected"),
            ));
        }
        // A macvlan lives in the container's namespace only.
        if plug.macvlan.is_none() {
            k.links
                .insert(plug.host_ifname.to_string(), plug.endpoint_id.clone());
        }
        k.plugs.insert(plug.host_ifname.to_string(), plug.clone());
        Ok(())
    }
    async fn unplug(&self, host_ifname: &str) -> Result<(), HostError> {
        let mut k = self.k();
        k.links.remove(host_ifname);
        k.plugs.remove(host_ifname);
        Ok(())
    }
    async fn lan_owner(&self, _: &str, ip: Ipv4Addr) -> Result<Option<Mac>, HostError> {
        Ok(self.k().lan.get(&ip).copied().map(Mac))
    }
    async fn serve_dns_in(&self, key: &str, spec: &DnsNetwork) -> Result<(), HostError> {
        self.k().dns_in.insert(key.to_string(), spec.clone());
        Ok(())
    }
    fn stop_dns_in(&self, key: &str) {
        self.k().dns_in.remove(key);
    }
    async fn unplug_inside(&self, _: &Path, _: &str, endpoint_id: &str) -> Result<(), HostError> {
        self.k().plugs.retain(|_, p| p.endpoint_id != endpoint_id);
        Ok(())
    }
    async fn check_plug(&self, plug: &Plug) -> Vec<String> {
        match self.k().plugs.contains_key(plug.host_ifname.as_str()) {
            true => Vec::new(),
            false => vec![format!("host interface {} is gone", plug.host_ifname)],
        }
    }
    async fn adopt_port(&self, _: &Plug) -> Result<(), HostError> {
        Ok(())
    }
    async fn forget_ports_except(&self, keep: &[String], _: &[u32]) -> Result<(), HostError> {
        self.k().forgets.push(keep.to_vec());
        Ok(())
    }
    async fn set_default_route(&self, _: &Path, _: Ipv4Addr) -> Result<(), HostError> {
        Ok(())
    }
    async fn port_counters(&self, at: &[super::host::CountedAt]) -> Vec<IfaceCounters> {
        vec![IfaceCounters::default(); at.len()]
    }
    async fn mark_dnat_target(&self, host_ifname: &str) -> Result<(), HostError> {
        match self.k().plugs.get_mut(host_ifname) {
            Some(plug) => plug.dnat_target = true,
            None => {
                return Err(HostError::new(
                    "find",
                    host_ifname,
                    std::io::Error::other("gone"),
                ))
            }
        }
        Ok(())
    }
    async fn publish(&self, publications: &[Publication]) -> Result<(), HostError> {
        self.k().published.extend_from_slice(publications);
        Ok(())
    }
    async fn unpublish(&self, publications: &[Publication]) -> Result<(), HostError> {
        self.k().published.retain(|p| !publications.contains(p));
        Ok(())
    }
    async fn publish_exactly(&self, publications: &[Publication]) -> Result<(), HostError> {
        self.k().published = publications.to_vec();
        Ok(())
    }
    async fn flush_connections(&self, ip: Ipv4Addr) {
        self.k().flushed.push(ip);
    }
    async fn set_networks(&self, networks: &[NetworkRules]) -> Result<(), HostError> {
        self.k().rules = networks.to_vec();
        Ok(())
    }
    fn drops(&self) -> Vec<(DropKey, DropCounters)> {
        Vec::new()
    }
    fn set_monitor(&self, _on: bool) {}
    fn port_stats(&self) -> Vec<(PortStatsKey, PortStats)> {
        Vec::new()
    }
    fn usage(&self) -> Usage {
        Usage::default()
    }
    fn dns_counters(&self) -> Vec<crate::dns::DnsCounts> {
        Vec::new()
    }
    fn set_vips(&self, vips: &[VipSpec]) -> Result<(), HostError> {
        self.k().vips = vips.to_vec();
        Ok(())
    }
    fn vip_connections(&self, _id: u32) -> Vec<(Ipv4Addr, u64)> {
        Vec::new()
    }
    async fn serve_dns(&self, networks: &[DnsNetwork]) -> Result<(), HostError> {
        self.k().dns = networks.to_vec();
        Ok(())
    }
    fn set_names(&self, names: Names) {
        self.k().names = Some(names);
    }
    async fn set_masq_subnets(&self, subnets: &[Ipv4Network]) -> Result<(), HostError> {
        self.k().masq = subnets.to_vec();
        Ok(())
    }
    fn bound_ports(&self) -> Vec<(Proto, Ipv4Addr, u16)> {
        let bound = &self.k().bound;
        bound
            .iter()
            .map(|p| (Proto::Tcp, Ipv4Addr::UNSPECIFIED, *p))
            .collect()
    }
    fn ephemeral_ports(&self) -> (u16, u16) {
        (40000, 40004)
    }
    fn has_address(&self, ip: Ipv4Addr) -> bool {
        ip.is_loopback() || self.k().addresses.contains(&ip)
    }
}

/// The fake's protected namespaces: the daemon's own and the host's.
const PROTECTED: [(&str, &str); 2] = [
    ("/proc/self/ns/net", "the daemon's own network namespace"),
    ("/proc/1/ns/net", "the host's network namespace (PID 1's)"),
];

/// A fake namespace's identity: one per path the fake knows as a namespace.
fn fake_ns_id(path: &Path) -> NsId {
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
    let host: Arc<dyn Host> = host.clone();
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
