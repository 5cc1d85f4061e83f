//! rtnetlink work: bridges, veth pairs, addresses and routes, in the daemon's namespace or in
//! a container's. No shelling out to `ip`.

use std::{
    net::Ipv4Addr,
    os::fd::{AsRawFd, IntoRawFd, OwnedFd},
    path::Path,
};

use futures::TryStreamExt;
use ipnetwork::Ipv4Network;
use rtnetlink::sys::TokioSocket;
use rtnetlink::{
    packet_route::{
        link::{
            AfSpecInet6, AfSpecUnspec, InfoData, InfoKind, InfoVeth, LinkAttribute, LinkMessage,
        },
        route::{RouteAddress, RouteAttribute, RouteType},
    },
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::netns;

pub mod arp;
pub mod events;
mod fdb;
mod macvlan;

pub use macvlan::MacvlanLink;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{op} {target}: {source}")]
    Netlink {
        op: &'static str,
        target: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("{op} {target}: {source}")]
    Io {
        op: &'static str,
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("interface {0} not found")]
    NotFound(String),
}

impl LinkError {
    /// Whether the kernel answered "no such object" (ENODEV, ENOENT, ESRCH).
    pub fn is_not_found(&self) -> bool {
        match self {
            LinkError::NotFound(_) => true,
            LinkError::Netlink {
                source: rtnetlink::Error::NetlinkError(msg),
                ..
            } => msg
                .code
                .is_some_and(|c| [libc::ENODEV, libc::ENOENT, libc::ESRCH].contains(&-c.get())),
            _ => false,
        }
    }
}

fn nl(op: &'static str, target: impl ToString) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let target = target.to_string();
    move |source| LinkError::Netlink { op, target, source }
}

/// The container end of a veth pair.
pub struct VethPeer<'a> {
    pub netns: &'a Path,
    pub name: &'a str,
    pub mac: [u8; 6],
    pub mtu: u32,
}

/// A link as netd sees it when looking for what it owns.
#[derive(Clone, Debug)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub alias: Option<String>,
    pub controller: Option<u32>,
    /// IPv6 is off on it (disabled, no router advertisement taken), as the dump's IPv6
    /// device settings say: reading them from /proc/sys costs far more per link.
    pub ipv6_off: bool,
}

