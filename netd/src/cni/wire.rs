//! CNI's wire: the network configuration on stdin, the runtime's capabilities, the result and
//! the error on stdout (containernetworking/cni SPEC.md, 1.1; results also in 0.4.0 form).

use std::{collections::BTreeMap, net::Ipv4Addr};

use serde::Deserialize;
use serde_json::{json, Value};

pub const SUPPORTED_VERSIONS: [&str; 3] = ["0.4.0", "1.0.0", "1.1.0"];
pub const DEFAULT_SOCKET: &str = "/run/netd/netd.sock";

/// The spec's error codes that netd-cni answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Code {
    IncompatibleVersion = 1,
    ContainerUnknown = 3,
    InvalidEnvironment = 4,
    Io = 5,
    Decode = 6,
    InvalidConfig = 7,
    TryAgain = 11,
    NotAvailable = 50,
    /// netd's own (100 and up): CHECK found the attachment incomplete.
    Incomplete = 100,
}

#[derive(Debug)]
pub struct CniError {
    pub code: Code,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    pub fn to_json(&self, version: &str) -> Value {
        let mut v = json!({"cniVersion": version, "code": self.code as u32, "msg": self.msg});
        if !self.details.is_empty() {
            v["details"] = json!(self.details);
        }
        v
    }
}

/// The plugin's configuration (one entry of a configuration list, as the runtime passes it).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetConf {
    #[serde(default)]
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    /// The daemon's socket.
    #[serde(default)]
    pub socket: Option<String>,
    /// The netd network; the configuration's name when absent.
    #[serde(default)]
    pub network: Option<String>,
    /// To create the network with, when it does not exist.
    #[serde(default)]
    pub subnet: Option<String>,
    #[serde(default)]
    pub gateway: Option<String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub runtime_config: RuntimeConfig,
    #[serde(default)]
    pub prev_result: Option<Value>,
    /// GC: the attachments that stay.
    #[serde(default, rename = "cni.dev/valid-attachments")]
    pub valid_attachments: Option<Vec<Attachment>>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The capabilities netd-cni honours: `portMappings`, `ips`, `mac`, `aliases`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeConfig {
    #[serde(default)]
    pub port_mappings: Vec<PortMap>,
    #[serde(default)]
    pub ips: Vec<String>,
    #[serde(default)]
    pub mac: Option<String>,
    /// A list, or (podman) a map of network name to list.
    #[serde(default)]
    pub aliases: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMap {
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default, rename = "hostIP")]
    pub host_ip: Option<String>,
}

impl PortMap {
    /// In netd's `-p` syntax; a host port of 0 is a random one.
    pub fn spec(&self) -> String {
        let proto = self
            .protocol
            .as_deref()
            .unwrap_or("tcp")
            .to_ascii_lowercase();
        let host_ip = self
            .host_ip
            .as_deref()
            .filter(|ip| !ip.is_empty())
            .unwrap_or("0.0.0.0");
        match self.host_port {
            0 => format!("{host_ip}::{}/{proto}", self.container_port),
            p => format!("{host_ip}:{p}:{}/{proto}", self.container_port),
        }
    }
}

impl RuntimeConfig {
    /// The aliases of the endpoint on `network`.
    pub fn aliases_on(&self, network: &str) -> Result<Vec<String>, CniError> {
        let bad = || {
            CniError::new(Code::InvalidConfig, "runtimeConfig.aliases: expected a list of names, or a map of network name to names")
        };
        let list = match &self.aliases {
            None | Some(Value::Null) => return Ok(Vec::new()),
            Some(Value::Object(map)) => match map.get(network) {
                Some(list) => list.clone(),
                None => return Ok(Vec::new()),
            },
            Some(list) => list.clone(),
        };
        serde_json::from_value(list).map_err(|_| bad())
    }
}

/// The attachment as the result reports it.
pub struct Attached {
    pub host_ifname: String,
    pub ifname: String,
    pub mac: String,
    pub netns: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    /// None on an internal network: no way out, no default route.
    pub gateway: Option<Ipv4Addr>,
    /// netd's embedded DNS, on user-defined networks.
    pub dns: Option<Ipv4Addr>,
}

