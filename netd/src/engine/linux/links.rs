//! Links and namespaces of the real host: rtnetlink and bind-mounted namespaces.

use std::{net::Ipv4Addr, path::Path};

use super::LinuxHost;
use crate::{
    engine::host::{HostError, Links, OwnedLink, OWNER_MARK},
    link::Netlink,
    netns,
};

#[async_trait::async_trait]
impl Links for LinuxHost {
    async fn link_exists(&self, name: &str) -> Result<bool, HostError> {
        Ok(self.find_link(name).await?.is_some())
    }

    async fn snapshot_links(&self, on: bool) -> Result<(), HostError> {
        self.take_link_snapshot(on).await
    }

    async fn remove_link(&self, name: &str) -> Result<(), HostError> {
        match self
            .nl
            .link(name)
            .await
            .map_err(|e| HostError::new("find", name, e))?
        {
            Some(link) => match self.nl.delete(link.index, name).await {
                Err(e) if !e.is_not_found() => Err(HostError::new("remove", name, e)),
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    async fn owned_links(&self) -> Result<Vec<OwnedLink>, HostError> {
        let links = self
            .nl
            .links()
            .await
            .map_err(|e| HostError::new("list", "links", e))?;
        Ok(links
            .into_iter()
            .filter_map(|l| match &l.alias {
                Some(alias) => Some(OwnedLink {
                    owner: alias.strip_prefix(OWNER_MARK)?.to_string(),
                    name: l.name,
                    half_made: false,
                }),
                None => Some(OwnedLink {
                    owner: OwnedLink::bridge_owner(&l.name)?.to_string(),
                    name: l.name,
                    half_made: true,
                }),
            })
            .collect())
    }

    async fn create_netns(&self, path: &Path) -> Result<(), HostError> {
        let t = std::time::Instant::now();
        let target = path.to_path_buf();
        tokio::task::spawn_blocking(move || netns::create(&target))
            .await
            .map_err(|e| HostError::new("create namespace", path.display(), e))?
            .map_err(|e| HostError::new("create namespace", path.display(), e))?;
        let lo_up = async {
            let inside = Netlink::in_netns(path)?;
            let lo = inside.index("lo").await?;
            inside.set_up(lo, "lo").await
        };
        if let Err(e) = lo_up.await {
            let _ = netns::remove(path);
            return Err(HostError::new("bring up lo in", path.display(), e));
        }
        log::debug!("namespace {} ready after {:?}", path.display(), t.elapsed());
        Ok(())
    }

    async fn remove_netns(&self, path: &Path) -> Result<(), HostError> {
        netns::remove(path).map_err(|e| HostError::new("remove namespace", path.display(), e))
    }

    fn netns_alive(&self, path: &Path) -> bool {
        netns::is_namespace(path)
    }

    async fn rebind_netns(&self, path: &Path, pid: i32) -> Result<(), HostError> {
        let from = format!("/proc/{pid}/ns/net");
        netns::bind(Path::new(&from), path)
            .map_err(|e| HostError::new("mount namespace again at", path.display(), e))
    }

    fn netns_id(&self, path: &Path) -> std::io::Result<netns::NsId> {
        netns::NsId::of(path)
    }

    async fn set_default_route(&self, netns: &Path, gateway: Ipv4Addr) -> Result<(), HostError> {
        let inside =
            Netlink::in_netns(netns).map_err(|e| HostError::new("enter", netns.display(), e))?;
        inside
            .add_default_route(gateway)
            .await
            .map_err(|e| HostError::new("route via", gateway, e))
    }
}
