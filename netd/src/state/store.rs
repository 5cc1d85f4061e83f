//! The state directory: one JSON file per network and per container, each replaced atomically
//! (write to a temporary file, fsync, rename, fsync the directory), so that a crash leaves
//! either the old or the new version, never half of one.

use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde::{de::DeserializeOwned, Serialize};

use super::model::{Container, IpamPool, Network};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state {op} {path}: the file system holding it is full ({source}); free space there, or remove containers or networks (rm works on a full disk)")]
    Full {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("state file {path} is corrupt: {source}")]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl StoreError {
    /// An I/O error of `op` on `path`; a full file system is named as such.
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> Self {
        let path = path.to_path_buf();
        match source.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => StoreError::Full { op, path, source },
            _ => StoreError::Io { op, path, source },
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::io(op, path, source)
}

#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        use std::os::unix::fs::PermissionsExt;
        for dir in ["networks", "containers", "netns"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io_err("create", &path))?;
        }
        // Nobody else reads the state or the containers' logs, whatever an older version
        // left in them (it wrote 0644 files in 0755 dirs).
        fs::set_permissions(root, fs::Permissions::from_mode(0o700))
            .map_err(io_err("chmod", root))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a container's own namespace is bind-mounted.
    pub fn netns_path(&self, container_id: &str) -> PathBuf {
        self.root.join("netns").join(container_id)
    }

    pub fn netns_dir(&self) -> PathBuf {
        self.root.join("netns")
    }

    /// Folder of a container's files: config, hosts, resolv.conf, log.
    pub fn container_dir(&self, container_id: &str) -> PathBuf {
        self.root.join("containers").join(container_id)
    }

    pub fn save_network(&self, net: &Network) -> Result<(), StoreError> {
        let path = self.root.join("networks").join(format!("{}.json", net.id));
        write_json(&path, net)
    }

    pub fn delete_network(&self, id: &str) -> Result<(), StoreError> {
        let path = self.root.join("networks").join(format!("{id}.json"));
        remove_file(&path)?;
        sync_dir(path.parent().expect("has a parent"))
    }

    pub fn save_container(&self, c: &Container) -> Result<(), StoreError> {
        let dir = self.container_dir(&c.id);
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        write_json(&dir.join(CONFIG), c)
    }

    pub fn delete_container(&self, id: &str) -> Result<(), StoreError> {
        let dir = self.container_dir(id);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err("remove", &dir)(e)),
            _ => {}
        }
        sync_dir(&self.root.join("containers"))
    }

    /// Counts one more reconciliation of this state with the machine and returns how many
    /// there have been since the state was made: the count lives beside the state, so that a
    /// restarted daemon goes on from it. A count that cannot be written (a full disk) is
    /// still counted, with the error beside it: it never stops a start.
    pub fn count_reconcile(&self) -> (u64, Result<(), StoreError>) {
        let path = self.root.join("reconciles.json");
        let done: u64 = read_json(&path).unwrap_or(0);
        (done + 1, write_json(&path, &(done + 1)))
    }

    /// Marks a container as being removed, before anything of it goes, so that a crash
    /// during `rm` is finished at the next start. A rename: it needs no free space, and
    /// `rm` must work on a full disk to free some.
    pub fn mark_removing(&self, id: &str) -> Result<(), StoreError> {
        let dir = self.container_dir(id);
        let marked = dir.join(REMOVING);
        match fs::rename(dir.join(CONFIG), &marked) {
            Ok(()) => sync_dir(&dir),
            // Marked already, or never written (nothing on disk to finish).
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("rename", &marked)(e)),
        }
    }

    /// The pools of netd's IPAM driver, all in one file (a handful, written when Docker
    /// asks for a pool or an address).
    pub fn save_ipam_pools(&self, pools: &[&IpamPool]) -> Result<(), StoreError> {
        write_json(&self.root.join("ipam-pools.json"), &pools)
    }

    pub fn load_ipam_pools(&self) -> Result<Vec<IpamPool>, StoreError> {
        let path = self.root.join("ipam-pools.json");
        if path.exists() {
            read_json(&path)
        } else {
            Ok(Vec::new())
        }
    }

    pub fn load(&self) -> Result<(Vec<Network>, Vec<Container>), StoreError> {
        let mut networks = Vec::new();
        for path in list(&self.root.join("networks"))? {
            if path.extension().is_some_and(|e| e == "json") {
                networks.push(read_json(&path)?);
            }
        }
        let mut containers = Vec::new();
        for dir in list(&self.root.join("containers"))? {
            let removing = dir.join(REMOVING);
            if removing.exists() {
                let mut c: Container = read_json(&removing)?;
                c.removing = true;
                containers.push(c);
            } else if dir.join(CONFIG).exists() {
                containers.push(read_json(&dir.join(CONFIG))?);
            }
        }
        Ok((networks, containers))
    }
}

