//! `create`/`run` input: the wire request and the validated spec it becomes.

use std::{net::Ipv4Addr, path::PathBuf};

use serde::{Deserialize, Serialize};

use super::{
    mac::Mac,
    names::{parse_hostname, IfName, Name},
    network::parse_ipv4,
    origin::Origin,
    port::{parse_expose, parse_publish, ExposedPort, PortMapping},
    ConfigError,
};

/// Body of `POST /v1/containers`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateContainer {
    pub name: String,
    /// A network name or id, `host`, `none` or `container:NAME`; `bridge` when absent.
    #[serde(default)]
    pub network: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub mac_address: Option<String>,
    /// An existing namespace to use instead of a new one (e.g. /proc/PID/ns/net).
    #[serde(default)]
    pub netns_path: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub command: Vec<String>,
    /// Start `command` right away; the container is not kept if it cannot start.
    #[serde(default)]
    pub start: bool,
    /// `-p` specs.
    #[serde(default)]
    pub publish: Vec<String>,
    /// `--expose` specs.
    #[serde(default)]
    pub expose: Vec<String>,
    /// `-P`: publish every exposed port on a random host port.
    #[serde(default)]
    pub publish_all: bool,
    /// `--link NAME[:ALIAS]` (default bridge only): hosts entries for other containers.
    #[serde(default)]
    pub links: Vec<String>,
    /// The interface's name inside (default eth0), as a CNI runtime asks for it.
    #[serde(default)]
    pub ifname: Option<String>,
    /// Who asks: netd's CLI, or a CNI runtime with its container id.
    #[serde(default)]
    pub origin: Option<Origin>,
}

/// A legacy link: another container, known in /etc/hosts by its name and `alias`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSpec {
    pub container: String,
    pub alias: Name,
}

