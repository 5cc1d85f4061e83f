//! Typed handle for virtual IPs: each VIP with its backends (slots for round robin and random,
//! a Maglev table), the backends' endpoint flag (their replies are translated back), and the
//! connections each backend was chosen for.

use std::{
    collections::{BTreeSet, HashSet},
    net::Ipv4Addr,
};

use aya::maps::{MapError, PerCpuValues};
use netd_common::{
    isolation::EP_VIP_BACKEND,
    lb::{maglev_fill, maglev_release, MAX_BACKENDS},
    maps,
    vip::{Algorithm, MaglevTable, Vip, VipSlot},
};

use super::{
    nat::{addr_be, ip_of},
    Datapath, DatapathError,
};

fn map_err(name: &'static str) -> impl Fn(MapError) -> DatapathError {
    move |source| DatapathError::Map { name, source }
}

/// One virtual IP as the control plane wants it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VipSpec {
    /// Key of its backends, table and counters; unique and non-zero.
    pub id: u32,
    /// Datapath id of its network.
    pub network: u32,
    pub addr: Ipv4Addr,
    pub algorithm: Algorithm,
    /// Addresses of the running members that carry the alias.
    pub backends: BTreeSet<Ipv4Addr>,
}

impl Datapath {
    /// Makes the VIPs exactly `vips`. A VIP's backends and table are written before its
    /// entry, so that a count never points past them; backends that left are gone once this
    /// returns, and get no new connection after that (existing ones keep their conntrack
    /// entries). With Maglev, a removed backend's slots go to the others and no other slot
    /// moves; an added backend rebuilds the table (Maglev's own near-minimal disruption).
    pub fn set_vips(&mut self, vips: &[VipSpec]) -> Result<(), DatapathError> {
        if let Some(v) = vips.iter().find(|v| v.backends.len() > MAX_BACKENDS) {
            return Err(DatapathError::TooManyBackends {
                vip: v.addr,
                count: v.backends.len(),
            });
        }
        let old: Vec<(u32, Vip)> = self.vips.iter().filter_map(Result::ok).collect();
        // No VIP before nor after: no endpoint carries the backend flag, nothing to do. This
        // runs at every change of the state, `netd run` included.
        if vips.is_empty() && old.is_empty() {
            return Ok(());
        }
        self.set_backend_flags(vips)?;
        for spec in vips {
            let key = addr_be(spec.addr);
            let previous = old.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
            self.write_vip(spec, previous)?;
        }
        for (addr, vip) in old {
            if !vips.iter().any(|s| addr_be(s.addr) == addr) {
                let _ = self.vips.remove(&addr);
            }
            if !vips.iter().any(|s| s.id == vip.id) {
                self.forget_vip(vip.id, u32::from(vip.backends), &[]);
            }
        }
        Ok(())
    }

    fn write_vip(&mut self, spec: &VipSpec, previous: Option<Vip>) -> Result<(), DatapathError> {
        let backends: Vec<u32> = spec.backends.iter().map(|b| addr_be(*b)).collect();
        for (slot, addr) in backends.iter().enumerate() {
            let key = VipSlot {
                id: spec.id,
                slot: slot as u32,
            };
            self.vip_backends
                .insert(key, *addr, 0)
                .map_err(map_err(maps::VIP_BACKENDS))?;
        }
        if spec.algorithm == Algorithm::Maglev {
            let table = self.maglev_table(spec.id, &backends);
            self.vip_maglev
                .insert(spec.id, table, 0)
                .map_err(map_err(maps::VIP_MAGLEV))?;
        }
        let vip = Vip {
            id: spec.id,
            network: spec.network,
            next: previous.filter(|p| p.id == spec.id).map_or(0, |p| p.next),
            backends: backends.len() as u16,
            algorithm: spec.algorithm as u8,
            _pad: [0; 5],
        };
        self.vips
            .insert(addr_be(spec.addr), vip, 0)
            .map_err(map_err(maps::VIPS))?;
        if let Some(p) = previous.filter(|p| p.id == spec.id) {
            self.forget_vip(p.id, u32::from(p.backends), &backends);
            if spec.algorithm != Algorithm::Maglev {
                let _ = self.vip_maglev.remove(&spec.id);
            }
        }
        Ok(())
    }

