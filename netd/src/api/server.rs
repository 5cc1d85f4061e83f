//! Routes of the API and their handlers. Handlers parse, call the engine under its lock, and
//! shape the answer; the engine does the work.

use std::{io::SeekFrom, sync::Arc};

use axum::{
    body::Bytes,
    extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State},
    http::{header, StatusCode},
    middleware,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{wire, ApiError};
use crate::{
    config::{
        alias::CreateAlias,
        container::{ContainerSpec, CreateContainer},
        network::{CreateNetwork, NetworkSpec},
    },
    engine::host::CountedAt,
    metrics::track_operations,
    process,
    shared::Shared,
};

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

pub fn router(daemon: Shared) -> Router {
    Router::new()
        .route("/v1/version", get(version))
        .route("/v1/nodes", get(super::nodes::list))
        .route(
            "/v1/nodes/{name}",
            axum::routing::delete(super::nodes::remove),
        )
        .route("/v1/networks", get(list_networks).post(create_network))
        .route("/v1/networks/prune", post(prune_networks))
        .route(
            "/v1/networks/{key}",
            get(inspect_network).delete(remove_network),
        )
        .route("/v1/networks/{key}/connect", post(connect))
        .route("/v1/networks/{key}/disconnect", post(disconnect))
        .route("/v1/networks/{key}/update", post(update_network))
        .route(
            "/v1/containers",
            get(list_containers).post(create_container),
        )
        .route(
            "/v1/containers/{key}",
            get(inspect_container).delete(remove_container),
        )
        .route("/v1/containers/{key}/start", post(start_container))
        .route("/v1/containers/{key}/stop", post(stop_container))
        .route(
            "/v1/containers/{key}/ports",
            post(super::ports::publish_ports),
        )
        .route("/v1/aliases", get(list_aliases).post(create_alias))
        .route(
            "/v1/aliases/{network}/{name}",
            get(inspect_alias).delete(remove_alias),
        )
        .route("/v1/containers/{key}/logs", get(logs))
        .route("/v1/containers/{key}/check", get(check_container))
        .route("/v1/containers/{key}/sandbox", get(sandbox))
        .route("/v1/stats", get(stats))
        .route("/v1/stats/{view}", get(stats_view))
        .route("/v1/drops", get(drops))
        .route("/v1/monitor", get(super::monitor::monitor))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no such API path; see /v1/version")
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&daemon),
            track_operations,
        ))
        .with_state(daemon)
}

/// A JSON body whose errors (malformed, unknown fields, too large) come back as JSON too.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            let status = r.status();
            let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("request body is larger than the limit of {MAX_BODY} bytes")
            } else {
                r.body_text()
            };
            ApiError::new(status, message)
        })?;
        serde_json::from_slice(&bytes).map(ApiJson).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid request body: {e}"),
            )
        })
    }
}

async fn version() -> Json<Value> {
    Json(json!({"Version": env!("CARGO_PKG_VERSION"), "ApiVersion": "1"}))
}

async fn list_networks(State(d): State<Shared>) -> Json<Value> {
    let engine = d.engine.lock().await;
    Json(
        engine
            .networks()
            .map(|n| wire::network(&engine, n))
            .collect(),
    )
}

async fn create_network(
    State(d): State<Shared>,
    ApiJson(req): ApiJson<CreateNetwork>,
) -> Result<Response, ApiError> {
    let spec = NetworkSpec::try_from(req).map_err(crate::engine::EngineError::from)?;
    let mut engine = d.engine.lock().await;
    let net = engine.create_network(spec).await?;
    Ok((StatusCode::CREATED, Json(json!({"Id": net.id}))).into_response())
}

async fn inspect_network(
    State(d): State<Shared>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = d.engine.lock().await;
    let net = engine.network(&key)?;
    Ok(Json(wire::network(&engine, net)))
}

async fn remove_network(
    State(d): State<Shared>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    d.engine.lock().await.remove_network(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune_networks(State(d): State<Shared>) -> Result<Json<Value>, ApiError> {
    let removed = d.engine.lock().await.prune_networks().await?;
    Ok(Json(json!({"NetworksDeleted": removed})))
}

async fn update_network(
    State(d): State<Shared>,
    Path(key): Path<String>,
    ApiJson(req): ApiJson<wire::UpdateNetwork>,
) -> Result<Json<Value>, ApiError> {
    let mut engine = d.engine.lock().await;
    let net = engine.update_network(&key, &req.options).await?;
    Ok(Json(wire::network(&engine, &net)))
}

/// A `netd stats` view of the metrics: ports, maps, aliases, dns or api.
async fn stats_view(
    State(d): State<Shared>,
    Path(view): Path<String>,
) -> Result<Json<Value>, ApiError> {
    match crate::metrics::views::rows(&d, &view).await {
        Some(rows) => Ok(Json(Value::Array(rows))),
        None => {
            let known: Vec<&str> = crate::metrics::views::VIEWS
                .iter()
                .map(|(n, _)| *n)
                .collect();
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no stats view {view:?}; the views are {}", known.join(", ")),
            ))
        }
    }
}