/// An rtnetlink connection bound to one namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: Handle,
    /// The kernel runs one dump at a time per socket and answers EBUSY to a second: the
    /// repair look, the address refresh and API calls take turns.
    dumps: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Netlink {
    /// A connection in the calling thread's namespace (the daemon's).
    pub fn current() -> Result<Self, LinkError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| LinkError::Io {
            op: "open netlink socket",
            target: "daemon namespace".into(),
            source,
        })?;
        tokio::spawn(conn);
        Ok(Self {
            handle,
            dumps: Default::default(),
        })
    }

    /// A connection inside the namespace at `path`; it ends when the value is dropped.
    pub fn in_netns(path: &Path) -> Result<Self, LinkError> {
        let io = |source| LinkError::Io {
            op: "open netlink socket in",
            target: path.display().to_string(),
            source,
        };
        let fd: OwnedFd = netns::netlink_socket_in(path).map_err(io)?;
        // SAFETY: the descriptor is a NETLINK_ROUTE socket we own; ownership moves here.
        let socket =
            unsafe { <TokioSocket as std::os::fd::FromRawFd>::from_raw_fd(fd.into_raw_fd()) };
        let (conn, handle, _) = rtnetlink::from_socket(socket);
        tokio::spawn(conn);
        Ok(Self {
            handle,
            dumps: Default::default(),
        })
    }

    pub async fn links(&self) -> Result<Vec<LinkInfo>, LinkError> {
        let _turn = self.dumps.lock().await;
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl("list", "links"))?;
        Ok(msgs.into_iter().map(link_info).collect())
    }

    pub async fn link(&self, name: &str) -> Result<Option<LinkInfo>, LinkError> {
        let result: Result<Vec<LinkMessage>, _> = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_collect()
            .await;
        match result.map_err(nl("get link", name)) {
            Ok(msgs) => Ok(msgs.into_iter().next().map(link_info)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn index(&self, name: &str) -> Result<u32, LinkError> {
        self.link(name)
            .await?
            .map(|l| l.index)
            .ok_or_else(|| LinkError::NotFound(name.to_string()))
    }

    /// Creates a bridge with its own MAC set explicitly: a bridge whose address was set keeps
    /// it, where the kernel otherwise takes the lowest of its ports' addresses.
    pub async fn create_bridge(
        &self,
        name: &str,
        alias: &str,
        mtu: u32,
        mac: [u8; 6],
    ) -> Result<u32, LinkError> {
        let msg = LinkBridge::new(name)
            .mtu(mtu)
            .address(mac.to_vec())
            .up()
            .build();
        self.add_marked(msg, "create bridge", name, name, alias)
            .await
    }

    pub async fn set_mac(&self, index: u32, name: &str, mac: [u8; 6]) -> Result<(), LinkError> {
        self.set(
            "set address of",
            name,
            LinkUnspec::new_with_index(index)
                .address(mac.to_vec())
                .build(),
        )
        .await
    }

    /// Creates the link `msg` describes, named `name`, and marks it as netd's.
    async fn add_marked(
        &self,
        msg: LinkMessage,
        op: &'static str,
        name: &str,
        target: &str,
        alias: &str,
    ) -> Result<u32, LinkError> {
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(nl(op, target))?;
        let index = self.index(name).await?;
        self.mark(index, name, alias).await?;
        Ok(index)
    }

    /// Sets the alias that marks a link as netd's. The kernel ignores IFLA_IFALIAS when a
    /// link is created, so it is a second request.
    async fn mark(&self, index: u32, name: &str, alias: &str) -> Result<(), LinkError> {
        let result = self
            .set(
                "mark",
                name,
                LinkUnspec::new_with_index(index).alias(alias).build(),
            )
            .await;
        if result.is_err() {
            let _ = self.delete(index, name).await;
        }
        result
    }

    /// Creates a veth pair whose container end is born inside its namespace, already named,
    /// with its MAC and MTU; the host end stays down until it is plugged. Creating the
    /// peer in place avoids moving it, which costs an RCU grace period. Returns the host
    /// end's index; the host end carries `alias`, netd's ownership mark.
    pub async fn create_veth_into(
        &self,
        host: &str,
        alias: &str,
        peer: &VethPeer<'_>,
    ) -> Result<u32, LinkError> {
        let ns = std::fs::File::open(peer.netns).map_err(|source| LinkError::Io {
            op: "open namespace",
            target: peer.netns.display().to_string(),
            source,
        })?;
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.name)
            .address(peer.mac.to_vec())
            .mtu(peer.mtu)
            .setns_by_fd(ns.as_raw_fd())
            .build();
        let msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(host)
            .mtu(peer.mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        let target = format!("{host} (peer {} in {})", peer.name, peer.netns.display());
        self.add_marked(msg, "create veth", host, &target, alias)
            .await
    }

    pub async fn set(
        &self,
        op: &'static str,
        target: &str,
        msg: LinkMessage,
    ) -> Result<(), LinkError> {
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(nl(op, target))
    }

    pub async fn set_up(&self, index: u32, name: &str) -> Result<(), LinkError> {
        self.set(
            "set up",
            name,
            LinkUnspec::new_with_index(index).up().build(),
        )
        .await
    }

    pub async fn enslave(&self, index: u32, name: &str, bridge: u32) -> Result<(), LinkError> {
        let msg = LinkUnspec::new_with_index(index)
            .controller(bridge)
            .up()
            .build();
        self.set("attach to bridge", name, msg).await
    }

    pub async fn add_address(
        &self,
        index: u32,
        name: &str,
        ip: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), LinkError> {
        match self
            .handle
            .address()
            .add(index, ip.into(), prefix)
            .execute()
            .await
        {
            Err(rtnetlink::Error::NetlinkError(m))
                if m.code.is_some_and(|c| -c.get() == libc::EEXIST) =>
            {
                Ok(())
            }
            other => other.map_err(nl("add address", format!("{ip}/{prefix} on {name}"))),
        }
    }

    pub async fn add_default_route(&self, gateway: Ipv4Addr) -> Result<(), LinkError> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .build();
        self.replace_route(msg, "add default route via", gateway)
            .await
    }

    /// Adds route `msg`, replacing one to the same destination.
    pub(crate) async fn replace_route(
        &self,
        msg: rtnetlink::packet_route::route::RouteMessage,
        op: &'static str,
        target: impl ToString,
    ) -> Result<(), LinkError> {
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(nl(op, target))
    }

    pub async fn delete(&self, index: u32, name: &str) -> Result<(), LinkError> {
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(nl("delete link", name))
    }

    /// IPv4 destinations of the main routing table, except the default route, with the
    /// interface they leave through.
    pub async fn ipv4_routes(&self) -> Result<Vec<(Ipv4Network, Option<u32>)>, LinkError> {
        let msgs = self.main_ipv4_routes().await?;
        let mut routes = Vec::new();
        for msg in msgs {
            let prefix = msg.header.destination_prefix_length;
            if msg.header.kind != RouteType::Unicast || prefix == 0 {
                continue;
            }
            let mut dest = None;
            let mut oif = None;
            for attr in &msg.attributes {
                match attr {
                    RouteAttribute::Destination(RouteAddress::Inet(ip)) => dest = Some(*ip),
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    _ => {}
                }
            }
            if let Some(net) = dest.and_then(|ip| Ipv4Network::new(ip, prefix).ok()) {
                routes.push((net, oif));
            }
        }
        Ok(routes)
    }
}

impl Netlink {
    /// IPv4 addresses of this namespace with the index of their interface.
    pub async fn ipv4_addresses(&self) -> Result<Vec<(u32, Ipv4Addr, u8)>, LinkError> {
        use rtnetlink::packet_route::address::AddressAttribute;
        let _turn = self.dumps.lock().await;
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl("list", "addresses"))?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| {
                let ip = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(std::net::IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })?;
                Some((m.header.index, ip, m.header.prefix_len))
            })
            .collect())
    }

    /// Every IPv4 route of the main table.
    async fn main_ipv4_routes(
        &self,
    ) -> Result<Vec<rtnetlink::packet_route::route::RouteMessage>, LinkError> {
        let _turn = self.dumps.lock().await;
        let msgs: Vec<_> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(nl("list", "routes"))?;
        Ok(msgs
            .into_iter()
            .filter(|m| m.header.table == libc::RT_TABLE_MAIN)
            .collect())
    }

    /// Interfaces the main table's IPv4 default routes leave through.
    pub async fn default_route_interfaces(&self) -> Result<Vec<u32>, LinkError> {
        let msgs = self.main_ipv4_routes().await?;
        Ok(msgs
            .into_iter()
            .filter(|m| m.header.destination_prefix_length == 0)
            .filter_map(|m| {
                m.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                })
            })
            .collect())
    }
}

fn link_info(msg: LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: msg.header.index,
        name: String::new(),
        alias: None,
        controller: None,
        ipv6_off: false,
    };
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => info.name = n,
            LinkAttribute::IfAlias(a) => info.alias = Some(a),
            LinkAttribute::Controller(c) => info.controller = Some(c),
            LinkAttribute::AfSpecUnspec(families) => {
                info.ipv6_off = families.iter().any(|f| match f {
                    AfSpecUnspec::Inet6(attrs) => attrs.iter().any(|a| {
                        matches!(a, AfSpecInet6::DevConf(c) if c.disable_ipv6 == 1 && c.accept_ra == 0)
                    }),
                    _ => false,
                })
            }
            _ => {}
        }
    }
    info
}
