//! ADD, DEL, CHECK, STATUS and GC, as calls on the daemon's API.

use std::{net::Ipv4Addr, path::Path};

use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::{
    wire::{Attached, CniError, Code, NetConf, PortMap, DEFAULT_SOCKET},
    Env,
};
use crate::{
    api::client::{Client, ClientError},
    cli::seg,
};

/// How long STATUS waits for the daemon before it reports the plugin not ready.
const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn run(env: &Env, conf: &NetConf) -> Result<Option<Value>, CniError> {
    if conf.name.is_empty() {
        return Err(CniError::new(
            Code::InvalidConfig,
            "name is missing from the network configuration",
        ));
    }
    let socket = conf.socket.as_deref().unwrap_or(DEFAULT_SOCKET);
    let api = Api {
        client: Client::new(Path::new(socket)),
        socket: socket.to_string(),
    };
    let network = conf.network.clone().unwrap_or_else(|| conf.name.clone());
    match env.command.as_str() {
        "ADD" => add(&api, env, conf, &network).await.map(Some),
        "DEL" => {
            let id = env.required("CNI_CONTAINERID", &env.container_id)?;
            let ifname = env.required("CNI_IFNAME", &env.ifname)?;
            // Nothing of it left is no error: DEL may come twice, or for a failed ADD.
            if let Some(c) = api.ours(id).await? {
                api.detach(&c, &network, ifname).await?;
            }
            Ok(None)
        }
        "CHECK" => check(&api, env, conf, &network).await.map(|()| None),
        "STATUS" => match Client::new(Path::new(socket))
            .with_timeout(STATUS_TIMEOUT)
            .call(Method::GET, "/v1/version", None)
            .await
        {
            Ok(_) => Ok(None),
            Err(e) => Err(CniError::new(
                Code::NotAvailable,
                format!("the netd daemon does not answer: {e}"),
            )),
        },
        "GC" => gc(&api, conf, &network).await.map(|()| None),
        "" => Err(CniError::new(
            Code::InvalidEnvironment,
            "CNI_COMMAND is missing",
        )),
        other => Err(CniError::new(
            Code::InvalidEnvironment,
            format!("CNI_COMMAND {other} is not ADD, DEL, CHECK, STATUS, GC or VERSION"),
        )),
    }
}

struct Api {
    client: Client,
    socket: String,
}

impl Api {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CniError> {
        self.client
            .call(method, path, body)
            .await
            .map_err(|e| self.error(e))
    }

    fn error(&self, e: ClientError) -> CniError {
        let code = match &e {
            ClientError::Connect { .. } | ClientError::Timeout { .. } => Code::TryAgain,
            ClientError::Api { status, .. } if status.is_client_error() => Code::InvalidConfig,
            _ => Code::Io,
        };
        CniError::new(code, e.to_string()).with_details(format!("daemon socket {}", self.socket))
    }

    /// The container that CNI attached for `container_id`, if any.
    async fn ours(&self, container_id: &str) -> Result<Option<Value>, CniError> {
        let all = self.call(Method::GET, "/v1/containers", None).await?;
        Ok(all
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| is_ours(c, container_id))
            .cloned())
    }

    /// Takes one interface away: the whole container when it is its last.
    async fn detach(&self, c: &Value, network: &str, ifname: &str) -> Result<(), CniError> {
        let networks = c["NetworkSettings"]["Networks"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let Some((net_name, _)) = networks
            .iter()
            .find(|(n, e)| n.as_str() == network && e["InterfaceName"] == ifname)
        else {
            return Ok(());
        };
        let name = c["Name"].as_str().unwrap_or_default();
        if networks.len() > 1 {
            let body = json!({"container": name});
            self.call(
                Method::POST,
                &format!("/v1/networks/{}/disconnect", seg(net_name)),
                Some(&body),
            )
            .await?;
        } else {
            let path = format!("/v1/containers/{}?force=true&origin=cni", seg(name));
            self.call(Method::DELETE, &path, None).await?;
        }
        Ok(())
    }
}

fn is_ours(c: &Value, container_id: &str) -> bool {
    c["Origin"]["Kind"] == "cni" && c["Origin"]["RuntimeId"] == container_id
}

/// Makes the network from the configuration's subnet if it does not exist; whether it did.
async fn ensure_network(api: &Api, conf: &NetConf, network: &str) -> Result<bool, CniError> {
    match api
        .client
        .call(Method::GET, &format!("/v1/networks/{}", seg(network)), None)
        .await
    {
        Ok(_) => return Ok(false),
        Err(ClientError::Api {
            status: StatusCode::NOT_FOUND,
            ..
        }) => {}
        Err(e) => return Err(api.error(e)),
    }
    let Some(subnet) = &conf.subnet else {
        return Err(CniError::new(
            Code::InvalidConfig,
            format!("network {network} does not exist in netd; create it, or give \"subnet\" in the configuration"),
        ));
    };
    let body = json!({"name": network, "subnet": subnet, "gateway": conf.gateway, "options": conf.options});
    api.call(Method::POST, "/v1/networks", Some(&body)).await?;
    Ok(true)
}

