//! `netd run`, `create`, `start`, `exec`, `ps`, `inspect`, `rm`, `logs`, `stats`.

use std::{io::Write, time::Duration};

use clap::Args;
use hyper::Method;
use serde_json::Value;

use super::{
    network::as_array,
    output::{self, str_of, FormatArg},
    seg,
};
use crate::{
    api::client::{Client, ClientError},
    config::container::CreateContainer,
    process::{self, SandboxEnv},
};

#[derive(Args, Clone)]
pub struct CreateArgs {
    #[arg(long)]
    name: Option<String>,
    /// NETWORK, host, none or container:NAME.
    #[arg(long, alias = "net")]
    network: Option<String>,
    #[arg(long)]
    ip: Option<String>,
    #[arg(long)]
    hostname: Option<String>,
    #[arg(long)]
    mac_address: Option<String>,
    /// Extra name of the container on its network; repeatable.
    #[arg(long = "alias", alias = "network-alias", alias = "net-alias")]
    aliases: Vec<String>,
    /// Use this existing network namespace instead of creating one.
    #[arg(long)]
    netns_path: Option<String>,
    /// Publish a port: [HOST_IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/tcp|/udp]; repeatable.
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Offer a port for -P: PORT[-END][/tcp|/udp]; repeatable.
    #[arg(long)]
    expose: Vec<String>,
    /// Publish every exposed port on a random host port.
    #[arg(short = 'P', long)]
    publish_all: bool,
    /// Another container on the default bridge, as NAME or NAME:ALIAS, written into this one's
    /// /etc/hosts (legacy links); repeatable.
    #[arg(long = "link")]
    links: Vec<String>,
    /// The command to run inside, after `--`.
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(Args)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    detach: bool,
    /// Remove the container when its command exits (foreground only).
    #[arg(long)]
    rm: bool,
    #[command(flatten)]
    create: CreateArgs,
}

