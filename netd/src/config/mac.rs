//! MAC addresses: parsing, and Docker's default derived from the IPv4 address.

use std::{fmt, net::Ipv4Addr, str::FromStr};

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The first three bytes of every bridge's MAC ("ND").
const GATEWAY_OUI: [u8; 3] = [0x02, 0x4e, 0x44];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// 02:42 followed by the four bytes of the address, as Docker does.
    pub fn from_ipv4(ip: Ipv4Addr) -> Self {
        let [a, b, c, d] = ip.octets();
        Self([0x02, 0x42, a, b, c, d])
    }

    /// A bridge's own address: 02:4e:44 ("ND") and the last three bytes of its gateway
    /// address. Set explicitly, so that the kernel never swaps it for a port's address (the
    /// gateway MAC is part of the isolation rules).
    pub fn for_gateway(gateway: Ipv4Addr) -> Self {
        let [_, b, c, d] = gateway.octets();
        let [p0, p1, p2] = GATEWAY_OUI;
        Self([p0, p1, p2, b, c, d])
    }

    /// How [`Mac::GATEWAY_PREFIX`] reads, for messages.
    pub const GATEWAY_PREFIX: &'static str = "02:4e:44:xx:xx:xx";

    /// Whether the address is in the range of bridges' own addresses.
    pub fn is_gateway(&self) -> bool {
        self.0[..3] == GATEWAY_OUI
    }
}

impl FromStr for Mac {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| ConfigError::invalid("MAC address", s, why);
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 {
            return Err(bad("expected six hex bytes separated by ':'"));
        }
        let mut mac = [0u8; 6];
        for (byte, part) in mac.iter_mut().zip(&parts) {
            if part.len() != 2 {
                return Err(bad("each byte is two hex digits"));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| bad("not hexadecimal"))?;
        }
        if mac[0] & 1 == 1 {
            return Err(bad(
                "a multicast address cannot be assigned to an interface",
            ));
        }
        if mac == [0; 6] {
            return Err(bad("the all-zero address cannot be assigned"));
        }
        Ok(Self(mac))
    }
}

impl TryFrom<String> for Mac {
    type Error = ConfigError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl From<Mac> for String {
    fn from(mac: Mac) -> String {
        mac.to_string()
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_and_parsing() {
        let mac = Mac::from_ipv4("172.17.0.2".parse().unwrap());
        assert_eq!(mac.to_string(), "02:42:ac:11:00:02");
        assert_eq!("02:42:AC:11:00:02".parse::<Mac>().unwrap(), mac);
        for bad in [
            "02:42:ac:11:00",
            "zz:42:ac:11:00:02",
            "01:00:5e:00:00:01",
            "00:00:00:00:00:00",
        ] {
            let err = bad.parse::<Mac>().unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
    }
}
