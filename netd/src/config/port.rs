//! `-p`/`--expose` specs: `[HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|/udp]`.

use std::{fmt, net::Ipv4Addr, num::NonZeroU16, str::FromStr};

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// One published port: host side to container side. `host_port` is `None` until the daemon
/// picks a free one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    pub proto: Proto,
    pub host_ip: Ipv4Addr,
    pub host_port: Option<NonZeroU16>,
    pub container_port: NonZeroU16,
}

/// A container port offered for `-P`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExposedPort {
    pub proto: Proto,
    pub port: NonZeroU16,
}

fn bad(what: &'static str, value: &str, why: impl Into<String>) -> ConfigError {
    ConfigError::invalid(what, value, why)
}

fn split_proto<'a>(what: &'static str, spec: &'a str) -> Result<(&'a str, Proto), ConfigError> {
    match spec.rsplit_once('/') {
        None => Ok((spec, Proto::Tcp)),
        Some((rest, "tcp")) => Ok((rest, Proto::Tcp)),
        Some((rest, "udp")) => Ok((rest, Proto::Udp)),
        Some((_, other)) => Err(bad(
            what,
            spec,
            format!("protocol {other:?} is not tcp or udp"),
        )),
    }
}

fn port(what: &'static str, spec: &str, text: &str) -> Result<NonZeroU16, ConfigError> {
    let n: u32 = text
        .parse()
        .map_err(|_| bad(what, spec, format!("{text:?} is not a port number")))?;
    u16::try_from(n)
        .ok()
        .and_then(NonZeroU16::new)
        .ok_or_else(|| bad(what, spec, format!("port {n} is outside 1-65535")))
}

/// `N` or `N-M` with N <= M.
fn range(
    what: &'static str,
    spec: &str,
    text: &str,
) -> Result<(NonZeroU16, NonZeroU16), ConfigError> {
    let (first, last) = match text.split_once('-') {
        Some((a, b)) => (port(what, spec, a)?, port(what, spec, b)?),
        None => {
            let p = port(what, spec, text)?;
            (p, p)
        }
    };
    if first > last {
        return Err(bad(
            what,
            spec,
            format!("range {first}-{last} runs backwards"),
        ));
    }
    Ok((first, last))
}

fn ports_of((first, last): (NonZeroU16, NonZeroU16)) -> impl Iterator<Item = NonZeroU16> {
    (first.get()..=last.get()).filter_map(NonZeroU16::new)
}

/// Parses one `-p` spec into one mapping per container port.
/// Body of `POST /v1/containers/{key}/ports`: more ports for an existing container, in
/// `-p` syntax.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishPorts {
    pub publish: Vec<String>,
}

impl TryFrom<&PublishPorts> for Vec<PortMapping> {
    type Error = ConfigError;

    fn try_from(req: &PublishPorts) -> Result<Self, ConfigError> {
        let mut all = Vec::new();
        for spec in &req.publish {
            all.extend(parse_publish(spec)?);
        }
        Ok(all)
    }
}

pub fn parse_publish(spec: &str) -> Result<Vec<PortMapping>, ConfigError> {
    const WHAT: &str = "port spec";
    let (body, proto) = split_proto(WHAT, spec)?;
    let parts: Vec<&str> = body.split(':').collect();
    let (host_ip, host, container) = match parts.as_slice() {
        [c] => (None, None, *c),
        [h, c] => (None, Some(*h), *c),
        [ip, h, c] => (Some(*ip), Some(*h).filter(|h| !h.is_empty()), *c),
        _ => {
            return Err(bad(
                WHAT,
                spec,
                "expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|/udp]",
            ))
        }
    };
    let host_ip = match host_ip {
        None | Some("") => Ipv4Addr::UNSPECIFIED,
        Some(ip) => ip
            .parse()
            .map_err(|_| bad(WHAT, spec, format!("{ip:?} is not an IPv4 address")))?,
    };
    let container = range(WHAT, spec, container)?;
    let count = container.1.get() - container.0.get();
    let host_ports: Vec<Option<NonZeroU16>> = match host {
        None => vec![None; usize::from(count) + 1],
        Some(h) => {
            let host = range(WHAT, spec, h)?;
            if host.1.get() - host.0.get() != count {
                return Err(bad(
                    WHAT,
                    spec,
                    format!(
                        "host range {}-{} and container range {}-{} differ in length",
                        host.0, host.1, container.0, container.1
                    ),
                ));
            }
            ports_of(host).map(Some).collect()
        }
    };
    Ok(ports_of(container)
        .zip(host_ports)
        .map(|(container_port, host_port)| PortMapping {
            proto,
            host_ip,
            host_port,
            container_port,
        })
        .collect())
}

