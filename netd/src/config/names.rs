//! Names of networks and containers (Docker's rules) and of network interfaces.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// A container or network name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`, as Docker accepts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

/// Longest name accepted; keeps names usable as DNS labels and file names.
const NAME_MAX: usize = 128;

impl Name {
    pub fn parse(kind: &'static str, value: &str) -> Result<Self, ConfigError> {
        let why = if value.is_empty() {
            Some("a name cannot be empty".to_string())
        } else if value.len() > NAME_MAX {
            Some(format!("longer than {NAME_MAX} characters"))
        } else if !value.as_bytes()[0].is_ascii_alphanumeric() {
            Some("must start with a letter or digit".to_string())
        } else {
            value
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
                .map(|c| format!("{c:?} is not allowed; only [a-zA-Z0-9][a-zA-Z0-9_.-] are"))
        };
        match why {
            Some(why) => Err(ConfigError::invalid(kind, value, why)),
            None => Ok(Self(value.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = ConfigError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse("name", &value)
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A network interface name: 1 to 15 bytes (IFNAMSIZ - 1), no '/', ':' or whitespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IfName(String);

impl IfName {
    pub const MAX_LEN: usize = 15;

    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let why = if value.is_empty() {
            Some("an interface name cannot be empty".to_string())
        } else if value.len() > Self::MAX_LEN {
            Some(format!(
                "{} bytes long; interface names have at most {} bytes",
                value.len(),
                Self::MAX_LEN
            ))
        } else if value == "." || value == ".." {
            Some("not a valid interface name".to_string())
        } else {
            value
                .chars()
                .find(|c| c.is_whitespace() || matches!(c, '/' | ':') || !c.is_ascii())
                .map(|c| format!("{c:?} is not allowed in an interface name"))
        };
        match why {
            Some(why) => Err(ConfigError::invalid("interface name", value, why)),
            None => Ok(Self(value.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for IfName {
    type Error = ConfigError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<IfName> for String {
    fn from(name: IfName) -> String {
        name.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A hostname: labels of `[a-zA-Z0-9-]`, at most 63 bytes each, 253 in all.
pub fn parse_hostname(value: &str) -> Result<String, ConfigError> {
    let bad = |why: &str| Err(ConfigError::invalid("hostname", value, why));
    if value.is_empty() || value.len() > 253 {
        return bad("must be 1 to 253 characters");
    }
    for label in value.split('.') {
        if label.is_empty() || label.len() > 63 {
            return bad("each dot-separated label must be 1 to 63 characters");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return bad("a label cannot start or end with '-'");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return bad("only letters, digits, '-' and '.' are allowed");
        }
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_name_rules() {
        for ok in ["web", "a", "web_1", "my.net-2", "0abc"] {
            assert!(Name::parse("container name", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-web", "_x", ".x", "we b", "web/1", "wéb", "a:b"] {
            let err = Name::parse("container name", bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(Name::parse("network name", &"a".repeat(129)).is_err());
    }

    #[test]
    fn interface_names_fit_ifnamsiz() {
        assert!(IfName::parse("eth0").is_ok());
        assert!(IfName::parse(&"x".repeat(15)).is_ok());
        let err = IfName::parse("averyveryverylongname")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("averyveryverylongname") && err.contains("15"),
            "{err}"
        );
        assert!(IfName::parse("a/b").is_err());
        assert!(IfName::parse("").is_err());
    }

    #[test]
    fn hostnames() {
        assert!(parse_hostname("web-1.example").is_ok());
        assert!(parse_hostname("-web").is_err());
        assert!(parse_hostname("we_b").is_err());
        assert!(parse_hostname(&"a".repeat(64)).is_err());
    }
}