impl LinkSpec {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let (container, alias) = value.split_once(':').unwrap_or((value, value));
        if container.is_empty() {
            return Err(ConfigError::invalid(
                "link",
                value,
                "expected NAME or NAME:ALIAS",
            ));
        }
        Ok(Self {
            container: container.to_string(),
            alias: Name::parse("link alias", alias)?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// A bridge network, by name or id.
    Network(String),
    Host,
    None,
    /// Share another container's namespace.
    Container(String),
}

impl NetworkMode {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        Ok(match value {
            "host" => Self::Host,
            "none" => Self::None,
            "" => return Err(ConfigError::invalid("network", value, "cannot be empty")),
            _ => match value.strip_prefix("container:") {
                Some("") => {
                    return Err(ConfigError::invalid(
                        "network",
                        value,
                        "name the container to share, as container:NAME",
                    ))
                }
                Some(other) => Self::Container(other.to_string()),
                None => Self::Network(value.to_string()),
            },
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    pub name: Name,
    pub mode: NetworkMode,
    pub ip: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    pub mac: Option<Mac>,
    pub netns_path: Option<PathBuf>,
    pub aliases: Vec<Name>,
    pub command: Vec<String>,
    pub start: bool,
    /// Requested mappings; host ports still `None` are picked by the daemon.
    pub publish: Vec<PortMapping>,
    pub expose: Vec<ExposedPort>,
    pub links: Vec<LinkSpec>,
    /// The interface's name inside.
    pub ifname: IfName,
    pub origin: Origin,
}

impl TryFrom<CreateContainer> for ContainerSpec {
    type Error = ConfigError;

    fn try_from(req: CreateContainer) -> Result<Self, ConfigError> {
        let name = Name::parse("container name", &req.name)?;
        let mode = NetworkMode::parse(req.network.as_deref().unwrap_or("bridge"))?;
        let ip = req
            .ip
            .as_deref()
            .map(|ip| parse_ipv4("IP address", ip))
            .transpose()?;
        let mac = req
            .mac_address
            .as_deref()
            .map(str::parse::<Mac>)
            .transpose()?;
        let hostname = req.hostname.as_deref().map(parse_hostname).transpose()?;
        let aliases = req
            .aliases
            .iter()
            .map(|a| Name::parse("alias", a))
            .collect::<Result<Vec<_>, _>>()?;
        let mut publish = Vec::new();
        for spec in &req.publish {
            publish.extend(parse_publish(spec)?);
        }
        let mut expose = Vec::new();
        for spec in &req.expose {
            expose.extend(parse_expose(spec)?);
        }
        if req.publish_all {
            // -P: every exposed port not published explicitly, on a random host port.
            for e in &expose {
                if !publish
                    .iter()
                    .any(|p| p.proto == e.proto && p.container_port == e.port)
                {
                    publish.push(PortMapping {
                        proto: e.proto,
                        host_ip: std::net::Ipv4Addr::UNSPECIFIED,
                        host_port: None,
                        container_port: e.port,
                    });
                }
            }
        }
        let joins_network = matches!(mode, NetworkMode::Network(_));
        let conflict = |option: &str, value: &str| {
            Err(ConfigError::invalid(
                "option",
                format!("{option} {value}"),
                format!(
                    "only containers on a bridge network get their own addresses; not with --network {}",
                    req.network.as_deref().unwrap_or_default()
                ),
            ))
        };
        if !joins_network {
            if let Some(ip) = &req.ip {
                return conflict("--ip", ip);
            }
            if let Some(mac) = &req.mac_address {
                return conflict("--mac-address", mac);
            }
            if let Some(alias) = req.aliases.first() {
                return conflict("--alias", alias);
            }
            if let Some(spec) = req.publish.first() {
                return conflict("-p", spec);
            }
            if let Some(link) = req.links.first() {
                return conflict("--link", link);
            }
        }
        let netns_path = req.netns_path.as_deref().map(PathBuf::from);
        if let Some(path) = &req.netns_path {
            if matches!(mode, NetworkMode::Host | NetworkMode::Container(_)) {
                return Err(ConfigError::invalid(
                    "option",
                    format!("--netns-path {path}"),
                    "a container with --network host or container:NAME has no namespace of its own",
                ));
            }
            if !path.starts_with('/') {
                return Err(ConfigError::invalid(
                    "netns path",
                    path,
                    "must be an absolute path",
                ));
            }
        }
        let ifname = IfName::parse(req.ifname.as_deref().unwrap_or("eth0"))?;
        if req.ifname.is_some() && !joins_network {
            return conflict("--ifname", req.ifname.as_deref().unwrap_or_default());
        }
        let origin = req.origin.clone().unwrap_or_default();
        if matches!(origin, Origin::Docker { .. }) {
            return Err(ConfigError::invalid(
                "origin",
                "docker",
                "Docker's containers come through netd's Docker plugin",
            ));
        }
        if req.start && req.command.is_empty() {
            return Err(ConfigError::invalid(
                "command",
                "",
                "nothing to start: give a command after --",
            ));
        }
        if matches!(mode, NetworkMode::Container(_)) && req.hostname.is_some() {
            return Err(ConfigError::invalid(
                "option",
                format!("--hostname {}", req.hostname.unwrap_or_default()),
                "a container sharing another's namespace uses its hostname",
            ));
        }
        Ok(Self {
            name,
            mode,
            ip,
            hostname,
            mac,
            netns_path,
            aliases,
            links: req
                .links
                .iter()
                .map(|l| LinkSpec::parse(l))
                .collect::<Result<_, _>>()?,
            command: req.command,
            start: req.start,
            publish,
            expose,
            ifname,
            origin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(f: fn(&mut CreateContainer)) -> Result<ContainerSpec, ConfigError> {
        let mut req = CreateContainer {
            name: "web".into(),
            ..Default::default()
        };
        f(&mut req);
        ContainerSpec::try_from(req)
    }

    #[test]
    fn modes() {
        assert_eq!(
            spec(|_| {}).unwrap().mode,
            NetworkMode::Network("bridge".into())
        );
        assert_eq!(
            spec(|r| r.network = Some("host".into())).unwrap().mode,
            NetworkMode::Host
        );
        assert_eq!(
            spec(|r| r.network = Some("none".into())).unwrap().mode,
            NetworkMode::None
        );
        assert_eq!(
            spec(|r| r.network = Some("container:db".into()))
                .unwrap()
                .mode,
            NetworkMode::Container("db".into())
        );
        assert!(spec(|r| r.network = Some("container:".into())).is_err());
    }

    #[test]
    fn bad_values_are_named() {
        let e = |f| spec(f).unwrap_err().to_string();
        assert!(e(|r| r.name = "-x".into()).contains("-x"));
        assert!(e(|r| r.ip = Some("10.0.0.300".into())).contains("10.0.0.300"));
        assert!(e(|r| r.mac_address = Some("02:42".into())).contains("02:42"));
        assert!(e(|r| r.hostname = Some("a_b".into())).contains("a_b"));
        assert!(e(|r| r.aliases = vec!["bad alias".into()]).contains("bad alias"));
        assert!(e(|r| r.netns_path = Some("rel/path".into())).contains("rel/path"));
        assert!(e(|r| r.start = true).contains("command"));
    }

    #[test]
    fn publish_all_takes_the_exposed_ports() {
        let s = spec(|r| {
            r.expose = vec!["80".into(), "53/udp".into()];
            r.publish = vec!["8080:80".into()];
            r.publish_all = true;
        })
        .unwrap();
        let mut got: Vec<String> = s.publish.iter().map(|p| p.to_string()).collect();
        got.sort();
        assert_eq!(got, vec!["0.0.0.0:->53/udp", "0.0.0.0:8080->80/tcp"]);
        assert!(spec(|r| r.publish = vec!["0:80".into()])
            .unwrap_err()
            .to_string()
            .contains("0:80"));
    }

    #[test]
    fn addresses_need_a_network() {
        let e = spec(|r| {
            r.network = Some("host".into());
            r.ip = Some("10.0.0.5".into());
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("--ip 10.0.0.5") && e.contains("host"), "{e}");
        assert!(spec(|r| {
            r.network = Some("container:db".into());
            r.netns_path = Some("/proc/1/ns/net".into());
        })
        .is_err());
    }
}