#[derive(Args)]
pub struct ExecArgs {
    container: String,
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

impl CreateArgs {
    fn request(self, start: bool) -> CreateContainer {
        CreateContainer {
            name: self
                .name
                .unwrap_or_else(|| format!("netd_{}", &crate::state::model::new_id()[..8])),
            network: self.network,
            ip: self.ip,
            hostname: self.hostname,
            mac_address: self.mac_address,
            netns_path: self.netns_path,
            aliases: self.aliases,
            command: self.command,
            start,
            publish: self.publish,
            expose: self.expose,
            publish_all: self.publish_all,
            links: self.links,
            ifname: None,
            origin: None,
        }
    }
}

async fn post_create(client: &Client, req: CreateContainer) -> Result<String, ClientError> {
    let body = serde_json::to_value(req).expect("serializes");
    let resp = client
        .call(Method::POST, "/v1/containers", Some(&body))
        .await?;
    Ok(str_of(&resp, "/Id"))
}

pub async fn create(client: &Client, args: CreateArgs) -> Result<i32, ClientError> {
    println!("{}", post_create(client, args.request(false)).await?);
    Ok(0)
}

pub async fn run(client: &Client, args: RunArgs) -> Result<i32, ClientError> {
    let start = !args.create.command.is_empty();
    let id = post_create(client, args.create.request(start)).await?;
    if args.detach || !start {
        println!("{id}");
        return Ok(0);
    }
    let code = follow(client, &id).await?;
    if args.rm {
        client
            .call(
                Method::DELETE,
                &format!("/v1/containers/{id}?force=true"),
                None,
            )
            .await?;
    }
    Ok(code)
}

/// Prints the log as it grows until the command exits; returns its exit code.
async fn follow(client: &Client, id: &str) -> Result<i32, ClientError> {
    let mut offset = 0u64;
    loop {
        let resp = client
            .raw(
                Method::GET,
                &format!("/v1/containers/{id}/logs?offset={offset}"),
                None,
            )
            .await?;
        if !resp.status.is_success() {
            return client
                .call(Method::GET, &format!("/v1/containers/{id}/logs"), None)
                .await
                .map(|_| 1);
        }
        let running = resp
            .headers
            .get("x-netd-running")
            .is_some_and(|v| v == "true");
        let mut stdout = std::io::stdout();
        let _ = stdout.write_all(&resp.body);
        let _ = stdout.flush();
        offset += resp.body.len() as u64;
        if !running && resp.body.is_empty() {
            break;
        }
        if resp.body.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let c = client
        .call(Method::GET, &format!("/v1/containers/{id}"), None)
        .await?;
    Ok(c.pointer("/State/ExitCode")
        .and_then(Value::as_i64)
        .unwrap_or(0) as i32)
}

pub async fn start(client: &Client, container: &str) -> Result<i32, ClientError> {
    client
        .call(
            Method::POST,
            &format!("/v1/containers/{}/start", seg(container)),
            None,
        )
        .await?;
    println!("{container}");
    Ok(0)
}

pub async fn stop(client: &Client, time: u64, containers: &[String]) -> Result<i32, ClientError> {
    // The daemon waits up to `time` for each command before its SIGKILL.
    let grace = Duration::from_secs(time.min(86_400));
    let client = client.clone().with_timeout(client.timeout() + grace);
    let mut code = 0;
    for c in containers {
        let path = format!("/v1/containers/{}/stop?t={time}", seg(c));
        match client.call(Method::POST, &path, None).await {
            Ok(_) => println!("{c}"),
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub async fn exec(client: &Client, args: ExecArgs) -> Result<i32, ClientError> {
    let env = client
        .call(
            Method::GET,
            &format!("/v1/containers/{}/sandbox", seg(&args.container)),
            None,
        )
        .await?;
    let env: SandboxEnv = serde_json::from_value(env)?;
    let mut cmd = std::process::Command::new(&args.command[0]);
    cmd.args(&args.command[1..]);
    let spawned = process::enter_on_exec(&mut cmd, &env, false)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            cmd.status()
                .map_err(|e| format!("cannot run {:?}: {e}", args.command.join(" ")))
        });
    match spawned {
        Ok(status) => {
            use std::os::unix::process::ExitStatusExt;
            Ok(status
                .code()
                .or(status.signal().map(|s| 128 + s))
                .unwrap_or(1))
        }
        Err(message) => {
            eprintln!("Error: {message}");
            Ok(126)
        }
    }
}

pub async fn ps(client: &Client, format: FormatArg) -> Result<i32, ClientError> {
    let all = client.call(Method::GET, "/v1/containers", None).await?;
    match format.format {
        output::Format::Json => output::json(&all),
        output::Format::Table => {
            let rows: Vec<Vec<String>> = as_array(&all)
                .iter()
                .map(|c| {
                    let networks: Vec<String> = c
                        .pointer("/NetworkSettings/Networks")
                        .and_then(Value::as_object)
                        .map(|m| {
                            m.iter()
                                .map(
                                    |(name, n)| match n.get("IPAddress").and_then(Value::as_str) {
                                        Some(ip) => format!("{name}={ip}"),
                                        None => name.clone(),
                                    },
                                )
                                .collect()
                        })
                        .unwrap_or_default();
                    let status = match str_of(c, "/State/Status").as_str() {
                        "exited" => format!("exited ({})", str_of(c, "/State/ExitCode")),
                        s => s.to_string(),
                    };
                    let command = c["Config"]["Cmd"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .unwrap_or_default();
                    let runtime_id = c
                        .pointer("/Origin/RuntimeId")
                        .and_then(Value::as_str)
                        .map(output::short_id)
                        .unwrap_or_default();
                    vec![
                        output::short_id(&str_of(c, "/Id")),
                        str_of(c, "/Name"),
                        str_of(c, "/Origin/Kind"),
                        runtime_id,
                        status,
                        networks.join(","),
                        command,
                    ]
                })
                .collect();
            output::table(
                &[
                    "CONTAINER ID",
                    "NAME",
                    "ORIGIN",
                    "RUNTIME ID",
                    "STATUS",
                    "NETWORKS",
                    "COMMAND",
                ],
                &rows,
            );
        }
    }
    Ok(0)
}

pub async fn inspect(client: &Client, containers: &[String]) -> Result<i32, ClientError> {
    let mut all = Vec::new();
    for c in containers {
        all.push(
            client
                .call(Method::GET, &format!("/v1/containers/{}", seg(c)), None)
                .await?,
        );
    }
    output::json(&Value::Array(all));
    Ok(0)
}

pub async fn rm(client: &Client, force: bool, containers: &[String]) -> Result<i32, ClientError> {
    let mut code = 0;
    for c in containers {
        let path = format!("/v1/containers/{}?force={force}", seg(c));
        match client.call(Method::DELETE, &path, None).await {
            Ok(_) => println!("{c}"),
            Err(e) => {
                eprintln!("Error: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub async fn logs(client: &Client, container: &str) -> Result<i32, ClientError> {
    let mut offset = 0u64;
    loop {
        let path = format!("/v1/containers/{}/logs?offset={offset}", seg(container));
        let resp = client.raw(Method::GET, &path, None).await?;
        if !resp.status.is_success() {
            client.call(Method::GET, &path, None).await?;
        }
        if resp.body.is_empty() {
            return Ok(0);
        }
        let _ = std::io::stdout().write_all(&resp.body);
        offset += resp.body.len() as u64;
    }
}

pub async fn stats(client: &Client, format: FormatArg, drops: bool) -> Result<i32, ClientError> {
    if drops {
        return drop_stats(client, format).await;
    }
    let all = client.call(Method::GET, "/v1/stats", None).await?;
    match format.format {
        output::Format::Json => output::json(&all),
        output::Format::Table => {
            let cols = [
                "Container",
                "Network",
                "Interface",
                "RxPackets",
                "RxBytes",
                "TxPackets",
                "TxBytes",
            ];
            let rows: Vec<Vec<String>> = as_array(&all)
                .iter()
                .map(|r| cols.iter().map(|c| str_of(r, &format!("/{c}"))).collect())
                .collect();
            output::table(
                &[
                    "CONTAINER",
                    "NETWORK",
                    "IFACE",
                    "RX PKTS",
                    "RX BYTES",
                    "TX PKTS",
                    "TX BYTES",
                ],
                &rows,
            );
        }
    }
    Ok(0)
}

/// `netd stats --view NAME`: rows of a metrics view, columns in the view's order.
pub async fn stats_view(
    client: &Client,
    format: FormatArg,
    view: &str,
) -> Result<i32, ClientError> {
    let rows = client
        .call(Method::GET, &format!("/v1/stats/{}", seg(view)), None)
        .await?;
    match format.format {
        output::Format::Json => output::json(&rows),
        output::Format::Table => {
            let cols = crate::metrics::views::VIEWS
                .iter()
                .find(|(n, _)| *n == view)
                .map_or(&[][..], |(_, c)| *c);
            let cells: Vec<Vec<String>> = as_array(&rows)
                .iter()
                .map(|r| cols.iter().map(|c| str_of(r, &format!("/{c}"))).collect())
                .collect();
            let headers: Vec<String> = cols.iter().map(|c| c.to_ascii_uppercase()).collect();
            let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
            output::table(&headers, &cells);
        }
    }
    Ok(0)
}

async fn drop_stats(client: &Client, format: FormatArg) -> Result<i32, ClientError> {
    let all = client.call(Method::GET, "/v1/drops", None).await?;
    match format.format {
        output::Format::Json => output::json(&all),
        output::Format::Table => {
            let cols = ["Network", "Reason", "Direction", "Packets", "Bytes"];
            let rows: Vec<Vec<String>> = as_array(&all)
                .iter()
                .map(|r| cols.iter().map(|c| str_of(r, &format!("/{c}"))).collect())
                .collect();
            output::table(
                &["NETWORK", "REASON", "DIRECTION", "PACKETS", "BYTES"],
                &rows,
            );
        }
    }
    Ok(0)
}

/// `netd port NAME [PORT[/PROTO]] [-p SPEC]...`, as `docker port` prints it.
pub async fn port(
    client: &Client,
    container: &str,
    filter: Option<&str>,
    publish: &[String],
) -> Result<i32, ClientError> {
    let path = format!("/v1/containers/{}", seg(container));
    let c = if publish.is_empty() {
        client.call(Method::GET, &path, None).await?
    } else {
        let body = serde_json::json!({ "publish": publish });
        let path = format!("{path}/ports");
        client.call(Method::POST, &path, Some(&body)).await?
    };
    let Some(ports) = c
        .pointer("/NetworkSettings/Ports")
        .and_then(Value::as_object)
    else {
        return Ok(0);
    };
    let filter = filter.map(|f| {
        if f.contains('/') {
            f.to_string()
        } else {
            format!("{f}/tcp")
        }
    });
    for (private, bindings) in ports {
        if filter.as_ref().is_some_and(|f| f != private) {
            continue;
        }
        for b in as_array(bindings) {
            let binding = format!("{}:{}", str_of(b, "/HostIp"), str_of(b, "/HostPort"));
            if filter.is_some() {
                println!("{binding}");
            } else {
                println!("{private} -> {binding}");
            }
        }
    }
    Ok(0)
}