impl Store {
    /// Removes what a crash left half-written: container dirs that never got their
    /// config.json (the files are written first, the config last) and temporary files of
    /// writes that never reached their rename, in every folder the daemon writes. Returns
    /// what went.
    pub fn remove_debris(&self) -> Result<Vec<PathBuf>, StoreError> {
        let mut removed = Vec::new();
        let is_tmp = |p: &Path| p.extension().is_some_and(|e| e == "tmp");
        for path in list(&self.root)?
            .into_iter()
            .chain(list(&self.root.join("networks"))?)
            .filter(|p| is_tmp(p) && p.is_file())
        {
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
            removed.push(path);
        }
        for dir in list(&self.root.join("containers"))? {
            if !dir.join(CONFIG).exists() && !dir.join(REMOVING).exists() {
                fs::remove_dir_all(&dir).map_err(io_err("remove", &dir))?;
                removed.push(dir);
                continue;
            }
            for path in list(&dir)?.into_iter().filter(|p| is_tmp(p)) {
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
                removed.push(path);
            }
        }
        Ok(removed)
    }
}

/// A container's record, and the same record once its removal began.
const CONFIG: &str = "config.json";
const REMOVING: &str = "removing.json";

fn list(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("read", dir))? {
        paths.push(entry.map_err(io_err("read", dir))?.path());
    }
    paths.sort();
    Ok(paths)
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, StoreError> {
    let bytes = fs::read(path).map_err(io_err("read", path))?;
    serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `value` at `path` atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec_pretty(value).expect("state types always serialize");
    write_atomic(path, &bytes)
}

/// Writes a file of the daemon's own (0600) at `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_with_mode(path, bytes, 0o600)
}

/// Writes a file that containers' processes read through a bind mount (hosts, resolv.conf:
/// 0644, as any user in the container must read them; the dir above stays the daemon's).
pub fn write_for_containers(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_with_mode(path, bytes, 0o644)
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    let written = File::create(&tmp)
        .map_err(io_err("create", &tmp))
        .and_then(|mut file| {
            // fchmod: the mode exactly, whatever the umask.
            file.set_permissions(fs::Permissions::from_mode(mode))
                .map_err(io_err("chmod", &tmp))?;
            file.write_all(bytes).map_err(io_err("write", &tmp))?;
            file.sync_data().map_err(io_err("fsync", &tmp))?;
            fs::rename(&tmp, path).map_err(io_err("rename", path))
        });
    if written.is_err() {
        // A full disk leaves no half-written file behind.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(path.parent().expect("state files live in a folder"))
}

fn remove_file(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{
        config::{mac::Mac, names::IfName, names::Name, network::SubnetSpec},
        state::model::{Driver, Endpoint, Sandbox},
    };

    fn network() -> Network {
        Network {
            id: "a".repeat(64),
            name: Name::parse("n", "net1").unwrap(),
            driver: Driver::Bridge,
            created: chrono::Utc::now(),
            predefined: false,
            internal: true,
            subnet: Some(SubnetSpec::parse("10.3.0.0/24", Some("10.3.0.128/25"), None).unwrap()),
            bridge: Some(IfName::parse("nd-aaaaaaaaaaaa").unwrap()),
            mtu: 1400,
            labels: BTreeMap::from([("k".into(), "v".into())]),
            masquerade: false,
            icc: false,
            routed: false,
            vip_aliases: true,
            alias_lb: crate::config::alias::Lb::Maglev,
            vips: BTreeMap::from([(
                "api".into(),
                crate::state::model::VipAlias {
                    id: 7,
                    ip: "10.3.0.9".parse().unwrap(),
                    lb: crate::config::alias::Lb::Random,
                    explicit: true,
                },
            )]),
            origin: crate::config::origin::Origin::Docker { id: "d".repeat(64) },
            ipam_pool: Some("10.3.0.0/24".into()),
            aux_addresses: BTreeMap::from([("host".into(), "10.3.0.5".parse().unwrap())]),
            macvlan: None,
            shim_ip: None,
        }
    }

    fn container(net: &Network) -> Container {
        Container {
            id: "b".repeat(64),
            name: Name::parse("c", "web").unwrap(),
            created: chrono::Utc::now(),
            hostname: "web".into(),
            network_mode: "net1".into(),
            sandbox: Sandbox::Owned {
                path: "/x/netns/b".into(),
            },
            origin: Default::default(),
            removing: false,
            endpoints: vec![Endpoint {
                id: "c".repeat(64),
                network_id: net.id.clone(),
                ifname: IfName::parse("eth0").unwrap(),
                host_ifname: IfName::parse("veth1234567").unwrap(),
                ip: "10.3.0.130".parse().unwrap(),
                prefix: 24,
                mac: Mac::from_ipv4("10.3.0.130".parse().unwrap()),
                aliases: vec!["api".into()],
                default_route: true,
            }],
            command: vec!["sleep".into(), "1".into()],
            process: None,
            ports: crate::config::port::parse_publish("127.0.0.1:8080:80/udp").unwrap(),
            exposed: vec!["80".parse().unwrap()],
            links: vec![],
        }
    }

    #[test]
    fn round_trip_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let net = network();
        let c = container(&net);
        store.save_network(&net).unwrap();
        store.save_container(&c).unwrap();
        let (nets, cs) = Store::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(nets, vec![net.clone()]);
        assert_eq!(cs, vec![c.clone()]);
        store.delete_container(&c.id).unwrap();
        store.delete_network(&net.id).unwrap();
        let (nets, cs) = store.load().unwrap();
        assert!(nets.is_empty() && cs.is_empty());
    }

    #[test]
    fn a_corrupt_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        fs::write(dir.path().join("networks/x.json"), b"{not json").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("networks/x.json"), "{err}");
    }
}