    /// The Maglev table for `backends`: the current one with the slots of backends that left
    /// handed to the others, or a fresh one when a backend joined (or there was none).
    fn maglev_table(&self, id: u32, backends: &[u32]) -> MaglevTable {
        let mut table = self.vip_maglev.get(&id, 0).unwrap_or(MaglevTable::EMPTY);
        let owners: HashSet<u32> = table.slots.iter().copied().collect();
        if backends.iter().any(|b| !owners.contains(b)) {
            table = MaglevTable::EMPTY;
        }
        for owner in owners {
            if !backends.contains(&owner) {
                maglev_release(&mut table.slots, owner);
            }
        }
        let mut next = vec![0; backends.len()];
        maglev_fill(&mut table.slots, backends, &mut next);
        table
    }

    /// Removes what VIP `id` had beyond `keep`: backend slots past its count, counters of
    /// backends not kept, and (when nothing is kept) its table.
    fn forget_vip(&mut self, id: u32, old_count: u32, keep: &[u32]) {
        for slot in keep.len() as u32..old_count {
            let _ = self.vip_backends.remove(&VipSlot { id, slot });
        }
        let stale: Vec<VipSlot> = self
            .vip_connections
            .keys()
            .filter_map(Result::ok)
            .filter(|k| k.id == id && !keep.contains(&k.slot))
            .collect();
        for key in stale {
            let _ = self.vip_connections.remove(&key);
        }
        if keep.is_empty() {
            let _ = self.vip_maglev.remove(&id);
        }
    }

    /// Marks the endpoints of backends (their replies to members must be translated back)
    /// and unmarks the others.
    fn set_backend_flags(&mut self, vips: &[VipSpec]) -> Result<(), DatapathError> {
        let wanted: HashSet<(u32, u32)> = vips
            .iter()
            .flat_map(|v| v.backends.iter().map(|b| (v.network, addr_be(*b))))
            .collect();
        for (ifindex, mut ep) in self.endpoints() {
            let want = wanted.contains(&(ep.network, ep.addr_be));
            if want == (ep.flags & EP_VIP_BACKEND != 0) {
                continue;
            }
            ep.flags ^= EP_VIP_BACKEND;
            self.set_endpoint(ifindex, ep)?;
        }
        Ok(())
    }

    /// The VIPs as the datapath has them: address, id, algorithm and backends in slot order.
    pub fn vips(&self) -> Vec<(Ipv4Addr, u32, Algorithm, Vec<Ipv4Addr>)> {
        self.vips
            .iter()
            .filter_map(Result::ok)
            .map(|(addr, v): (u32, Vip)| {
                let backends = (0..u32::from(v.backends))
                    .filter_map(|slot| self.vip_backends.get(&VipSlot { id: v.id, slot }, 0).ok())
                    .map(ip_of)
                    .collect();
                let algorithm = Algorithm::from_u8(v.algorithm).unwrap_or(Algorithm::RoundRobin);
                (ip_of(addr), v.id, algorithm, backends)
            })
            .collect()
    }

    /// The Maglev table of VIP `id`, if it has one.
    pub fn maglev(&self, id: u32) -> Option<MaglevTable> {
        self.vip_maglev.get(&id, 0).ok()
    }

    /// Connections sent to each backend of VIP `id`, summed over CPUs.
    pub fn vip_connections(&self, id: u32) -> Vec<(Ipv4Addr, u64)> {
        self.vip_connections
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, _): &(VipSlot, PerCpuValues<u64>)| k.id == id)
            .map(|(k, per_cpu)| (ip_of(k.slot), per_cpu.iter().sum()))
            .collect()
    }
}
