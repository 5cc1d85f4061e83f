//! `netd network ...`

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::{
    output::{self, str_of, FormatArg},
    seg,
};
use crate::{
    api::client::{Client, ClientError},
    config::network::CreateNetwork,
};

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// Create a bridge network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(FormatArg),
    /// Show networks as JSON.
    Inspect {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove all networks that no container uses.
    Prune {
        /// Accepted for Docker compatibility; netd never prompts.
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a running container to a network (adds ethN live).
    Connect {
        #[arg(long)]
        ip: Option<String>,
        #[arg(long = "alias")]
        aliases: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network.
    Disconnect { network: String, container: String },
    /// Change options of a live network: icc, gateway-mode, enable_ip_masquerade.
    Update {
        /// k=v, repeatable: icc=true|false, gateway-mode=nat|routed,
        /// com.docker.network.bridge.enable_ip_masquerade=true|false (Docker's names work too).
        #[arg(short = 'o', long = "opt", required = true)]
        options: Vec<String>,
        network: String,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    #[arg(long)]
    subnet: Option<String>,
    #[arg(long)]
    ip_range: Option<String>,
    #[arg(long)]
    gateway: Option<String>,
    #[arg(long)]
    internal: bool,
    #[arg(long)]
    mtu: Option<u32>,
    /// k=v, repeatable.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Driver option k=v, repeatable: com.docker.network.bridge.name, com.docker.network.driver.mtu,
    /// icc=false, gateway-mode=routed, com.docker.network.bridge.enable_ip_masquerade=false,
    /// alias-mode=dns|vip, alias-lb=roundrobin|random|maglev.
    #[arg(short = 'o', long = "opt")]
    options: Vec<String>,
    /// `vip`: every alias of a member gets a virtual IP, balanced per connection
    /// (same as -o alias-mode=vip); `dns` (default): round robin in DNS answers.
    #[arg(long)]
    alias_mode: Option<String>,
    /// Default algorithm of the network's VIP aliases: roundrobin, random or maglev.
    #[arg(long)]
    alias_lb: Option<String>,
    name: String,
}

pub async fn run(client: &Client, cmd: NetworkCommand) -> Result<i32, ClientError> {
    match cmd {
        NetworkCommand::Create(args) => {
            let labels = key_values(&args.labels);
            let mut options = key_values(&args.options);
            for (key, value) in [("alias-mode", args.alias_mode), ("alias-lb", args.alias_lb)] {
                if let Some(value) = value {
                    options.insert(key.to_string(), value);
                }
            }
            let req = CreateNetwork {
                name: args.name,
                driver: Some(args.driver),
                subnet: args.subnet,
                ip_range: args.ip_range,
                gateway: args.gateway,
                internal: args.internal,
                mtu: args.mtu,
                labels,
                options,
            };
            let body = serde_json::to_value(req).expect("serializes");
            let resp = client
                .call(Method::POST, "/v1/networks", Some(&body))
                .await?;
            println!("{}", str_of(&resp, "/Id"));
        }
        NetworkCommand::Ls(format) => {
            let nets = client.call(Method::GET, "/v1/networks", None).await?;
            match format.format {
                output::Format::Json => output::json(&nets),
                output::Format::Table => {
                    let rows: Vec<Vec<String>> = as_array(&nets)
                        .iter()
                        .map(|n| {
                            vec![
                                output::short_id(&str_of(n, "/Id")),
                                str_of(n, "/Name"),
                                str_of(n, "/Driver"),
                                str_of(n, "/Scope"),
                            ]
                        })
                        .collect();
                    output::table(&["NETWORK ID", "NAME", "DRIVER", "SCOPE"], &rows);
                }
            }
        }
        NetworkCommand::Inspect { networks } => {
            let mut all = Vec::new();
            for n in &networks {
                all.push(
                    client
                        .call(Method::GET, &format!("/v1/networks/{}", seg(n)), None)
                        .await?,
                );
            }
            output::json(&Value::Array(all));
        }
        NetworkCommand::Rm { networks } => {
            let mut code = 0;
            for n in &networks {
                match client
                    .call(Method::DELETE, &format!("/v1/networks/{}", seg(n)), None)
                    .await
                {
                    Ok(_) => println!("{n}"),
                    Err(e) => {
                        eprintln!("Error: {e}");
                        code = 1;
                    }
                }
            }
            return Ok(code);
        }
        NetworkCommand::Prune { force: _ } => {
            let resp = client
                .call(Method::POST, "/v1/networks/prune", None)
                .await?;
            let deleted = as_array(&resp["NetworksDeleted"]);
            if !deleted.is_empty() {
                println!("Deleted Networks:");
                for n in deleted {
                    println!("{}", n.as_str().unwrap_or_default());
                }
            }
        }
        NetworkCommand::Connect {
            ip,
            aliases,
            network,
            container,
        } => {
            let body = json!({"container": container, "ip": ip, "aliases": aliases});
            client
                .call(
                    Method::POST,
                    &format!("/v1/networks/{}/connect", seg(&network)),
                    Some(&body),
                )
                .await?;
        }
        NetworkCommand::Update { options, network } => {
            let body = json!({"options": key_values(&options)});
            client
                .call(
                    Method::POST,
                    &format!("/v1/networks/{}/update", seg(&network)),
                    Some(&body),
                )
                .await?;
            println!("{network}");
        }
        NetworkCommand::Disconnect { network, container } => {
            let body = json!({"container": container});
            client
                .call(
                    Method::POST,
                    &format!("/v1/networks/{}/disconnect", seg(&network)),
                    Some(&body),
                )
                .await?;
        }
    }
    Ok(0)
}

/// `k=v` pairs; a bare `k` has an empty value.
fn key_values(pairs: &[String]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

pub fn as_array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}
