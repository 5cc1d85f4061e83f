//! Loading the object, with its maps pinned under `<bpffs>/maps` so that a restarted daemon
//! finds the same maps (and counters).

use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::{
    maps::{lpm_trie::LpmTrie, Array, HashMap, Map, MapData, PerCpuArray, PerCpuHashMap},
    programs::{ProgramError, SchedClassifier},
    Ebpf, EbpfLoader,
};
use netd_common::{
    counters::{IfaceCounters, IfaceKey},
    isolation::{DropCounters, DropKey, Endpoint, Member, NetworkPolicy},
    maps,
    nat::{
        CtEntry, CtKey, CtStats, DatapathConfig, PortKey, PortStats, PortStatsKey, PortTarget,
        Uplink,
    },
    vip::{MaglevTable, Vip, VipSlot},
};

/// The datapath object, built by build.rs from netd-ebpf.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/netd"));

#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    #[error("{op} {path}: {source}; is bpffs mounted at /sys/fs/bpf (cargo xtask setup does it)?")]
    Bpffs {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("loading the eBPF object: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("reading the eBPF object's maps: {0}")]
    Object(String),
    #[error("program {name}: {source}")]
    Program {
        name: &'static str,
        #[source]
        source: ProgramError,
    },
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error(
        "virtual IP {vip}: {count} backends, at most {} are supported",
        netd_common::lb::MAX_BACKENDS
    )]
    TooManyBackends {
        vip: std::net::Ipv4Addr,
        count: usize,
    },
    #[error("{op} on port {port}: {source}")]
    Port {
        op: &'static str,
        port: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub struct Datapath {
    pub(super) ebpf: Ebpf,
    pub(super) iface_counters: PerCpuHashMap<MapData, IfaceKey, IfaceCounters>,
    pub(super) ports: HashMap<MapData, PortKey, PortTarget>,
    pub(super) conntrack: HashMap<MapData, CtKey, CtEntry>,
    /// Connections without a reply yet (see the programs' `conntrack`).
    pub(super) conntrack_new: HashMap<MapData, CtKey, CtEntry>,
    pub(super) local_addrs: HashMap<MapData, u32, u32>,
    pub(super) masq_subnets: LpmTrie<MapData, u32, u32>,
    pub(super) uplinks: HashMap<MapData, u32, Uplink>,
    pub(super) config: Array<MapData, DatapathConfig>,
    pub(super) endpoints: HashMap<MapData, u32, Endpoint>,
    pub(super) members: HashMap<MapData, u32, Member>,
    pub(super) networks: HashMap<MapData, u32, NetworkPolicy>,
    pub(super) network_subnets: LpmTrie<MapData, u32, u32>,
    pub(super) bridges: HashMap<MapData, u32, u32>,
    pub(super) drops: PerCpuHashMap<MapData, DropKey, DropCounters>,
    pub(super) vips: HashMap<MapData, u32, Vip>,
    pub(super) port_stats: PerCpuHashMap<MapData, PortStatsKey, PortStats>,
    pub(super) events: Option<aya::maps::RingBuf<MapData>>,
    pub(super) monitor: super::monitor::MonitorSwitch,
    pub(super) vip_backends: HashMap<MapData, VipSlot, u32>,
    pub(super) vip_maglev: HashMap<MapData, u32, MaglevTable>,
    pub(super) vip_connections: PerCpuHashMap<MapData, VipSlot, u64>,
    pub(super) ct_stats: PerCpuArray<MapData, CtStats>,
    pub(super) churn: super::churn::ChurnCounts,
    pub(super) evictions_seen: super::churn::EvictionsSeen,
    /// The daemon's bpffs dir: maps under `maps/`, pinned links under `links/`.
    pub(super) pin_dir: PathBuf,
    /// Whether this load took this build's pinned programs instead of loading them.
    programs_reused: bool,
    /// Pinned maps this load found with another layout, and made anew.
    maps_reset: Vec<String>,
    /// Pinned maps this load found with an older layout and moved into this build's.
    maps_moved: Vec<String>,
    /// Their old maps, until [`Datapath::finish_moves`].
    moving: Vec<super::pins::Moving>,
}

impl Datapath {
    /// Loads the programs; maps already pinned under `bpffs` are reused, with their contents.
    pub fn load(bpffs: &Path) -> Result<Self, DatapathError> {
        Self::load_sized(bpffs, maps::CONNTRACK_MAX)
    }

    /// [`Datapath::load`] with a connection-tracking table of `conntrack_max` entries. A
    /// pinned table of another size is replaced, and its connections start over.
    pub fn load_sized(bpffs: &Path, conntrack_max: u32) -> Result<Self, DatapathError> {
        let maps_dir = bpffs.join("maps");
        fs::create_dir_all(&maps_dir).map_err(|source| DatapathError::Bpffs {
            op: "create",
            path: maps_dir.clone(),
            source,
        })?;
        let pending_max = maps::conntrack_new_max(conntrack_max);
        let sizes = [
            (maps::CONNTRACK, conntrack_max),
            (maps::CONNTRACK_NEW, pending_max),
        ];
        let super::pins::Prepared { reset, moving } = super::pins::prepare(bpffs, OBJECT, &sizes)?;
        let tables_reset = reset
            .iter()
            .any(|m| m == maps::CONNTRACK || m == maps::CONNTRACK_NEW);
        if tables_reset {
            log::warn!("connection-tracking table made anew: its connections start over");
        }
        let churn_new = !maps_dir.join(maps::CT_CHURN).exists();
        let mut ebpf = EbpfLoader::new()
            .default_map_pin_directory(&maps_dir)
            .map_max_entries(maps::CONNTRACK, conntrack_max)
            .map_max_entries(maps::CONNTRACK_NEW, pending_max)
            .load(OBJECT)?;
        for m in &moving {
            m.copy(bpffs, false)?;
        }
        let pinned: Vec<String> = ebpf
            .maps()
            .map(|(name, _)| name.to_string())
            .filter(|name| maps_dir.join(name).exists())
            .collect();
        super::pins::record_versions(bpffs, &pinned)?;
        let reused = super::programs::load_or_reuse(&mut ebpf, bpffs, OBJECT)?;
        let iface_counters = take_map(&mut ebpf, maps::IFACE_COUNTERS)?;
        let ports = take_map(&mut ebpf, maps::PORTS)?;
        let conntrack = take_map(&mut ebpf, maps::CONNTRACK)?;
        let conntrack_new = take_map(&mut ebpf, maps::CONNTRACK_NEW)?;
        let local_addrs = take_map(&mut ebpf, maps::LOCAL_ADDRS)?;
        let masq_subnets = take_map(&mut ebpf, maps::MASQ_SUBNETS)?;
        let uplinks = take_map(&mut ebpf, maps::UPLINKS)?;
        let config = take_map(&mut ebpf, maps::CONFIG)?;
        let endpoints = take_map(&mut ebpf, maps::ENDPOINTS)?;
        let members = take_map(&mut ebpf, maps::MEMBERS)?;
        let networks = take_map(&mut ebpf, maps::NETWORKS)?;
        let network_subnets = take_map(&mut ebpf, maps::NETWORK_SUBNETS)?;
        let bridges = take_map(&mut ebpf, maps::BRIDGES)?;
        let drops = take_map(&mut ebpf, maps::DROPS)?;
        let vips = take_map(&mut ebpf, maps::VIPS)?;
        let port_stats = take_map(&mut ebpf, maps::PORT_STATS)?;
        let events = Some(take_map(&mut ebpf, maps::EVENTS)?);
        let mut monitor: super::monitor::MonitorSwitch = take_map(&mut ebpf, maps::MONITOR)?;
        // Nobody watches a daemon that just started.
        monitor.set(0, 0, 0).map_err(|source| DatapathError::Map {
            name: maps::MONITOR,
            source,
        })?;
        let vip_backends = take_map(&mut ebpf, maps::VIP_BACKENDS)?;
        let vip_maglev = take_map(&mut ebpf, maps::VIP_MAGLEV)?;
        let vip_connections = take_map(&mut ebpf, maps::VIP_CONNECTIONS)?;
        let ct_stats = take_map(&mut ebpf, maps::CT_STATS)?;
        let churn_map = ebpf.take_map(maps::CT_CHURN).ok_or(DatapathError::Map {
            name: maps::CT_CHURN,
            source: aya::maps::MapError::InvalidName {
                name: maps::CT_CHURN.into(),
            },
        })?;
        let mut churn = super::churn::ChurnCounts::open(churn_map)?;
        churn.baseline(tables_reset, churn_new, || {
            let count = |t| super::nat::table_entries(t).len() as u64;
            (count(&conntrack), count(&conntrack_new))
        })?;
        Ok(Self {
            ebpf,
            iface_counters,
            ports,
            conntrack,
            conntrack_new,
            local_addrs,
            masq_subnets,
            uplinks,
            config,
            endpoints,
            members,
            networks,
            network_subnets,
            bridges,
            drops,
            vips,
            port_stats,
            events,
            monitor,
            vip_backends,
            vip_maglev,
            vip_connections,
            ct_stats,
            churn,
            evictions_seen: Default::default(),
            pin_dir: bpffs.to_path_buf(),
            programs_reused: reused,
            maps_reset: reset,
            maps_moved: moving.iter().map(|m| m.name.clone()).collect(),
            moving,
        })
    }

    /// Moves into the new maps what the old programs added since the load, and lets the old
    /// maps go. Call once this build's programs are attached everywhere.
    pub fn finish_moves(&mut self) -> Result<(), DatapathError> {
        for m in std::mem::take(&mut self.moving) {
            let late = m.copy(&self.pin_dir, true)?;
            if late > 0 {
                log::info!(
                    "{late} more entries of {} moved after the programs switched",
                    m.name
                );
            }
        }
        Ok(())
    }

    /// Whether this load took this build's pinned programs, verified by an earlier run,
    /// instead of loading them through the verifier.
    pub fn programs_reused(&self) -> bool {
        self.programs_reused
    }

    /// The pinned maps this load found with an older layout and moved into this build's.
    pub fn maps_moved(&self) -> &[String] {
        &self.maps_moved
    }

    /// The pinned maps this load found with another layout than this build's, and made
    /// anew (their entries were reset).
    pub fn maps_reset(&self) -> &[String] {
        &self.maps_reset
    }

    /// Connections opened and inserts refused, summed over CPUs.
    pub fn conntrack_stats(&self) -> CtStats {
        self.ct_stats
            .get(&0, 0)
            .map(|per_cpu| {
                per_cpu.iter().fold(CtStats::default(), |sum, s| CtStats {
                    opened: sum.opened + s.opened,
                    insert_failures: sum.insert_failures + s.insert_failures,
                })
            })
            .unwrap_or_default()
    }

    /// The kernel's id of the loaded program `name`.
    pub(super) fn program_id(&self, name: &str) -> Option<u32> {
        Some(self.ebpf.program(name)?.info().ok()?.id())
    }

    /// A loaded classifier, for program test-runs on crafted packets.
    pub fn classifier(
        &mut self,
        name: &'static str,
    ) -> Result<&mut SchedClassifier, DatapathError> {
        classifier_for(&mut self.ebpf, name)
    }
}

pub(super) fn classifier_for<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, DatapathError> {
    program(ebpf, name)
}

/// A program of the object as its type.
pub(super) fn program<'a, T>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut T, DatapathError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
{
    let program = ebpf.program_mut(name).ok_or(DatapathError::Program {
        name,
        source: ProgramError::UnexpectedProgramType,
    })?;
    program
        .try_into()
        .map_err(|source| DatapathError::Program { name, source })
}

/// Takes a map out of the object as its typed handle.
fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, DatapathError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(DatapathError::Map {
        name,
        source: aya::maps::MapError::InvalidName { name: name.into() },
    })?;
    T::try_from(map).map_err(|source| DatapathError::Map { name, source })
}
