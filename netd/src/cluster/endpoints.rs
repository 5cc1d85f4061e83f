//! Where the cluster store is: `--cluster-store etcd://H1:2379,H2:2379`, with the files of a
//! real cluster's TLS (CA, client certificate and key).

use std::{fmt, path::PathBuf};

use crate::config::ConfigError;

const SCHEME: &str = "etcd://";
const DEFAULT_PORT: u16 = 2379;

/// The TLS files of a cluster that requires them; all three or none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreAddress {
    /// `host:port` of each member.
    pub members: Vec<String>,
    tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

impl StoreAddress {
    pub fn parse(value: &str, tls: TlsFiles) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::invalid("--cluster-store", value, why);
        let list = value
            .strip_prefix(SCHEME)
            .ok_or_else(|| bad("must start with etcd:// (etcd://H1:2379,H2:2379)"))?;
        let mut members = Vec::new();
        for member in list.split(',') {
            members.push(member_address(member).map_err(|why| bad(&why))?);
        }
        let tls = match (tls.ca, tls.cert, tls.key) {
            (None, None, None) => None,
            (Some(ca), Some(cert), Some(key)) => Some((ca, cert, key)),
            _ => {
                return Err(ConfigError::invalid(
                    "--cluster-ca, --cluster-cert, --cluster-key",
                    value,
                    "a TLS cluster needs all three files",
                ))
            }
        };
        Ok(Self { members, tls })
    }

    /// The flags that name this store again (for the heartbeat process).
    pub fn flags(&self) -> Vec<String> {
        let mut flags = vec![
            "--cluster-store".to_string(),
            format!("{SCHEME}{}", self.members.join(",")),
        ];
        if let Some((ca, cert, key)) = &self.tls {
            for (flag, path) in [
                ("--cluster-ca", ca),
                ("--cluster-cert", cert),
                ("--cluster-key", key),
            ] {
                flags.push(flag.into());
                flags.push(path.display().to_string());
            }
        }
        flags
    }

    /// The members' URLs, https when TLS is on.
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.members
            .iter()
            .map(|m| format!("{scheme}://{m}"))
            .collect()
    }

    /// The client's TLS, from the files; an error names the file that could not be read.
    #[cfg(feature = "etcd")]
    pub fn tls_options(&self) -> Result<Option<etcd_client::TlsOptions>, String> {
        let Some((ca, cert, key)) = &self.tls else {
            return Ok(None);
        };
        let read = |p: &PathBuf| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
        let options = etcd_client::TlsOptions::new()
            .ca_certificate(etcd_client::Certificate::from_pem(read(ca)?))
            .identity(etcd_client::Identity::from_pem(read(cert)?, read(key)?));
        Ok(Some(options))
    }
}

/// `host` or `host:port`, with a host of letters, digits, dots, dashes (or an IPv6 address
/// in brackets) and a port that is a number.
fn member_address(member: &str) -> Result<String, String> {
    let (host, port) = match member.rsplit_once(':') {
        Some((host, _)) if !host.ends_with(']') && host.contains(':') => (member, None),
        Some((host, port)) => (host, Some(port)),
        None => (member, None),
    };
    let bracketed = host.starts_with('[') && host.ends_with(']');
    let plain = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    if !(plain
        || bracketed
            && host[1..host.len() - 1]
                .parse::<std::net::Ipv6Addr>()
                .is_ok())
    {
        return Err(format!("member {member:?} has no valid host"));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("member {member:?} has no valid port"))?,
    };
    Ok(format!("{host}:{port}"))
}

impl fmt::Display for StoreAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "etcd at {}", self.members.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_get_the_default_port() {
        let a = StoreAddress::parse(
            "etcd://h1,10.0.0.2:2380,[fd00::1]:2379",
            TlsFiles::default(),
        )
        .unwrap();
        assert_eq!(a.members, ["h1:2379", "10.0.0.2:2380", "[fd00::1]:2379"]);
        assert_eq!(a.urls()[0], "http://h1:2379");
        assert_eq!(
            a.to_string(),
            "etcd at h1:2379,10.0.0.2:2380,[fd00::1]:2379"
        );
    }

    #[test]
    fn bad_addresses_are_named() {
        for (value, named) in [
            ("http://h1:2379", "etcd://"),
            ("etcd://", "\"\""),
            ("etcd://h1:0", "h1:0"),
            ("etcd://h1:99999", "h1:99999"),
            ("etcd://h1,h 2", "h 2"),
            ("etcd://h1/x", "h1/x"),
        ] {
            let e = StoreAddress::parse(value, TlsFiles::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(value) && e.contains(named), "{value}: {e}");
        }
    }

    #[test]
    fn tls_needs_all_three_files() {
        let half = TlsFiles {
            ca: Some("/ca.pem".into()),
            ..Default::default()
        };
        assert!(StoreAddress::parse("etcd://h1", half).is_err());
        let all = TlsFiles {
            ca: Some("/ca.pem".into()),
            cert: Some("/c.pem".into()),
            key: Some("/k.pem".into()),
        };
        let a = StoreAddress::parse("etcd://h1", all).unwrap();
        assert_eq!(a.urls(), ["https://h1:2379"]);
        #[cfg(feature = "etcd")]
        {
            let e = a.tls_options().unwrap_err();
            assert!(e.contains("/ca.pem"), "{e}");
        }
    }
}