impl Attached {
    pub fn result(&self, version: &str) -> Value {
        // The host end first, when there is one (a macvlan has none).
        let mut interfaces = Vec::new();
        if !self.host_ifname.is_empty() {
            interfaces.push(json!({"name": self.host_ifname}));
        }
        let index = interfaces.len();
        interfaces.push(json!({"name": self.ifname, "mac": self.mac, "sandbox": self.netns}));
        let mut ip = json!({"address": format!("{}/{}", self.ip, self.prefix), "interface": index});
        if let Some(gw) = self.gateway {
            ip["gateway"] = json!(gw.to_string());
        }
        if version.starts_with("0.") {
            ip["version"] = json!("4");
        }
        let routes: Vec<Value> = self
            .gateway
            .iter()
            .map(|gw| json!({"dst": "0.0.0.0/0", "gw": gw.to_string()}))
            .collect();
        let nameservers: Vec<String> = self.dns.iter().map(|d| d.to_string()).collect();
        json!({
            "cniVersion": version,
            "interfaces": interfaces,
            "ips": [ip],
            "routes": routes,
            "dns": {"nameservers": nameservers},
        })
    }
}

/// `K=V;K2=V2` of CNI_ARGS.
pub fn cni_args(args: &str) -> BTreeMap<String, String> {
    args.split(';')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_mappings_become_publish_specs() {
        let p = |v: Value| serde_json::from_value::<PortMap>(v).unwrap().spec();
        assert_eq!(
            p(json!({"hostPort": 8080, "containerPort": 80})),
            "0.0.0.0:8080:80/tcp"
        );
        assert_eq!(
            p(
                json!({"hostPort": 0, "containerPort": 53, "protocol": "UDP", "hostIP": "127.0.0.1"})
            ),
            "127.0.0.1::53/udp"
        );
    }

    #[test]
    fn aliases_come_as_a_list_or_by_network() {
        let rc = |v: Value| serde_json::from_value::<RuntimeConfig>(json!({"aliases": v})).unwrap();
        assert_eq!(rc(json!(["a", "b"])).aliases_on("n").unwrap(), ["a", "b"]);
        assert_eq!(
            rc(json!({"n": ["web"], "m": ["x"]}))
                .aliases_on("n")
                .unwrap(),
            ["web"]
        );
        assert!(rc(json!({"m": ["x"]})).aliases_on("n").unwrap().is_empty());
        assert!(rc(json!([1])).aliases_on("n").is_err());
    }

    #[test]
    fn results_follow_the_asked_version() {
        let a = Attached {
            host_ifname: "veth1".into(),
            ifname: "eth0".into(),
            mac: "02:42:0a:00:00:05".into(),
            netns: "/run/netns/x".into(),
            ip: "10.0.0.5".parse().unwrap(),
            prefix: 24,
            gateway: Some("10.0.0.1".parse().unwrap()),
            dns: Some("10.0.0.1".parse().unwrap()),
        };
        let new = a.result("1.1.0");
        assert_eq!(
            new["ips"][0],
            json!({"address": "10.0.0.5/24", "gateway": "10.0.0.1", "interface": 1})
        );
        assert_eq!(new["routes"][0]["gw"], "10.0.0.1");
        assert_eq!(new["interfaces"][1]["sandbox"], "/run/netns/x");
        assert_eq!(a.result("0.4.0")["ips"][0]["version"], "4");
        assert_eq!(
            cni_args("IgnoreUnknown=1;K8S_POD_NAME=web")["K8S_POD_NAME"],
            "web"
        );
    }

    #[test]
    fn an_interface_without_a_host_end_is_the_first() {
        let a = Attached {
            host_ifname: String::new(),
            ifname: "eth0".into(),
            mac: "02:42:c0:a8:00:40".into(),
            netns: "/run/netns/x".into(),
            ip: "192.168.0.64".parse().unwrap(),
            prefix: 24,
            gateway: Some("192.168.0.1".parse().unwrap()),
            dns: Some("127.0.0.11".parse().unwrap()),
        };
        let r = a.result("1.1.0");
        assert_eq!(r["interfaces"].as_array().unwrap().len(), 1, "{r}");
        assert_eq!(r["interfaces"][0]["name"], "eth0");
        assert_eq!(r["ips"][0]["interface"], 0);
        assert_eq!(r["dns"]["nameservers"][0], "127.0.0.11");
    }
}
