//! The checks the API makes of a request body before the engine sees it, alone: the fuzz
//! targets drive them with any bytes. Every answer is a value or an error that names what
//! was wrong, never a panic.

use serde::de::DeserializeOwned;

use super::wire;
use crate::config::{
    alias::{CreateAlias, Lb},
    container::{ContainerSpec, CreateContainer},
    mac::Mac,
    names::{IfName, Name},
    network::{parse_ipv4, CreateNetwork, NetworkSpec},
    port::{PortMapping, PublishPorts},
};

/// Which request body.
#[derive(Clone, Copy, Debug)]
pub enum Body {
    CreateNetwork,
    CreateContainer,
    PublishPorts,
    Connect,
    CreateAlias,
}

impl Body {
    pub const ALL: [Body; 5] = [
        Body::CreateNetwork,
        Body::CreateContainer,
        Body::PublishPorts,
        Body::Connect,
        Body::CreateAlias,
    ];
}

pub fn check(body: Body, bytes: &[u8]) -> Result<(), String> {
    match body {
        Body::CreateNetwork => NetworkSpec::try_from(parse::<CreateNetwork>(bytes)?)
            .map(drop)
            .map_err(|e| e.to_string()),
        Body::CreateContainer => ContainerSpec::try_from(parse::<CreateContainer>(bytes)?)
            .map(drop)
            .map_err(|e| e.to_string()),
        Body::PublishPorts => Vec::<PortMapping>::try_from(&parse::<PublishPorts>(bytes)?)
            .map(drop)
            .map_err(|e| e.to_string()),
        Body::Connect => {
            let req: wire::Connect = parse(bytes)?;
            let text = |e: crate::config::ConfigError| e.to_string();
            req.ip
                .as_deref()
                .map(|ip| parse_ipv4("ip", ip))
                .transpose()
                .map_err(text)?;
            req.ifname
                .as_deref()
                .map(IfName::parse)
                .transpose()
                .map_err(text)?;
            for alias in &req.aliases {
                Name::parse("alias", alias).map_err(text)?;
            }
            match req.mac_address.as_deref() {
                Some(m) => m.parse::<Mac>().map(drop).map_err(|e| e.to_string()),
                None => Ok(()),
            }
        }
        Body::CreateAlias => {
            let req: CreateAlias = parse(bytes)?;
            let text = |e: crate::config::ConfigError| e.to_string();
            Name::parse("alias", &req.name).map_err(text)?;
            req.lb.as_deref().map(Lb::parse).transpose().map_err(text)?;
            req.ip
                .as_deref()
                .map(|ip| parse_ipv4("ip", ip))
                .transpose()
                .map_err(text)?;
            Ok(())
        }
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_checked_as_the_api_checks_them() {
        let net = br#"{"name": "n1", "subnet": "10.1.0.0/24"}"#;
        assert_eq!(check(Body::CreateNetwork, net), Ok(()));
        let e = check(
            Body::CreateNetwork,
            br#"{"name": "n1", "subnet": "127.0.0.0/24"}"#,
        );
        assert!(e.unwrap_err().contains("loopback"));
        let e = check(Body::Connect, br#"{"container": "a", "mac_address": "zz"}"#);
        assert!(e.unwrap_err().contains("zz"));
        assert!(check(Body::CreateAlias, b"\xff").is_err());
    }
}
