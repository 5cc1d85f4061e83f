//! `netd alias ...`: aliases with a virtual IP, their algorithm and backends.

use clap::Subcommand;
use hyper::Method;
use serde_json::{json, Value};

use super::{
    network::as_array,
    output::{self, str_of, FormatArg},
    seg,
};
use crate::api::client::{Client, ClientError};

#[derive(Subcommand)]
pub enum AliasCommand {
    /// Give an alias a virtual IP on a network, whether or not containers carry it yet.
    Create {
        #[arg(long)]
        network: String,
        /// roundrobin, random or maglev; default: the network's alias-lb.
        #[arg(long)]
        lb: Option<String>,
        /// A static VIP from the network's subnet.
        #[arg(long)]
        ip: Option<String>,
        name: String,
    },
    /// List aliases with virtual IPs.
    #[command(alias = "list")]
    Ls(FormatArg),
    /// Show an alias, its VIP, algorithm and backends with their connection counts, as JSON.
    Inspect {
        #[arg(long)]
        network: String,
        name: String,
    },
    /// Release an alias's virtual IP.
    #[command(alias = "remove")]
    Rm {
        #[arg(long)]
        network: String,
        name: String,
    },
}

pub async fn run(client: &Client, cmd: AliasCommand) -> Result<i32, ClientError> {
    match cmd {
        AliasCommand::Create {
            network,
            lb,
            ip,
            name,
        } => {
            let body = json!({"network": network, "name": name, "lb": lb, "ip": ip});
            let alias = client
                .call(Method::POST, "/v1/aliases", Some(&body))
                .await?;
            println!("{}", str_of(&alias, "/VIP"));
        }
        AliasCommand::Ls(format) => {
            let aliases = client.call(Method::GET, "/v1/aliases", None).await?;
            match format.format {
                output::Format::Json => output::json(&aliases),
                output::Format::Table => {
                    let rows: Vec<Vec<String>> = as_array(&aliases).iter().map(row).collect();
                    output::table(&["NETWORK", "ALIAS", "VIP", "LB", "BACKENDS"], &rows);
                }
            }
        }
        AliasCommand::Inspect { network, name } => {
            let path = format!("/v1/aliases/{}/{}", seg(&network), seg(&name));
            output::json(&client.call(Method::GET, &path, None).await?);
        }
        AliasCommand::Rm { network, name } => {
            let path = format!("/v1/aliases/{}/{}", seg(&network), seg(&name));
            client.call(Method::DELETE, &path, None).await?;
            println!("{name}");
        }
    }
    Ok(0)
}

/// NETWORK ALIAS VIP LB BACKENDS, backends as `name (connections)`.
fn row(a: &Value) -> Vec<String> {
    let backends: Vec<String> = as_array(&a["Backends"])
        .iter()
        .map(|b| {
            format!(
                "{} ({})",
                str_of(b, "/Container"),
                str_of(b, "/Connections")
            )
        })
        .collect();
    vec![
        str_of(a, "/Network"),
        str_of(a, "/Name"),
        str_of(a, "/VIP"),
        str_of(a, "/LB"),
        backends.join(", "),
    ]
}