/// What the datapath dropped, by network, reason and direction.
async fn drops(State(d): State<Shared>) -> Json<Value> {
    let engine = d.engine.lock().await;
    Json(Value::Array(wire::drops(&engine, None)))
}

async fn connect(
    State(d): State<Shared>,
    Path(key): Path<String>,
    ApiJson(req): ApiJson<wire::Connect>,
) -> Result<Json<Value>, ApiError> {
    let mut engine = d.engine.lock().await;
    let e = engine
        .connect_interface(
            &key,
            &req.container,
            req.ip.as_deref(),
            &req.aliases,
            req.ifname.as_deref(),
            req.mac_address.as_deref(),
        )
        .await?;
    Ok(Json(
        json!({"EndpointID": e.id, "IPAddress": e.ip.to_string(), "InterfaceName": e.ifname.as_str()}),
    ))
}

async fn disconnect(
    State(d): State<Shared>,
    Path(key): Path<String>,
    ApiJson(req): ApiJson<wire::Disconnect>,
) -> Result<StatusCode, ApiError> {
    d.engine
        .lock()
        .await
        .disconnect(&key, &req.container)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_containers(State(d): State<Shared>) -> Json<Value> {
    let engine = d.engine.lock().await;
    Json(
        engine
            .containers()
            .map(|c| wire::container(&engine, c))
            .collect(),
    )
}

async fn create_container(
    State(d): State<Shared>,
    ApiJson(req): ApiJson<CreateContainer>,
) -> Result<Response, ApiError> {
    let spec = ContainerSpec::try_from(req).map_err(crate::engine::EngineError::from)?;
    let (c, started) = d.engine.lock().await.create_container(spec).await?;
    if let Some(started) = started {
        d.watch_child(started);
    }
    Ok((StatusCode::CREATED, Json(json!({"Id": c.id}))).into_response())
}

async fn start_container(
    State(d): State<Shared>,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    if let Some(started) = d.engine.lock().await.start_container(&key)? {
        d.watch_child(started);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct StopQuery {
    /// Seconds between SIGTERM and SIGKILL, as `docker stop -t`.
    #[serde(default = "stop_timeout")]
    t: u64,
}

fn stop_timeout() -> u64 {
    10
}

/// Stops the container's command: SIGTERM to its whole session, SIGKILL after `t` seconds,
/// and returns once the daemon has recorded the exit (so that, e.g., a VIP no longer sends
/// it connections). A container that is not running is left as it is.
async fn stop_container(
    State(d): State<Shared>,
    Path(key): Path<String>,
    Query(q): Query<StopQuery>,
) -> Result<StatusCode, ApiError> {
    let (id, process) = {
        let engine = d.engine.lock().await;
        let c = engine.container(&key)?;
        match c.process.clone().filter(|_| c.is_running()) {
            Some(p) => (c.id.clone(), p),
            None => return Ok(StatusCode::NO_CONTENT),
        }
    };
    let exited = || async {
        let engine = d.engine.lock().await;
        engine.container(&id).map_or(true, |c| !c.is_running())
    };
    process::terminate(&process);
    for (signal_kill, wait) in [(false, q.t), (true, 5)] {
        if signal_kill {
            process::kill(&process);
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
        while tokio::time::Instant::now() < deadline {
            if exited().await {
                return Ok(StatusCode::NO_CONTENT);
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    Err(ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("container {key} did not exit after SIGKILL"),
    ))
}

async fn list_aliases(State(d): State<Shared>) -> Json<Value> {
    let engine = d.engine.lock().await;
    Json(
        engine
            .aliases()
            .iter()
            .map(|a| wire::alias(&engine, a))
            .collect(),
    )
}

async fn create_alias(
    State(d): State<Shared>,
    ApiJson(req): ApiJson<CreateAlias>,
) -> Result<Response, ApiError> {
    let mut engine = d.engine.lock().await;
    let alias = engine.create_alias(req).await?;
    Ok((StatusCode::CREATED, Json(wire::alias(&engine, &alias))).into_response())
}

async fn inspect_alias(
    State(d): State<Shared>,
    Path((network, name)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let engine = d.engine.lock().await;
    let net = engine.network(&network)?.name.to_string();
    let alias = engine
        .aliases()
        .into_iter()
        .find(|a| a.network == net && a.name.eq_ignore_ascii_case(&name))
        .ok_or_else(|| {
            crate::engine::EngineError::not_found("alias", format!("{name} on network {net}"))
        })?;
    Ok(Json(wire::alias(&engine, &alias)))
}

async fn remove_alias(
    State(d): State<Shared>,
    Path((network, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    d.engine.lock().await.remove_alias(&network, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn inspect_container(
    State(d): State<Shared>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let engine = d.engine.lock().await;
    let c = engine.container(&key)?;
    Ok(Json(wire::container(&engine, c)))
}

#[derive(Deserialize)]
struct RemoveQuery {
    #[serde(default)]
    force: bool,
    /// Removing on behalf of a runtime (`cni`), which may remove its own containers.
    #[serde(default)]
    origin: Option<String>,
}

async fn remove_container(
    State(d): State<Shared>,
    Path(key): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<StatusCode, ApiError> {
    // Docker's endpoints go only through Docker (its DeleteEndpoint on the plugin socket);
    // naming another runtime here must not open a door the CLI's `rm` keeps shut.
    let kind = match q.origin.as_deref() {
        None | Some("netd") => "netd",
        Some("cni") => "cni",
        Some(other) => {
            return Err(crate::engine::EngineError::Forbidden(format!(
                "origin {other:?}: only cni removes its containers through this API; a Docker endpoint goes when Docker removes it"
            ))
            .into())
        }
    };
    d.engine
        .lock()
        .await
        .remove_container_as(&key, q.force, kind)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What is missing of a container's interfaces and datapath entries.
async fn check_container(
    State(d): State<Shared>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let problems = d.engine.lock().await.check_container(&key).await?;
    Ok(Json(json!({"Problems": problems})))
}

#[derive(Deserialize)]
struct LogsQuery {
    #[serde(default)]
    offset: u64,
}

/// The log from `offset` on; `x-netd-running` says whether more may come.
async fn logs(
    State(d): State<Shared>,
    Path(key): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let (path, running) = {
        let engine = d.engine.lock().await;
        let c = engine.container(&key)?;
        (
            engine.store().container_dir(&c.id).join("log"),
            c.is_running(),
        )
    };
    let mut data = Vec::new();
    if let Ok(mut file) = tokio::fs::File::open(&path).await {
        let read = async {
            file.seek(SeekFrom::Start(q.offset)).await?;
            file.take(MAX_BODY as u64).read_to_end(&mut data).await
        };
        read.await.map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reading {}: {e}", path.display()),
            )
        })?;
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            (
                header::HeaderName::from_static("x-netd-running"),
                if running { "true" } else { "false" },
            ),
        ],
        data,
    )
        .into_response())
}

async fn sandbox(
    State(d): State<Shared>,
    Path(key): Path<String>,
) -> Result<Json<process::SandboxEnv>, ApiError> {
    let engine = d.engine.lock().await;
    let c = engine.container(&key)?;
    Ok(Json(engine.sandbox_env(c)))
}

/// Packet and byte counters of every container interface, from the datapath's maps.
async fn stats(State(d): State<Shared>) -> Json<Value> {
    let (host, ports) = {
        let engine = d.engine.lock().await;
        let ports: Vec<_> = engine
            .containers()
            .flat_map(|c| {
                c.endpoints.iter().map(|e| {
                    let net = engine
                        .network(&e.network_id)
                        .map(|n| n.name.to_string())
                        .unwrap_or_default();
                    let at = engine.counted_at(e);
                    // A macvlan has no host end.
                    let port = match at {
                        CountedAt::Port(_) => e.host_ifname.to_string(),
                        CountedAt::Lan(_) => String::new(),
                    };
                    (c.name.to_string(), net, e.ifname.to_string(), port, at)
                })
            })
            .collect();
        (Arc::clone(&engine.host().telemetry), ports)
    };
    let mut rows = Vec::new();
    let at: Vec<CountedAt> = ports.iter().map(|(.., at)| at.clone()).collect();
    let counters = host.port_counters(&at).await;
    for ((container, network, ifname, port, _), c) in ports.iter().zip(counters) {
        rows.push(json!({
            "Container": container, "Network": network, "Interface": ifname, "HostInterface": port,
            // The port's ingress is what the container sent.
            "TxPackets": c.ingress_packets, "TxBytes": c.ingress_bytes,
            "RxPackets": c.egress_packets, "RxBytes": c.egress_bytes,
        }));
    }
    Json(Value::Array(rows))
}