async fn add(api: &Api, env: &Env, conf: &NetConf, network: &str) -> Result<Value, CniError> {
    let id = env.required("CNI_CONTAINERID", &env.container_id)?;
    let netns = env.required("CNI_NETNS", &env.netns)?;
    let ifname = env.required("CNI_IFNAME", &env.ifname)?;
    let created = ensure_network(api, conf, network).await?;
    let result = attach(api, env, conf, network, (id, netns, ifname)).await;
    if result.is_err() && created {
        let _ = api
            .call(
                Method::DELETE,
                &format!("/v1/networks/{}", seg(network)),
                None,
            )
            .await;
    }
    result
}

/// What an ADD asks of the daemon, read from the configuration and the environment.
pub struct Plan {
    pub ip: Option<Ipv4Addr>,
    pub mac: Option<String>,
    pub aliases: Vec<String>,
    /// `-p` specs of the port mappings.
    pub publish: Vec<String>,
}

/// Reads what an ADD asks for; a value netd cannot take is a CNI error naming it.
pub fn plan(env: &Env, conf: &NetConf) -> Result<Plan, CniError> {
    let rc = &conf.runtime_config;
    // The `ips` capability, else CNI_ARGS's IP= (podman's and host-local's convention).
    let args_ip: Vec<String> = env.args.get("IP").into_iter().cloned().collect();
    let ips = if rc.ips.is_empty() { &args_ip } else { &rc.ips };
    let mac = rc.mac.clone().or_else(|| env.args.get("MAC").cloned());
    let ip = match ips.as_slice() {
        [] => None,
        ips => Some(
            ips.iter()
                .filter_map(|a| a.split('/').next()?.parse::<Ipv4Addr>().ok())
                .next()
                .ok_or_else(|| {
                    CniError::new(
                        Code::InvalidConfig,
                        format!("runtimeConfig.ips {ips:?}: netd gives IPv4 addresses only"),
                    )
                })?,
        ),
    };
    Ok(Plan {
        ip,
        mac,
        aliases: rc.aliases_on(&conf.name)?,
        publish: rc.port_mappings.iter().map(PortMap::spec).collect(),
    })
}

async fn attach(
    api: &Api,
    env: &Env,
    conf: &NetConf,
    network: &str,
    (id, netns, ifname): (&str, &str, &str),
) -> Result<Value, CniError> {
    let Plan {
        ip,
        mac,
        aliases,
        publish,
    } = plan(env, conf)?;
    let ip_text = ip.map(|ip| ip.to_string());
    let name = match api.ours(id).await? {
        Some(c) => {
            if let Some(e) = c["NetworkSettings"]["Networks"].get(network) {
                return Err(CniError::new(
                    Code::InvalidConfig,
                    format!("container {id} is already attached to network {network} as {}; DEL it first", e["InterfaceName"]),
                ));
            }
            let name = c["Name"].as_str().unwrap_or_default().to_string();
            let body = json!({"container": name, "ip": ip_text, "aliases": aliases, "ifname": ifname, "mac_address": mac});
            api.call(
                Method::POST,
                &format!("/v1/networks/{}/connect", seg(network)),
                Some(&body),
            )
            .await?;
            if !publish.is_empty() {
                let body = json!({"publish": publish});
                api.call(
                    Method::POST,
                    &format!("/v1/containers/{}/ports", seg(&name)),
                    Some(&body),
                )
                .await?;
            }
            name
        }
        None => {
            let name = container_name(api, env, id).await;
            let body = json!({
                "name": name, "network": network, "netns_path": netns, "ip": ip_text,
                "mac_address": mac, "aliases": aliases, "publish": publish, "ifname": ifname,
                "origin": {"kind": "cni", "id": id},
            });
            api.call(Method::POST, "/v1/containers", Some(&body))
                .await?;
            name
        }
    };
    let c = api
        .call(Method::GET, &format!("/v1/containers/{}", seg(&name)), None)
        .await?;
    let net = api
        .call(Method::GET, &format!("/v1/networks/{}", seg(network)), None)
        .await?;
    attached(&c, &net, network, netns).map(|a| a.result(&conf.cni_version))
}

