//! Aliases with a virtual IP: the network options that make every alias one, the balancing
//! algorithm, and `alias create` input.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use netd_common::vip::Algorithm;

/// `dns` (default: an alias resolves to its containers, rotated) or `vip`.
pub const OPT_ALIAS_MODE: &str = "alias-mode";
/// Default algorithm of the network's VIP aliases.
pub const OPT_ALIAS_LB: &str = "alias-lb";

/// How a VIP picks a backend, as users name it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lb {
    #[default]
    RoundRobin,
    Random,
    Maglev,
}

impl Lb {
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        match value {
            "roundrobin" => Ok(Self::RoundRobin),
            "random" => Ok(Self::Random),
            "maglev" => Ok(Self::Maglev),
            _ => Err(ConfigError::invalid(
                "load-balancing algorithm",
                value,
                "expected roundrobin, random or maglev",
            )),
        }
    }

    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::RoundRobin => Algorithm::RoundRobin,
            Self::Random => Algorithm::Random,
            Self::Maglev => Algorithm::Maglev,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.algorithm().name()
    }
}

/// Whether a network's aliases get virtual IPs, and by which algorithm they balance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AliasOptions {
    pub vip: bool,
    pub lb: Lb,
}

impl AliasOptions {
    pub const KNOWN: [&'static str; 2] = [OPT_ALIAS_MODE, OPT_ALIAS_LB];

    /// Applies `key=value` when `key` is one of these options; `Ok(false)` for other keys.
    pub fn apply(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            OPT_ALIAS_MODE => {
                self.vip = match value {
                    "dns" => false,
                    "vip" => true,
                    _ => {
                        return Err(ConfigError::invalid(
                            "network option",
                            format!("{key}={value}"),
                            "expected dns or vip",
                        ))
                    }
                }
            }
            OPT_ALIAS_LB => self.lb = Lb::parse(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// Body of `POST /v1/aliases`: a VIP alias on a network, before any container carries it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAlias {
    pub network: String,
    pub name: String,
    /// The network's default when absent.
    #[serde(default)]
    pub lb: Option<String>,
    /// A static VIP from the network's subnet; the next free address when absent.
    #[serde(default)]
    pub ip: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_name_bad_values() {
        let mut o = AliasOptions::default();
        assert!(o.apply(OPT_ALIAS_MODE, "vip").unwrap());
        assert!(o.apply(OPT_ALIAS_LB, "maglev").unwrap());
        assert_eq!(
            o,
            AliasOptions {
                vip: true,
                lb: Lb::Maglev
            }
        );
        assert!(!o.apply("icc", "false").unwrap());
        let err = o.apply(OPT_ALIAS_MODE, "anycast").unwrap_err().to_string();
        assert!(err.contains("alias-mode=anycast"), "{err}");
        let err = o.apply(OPT_ALIAS_LB, "leastconn").unwrap_err().to_string();
        assert!(err.contains("leastconn"), "{err}");
    }

    #[test]
    fn algorithms_keep_their_names() {
        for lb in [Lb::RoundRobin, Lb::Random, Lb::Maglev] {
            assert_eq!(Lb::parse(lb.as_str()).unwrap(), lb);
        }
    }
}