/// Parses one `--expose` spec: `PORT[-END][/tcp|/udp]`.
pub fn parse_expose(spec: &str) -> Result<Vec<ExposedPort>, ConfigError> {
    const WHAT: &str = "expose spec";
    let (body, proto) = split_proto(WHAT, spec)?;
    Ok(ports_of(range(WHAT, spec, body)?)
        .map(|port| ExposedPort { proto, port })
        .collect())
}

impl FromStr for ExposedPort {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match parse_expose(s)?.as_slice() {
            [one] => Ok(*one),
            _ => Err(bad("expose spec", s, "expected a single port")),
        }
    }
}

impl PortMapping {
    /// Whether two mappings claim the same host port: same protocol and port, and the same
    /// address or either on 0.0.0.0.
    pub fn clashes_with(&self, other: &PortMapping) -> bool {
        self.proto == other.proto
            && self.host_port.is_some()
            && self.host_port == other.host_port
            && (self.host_ip == other.host_ip
                || self.host_ip.is_unspecified()
                || other.host_ip.is_unspecified())
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.host_port.map(|p| p.to_string()).unwrap_or_default();
        write!(
            f,
            "{}:{}->{}/{}",
            self.host_ip, host, self.container_port, self.proto
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(n: u16) -> NonZeroU16 {
        NonZeroU16::new(n).unwrap()
    }

    fn one(spec: &str) -> PortMapping {
        let all = parse_publish(spec).unwrap();
        assert_eq!(all.len(), 1, "{spec}");
        all[0]
    }

    #[test]
    fn every_form_of_publish() {
        let m = one("80");
        assert_eq!(
            (m.host_ip, m.host_port, m.container_port, m.proto),
            (Ipv4Addr::UNSPECIFIED, None, p(80), Proto::Tcp)
        );
        assert_eq!(one("8080:80").host_port, Some(p(8080)));
        let m = one("127.0.0.1:8080:80/udp");
        assert_eq!(
            (m.host_ip, m.host_port, m.proto),
            (Ipv4Addr::LOCALHOST, Some(p(8080)), Proto::Udp)
        );
        let m = one("127.0.0.1::80");
        assert_eq!((m.host_ip, m.host_port), (Ipv4Addr::LOCALHOST, None));
        let r = parse_publish("8000-8002:80-82/tcp").unwrap();
        let pairs: Vec<_> = r
            .iter()
            .map(|m| (m.host_port.unwrap().get(), m.container_port.get()))
            .collect();
        assert_eq!(pairs, vec![(8000, 80), (8001, 81), (8002, 82)]);
        assert_eq!(parse_publish("90-92").unwrap().len(), 3);
    }

    #[test]
    fn bad_specs_are_named() {
        for spec in [
            "0",
            "8080:0",
            "70000:80",
            "80/sctp",
            "a:b:c:d",
            "x:80",
            "8000-8001:80",
            "90-80",
            "1.2.3:80:80",
            "",
            "80-",
        ] {
            let err = parse_publish(spec).unwrap_err().to_string();
            assert!(err.contains(&format!("{spec:?}")), "{spec}: {err}");
        }
        assert!(parse_publish("8000-8001:80")
            .unwrap_err()
            .to_string()
            .contains("differ in length"));
        assert!(parse_publish("65536:80")
            .unwrap_err()
            .to_string()
            .contains("65536"));
    }

    #[test]
    fn expose() {
        assert_eq!(
            "80/udp".parse::<ExposedPort>().unwrap(),
            ExposedPort {
                proto: Proto::Udp,
                port: p(80)
            }
        );
        assert_eq!(parse_expose("8000-8003").unwrap().len(), 4);
        assert!(parse_expose("0").is_err());
    }

    #[test]
    fn clashes() {
        let a = one("8080:80");
        let b = one("127.0.0.1:8080:81");
        let c = one("127.0.0.2:8080:81");
        let d = one("8080:80/udp");
        assert!(a.clashes_with(&b) && b.clashes_with(&a));
        assert!(!b.clashes_with(&c));
        assert!(!a.clashes_with(&d));
        assert!(
            !one("80").clashes_with(&one("80")),
            "unassigned host ports do not clash yet"
        );
    }
}