/// The runtime's name for the container (podman's K8S_POD_NAME) when netd has none of that
/// name yet, else one made from the container id (`Origin::container_name`).
async fn container_name(api: &Api, env: &Env, id: &str) -> String {
    let fallback = crate::config::origin::Origin::Cni { id: id.into() }.container_name();
    let Some(pod) = env
        .args
        .get("K8S_POD_NAME")
        .filter(|p| crate::config::names::Name::parse("name", p).is_ok())
    else {
        return fallback;
    };
    match api
        .client
        .call(Method::GET, &format!("/v1/containers/{}", seg(pod)), None)
        .await
    {
        Err(ClientError::Api {
            status: StatusCode::NOT_FOUND,
            ..
        }) => pod.clone(),
        _ => fallback,
    }
}

fn attached(c: &Value, net: &Value, network: &str, netns: &str) -> Result<Attached, CniError> {
    let e = &c["NetworkSettings"]["Networks"][network];
    let bad = || {
        CniError::new(
            Code::Io,
            format!("the daemon reports no interface on {network}: {c}"),
        )
    };
    let ip: Ipv4Addr = e["IPAddress"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let gateway: Option<Ipv4Addr> = e["Gateway"].as_str().and_then(|s| s.parse().ok());
    let internal = net["Internal"].as_bool().unwrap_or(false);
    // The default bridge has no embedded DNS, as with Docker; a macvlan network's server is
    // in each container (its gateway is the LAN's router).
    let dns = match net["Driver"].as_str() {
        Some("macvlan") => Some(crate::dns::CONTAINER_DNS),
        _ => gateway.filter(|_| net["Name"] != "bridge"),
    };
    Ok(Attached {
        host_ifname: e["HostInterface"].as_str().unwrap_or_default().to_string(),
        ifname: e["InterfaceName"].as_str().unwrap_or_default().to_string(),
        mac: e["MacAddress"].as_str().unwrap_or_default().to_string(),
        netns: netns.to_string(),
        ip,
        prefix: e["IPPrefixLen"].as_u64().unwrap_or(32) as u8,
        gateway: gateway.filter(|_| !internal),
        dns,
    })
}

async fn check(api: &Api, env: &Env, conf: &NetConf, network: &str) -> Result<(), CniError> {
    let id = env.required("CNI_CONTAINERID", &env.container_id)?;
    env.required("CNI_NETNS", &env.netns)?;
    let ifname = env.required("CNI_IFNAME", &env.ifname)?;
    let prev = conf.prev_result.as_ref().ok_or_else(|| {
        CniError::new(
            Code::InvalidConfig,
            "prevResult is missing: CHECK needs the result of ADD",
        )
    })?;
    let c = api.ours(id).await?.ok_or_else(|| {
        CniError::new(
            Code::ContainerUnknown,
            format!("container {id} is not attached by netd"),
        )
    })?;
    let e = &c["NetworkSettings"]["Networks"][network];
    if e["InterfaceName"] != ifname {
        return Err(CniError::new(
            Code::ContainerUnknown,
            format!("container {id} has no interface {ifname} on network {network}"),
        ));
    }
    let now = format!(
        "{}/{}",
        e["IPAddress"].as_str().unwrap_or_default(),
        e["IPPrefixLen"]
    );
    let before = prev["ips"][0]["address"].as_str().unwrap_or_default();
    if before != now {
        return Err(CniError::new(
            Code::Incomplete,
            format!("address of {ifname} is {now}, prevResult says {before:?}"),
        ));
    }
    let name = c["Name"].as_str().unwrap_or_default();
    let check = api
        .call(
            Method::GET,
            &format!("/v1/containers/{}/check", seg(name)),
            None,
        )
        .await?;
    let problems: Vec<&str> = check["Problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !problems.is_empty() {
        return Err(CniError::new(
            Code::Incomplete,
            format!("the attachment of container {id} is incomplete"),
        )
        .with_details(problems.join("; ")));
    }
    Ok(())
}

/// Removes the attachments to `network` that the runtime no longer lists.
async fn gc(api: &Api, conf: &NetConf, network: &str) -> Result<(), CniError> {
    let valid = conf.valid_attachments.as_deref().unwrap_or_default();
    let all = api.call(Method::GET, "/v1/containers", None).await?;
    for c in all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["Origin"]["Kind"] == "cni")
    {
        let id = c["Origin"]["RuntimeId"].as_str().unwrap_or_default();
        let Some(e) = c["NetworkSettings"]["Networks"].get(network) else {
            continue;
        };
        let ifname = e["InterfaceName"].as_str().unwrap_or_default();
        if !valid
            .iter()
            .any(|a| a.container_id == id && a.ifname == ifname)
        {
            api.detach(c, network, ifname).await?;
        }
    }
    Ok(())
}
