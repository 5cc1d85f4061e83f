//! Docker's front door: the network driver and IPAM driver plugin protocol (JSON over HTTP on
//! `/run/docker/plugins/NAME.sock`), translated into the engine's operations.

mod ipam;
mod network;
mod ports;
pub mod wire;

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::shared::Shared;

/// Where Docker looks for plugin sockets.
pub const PLUGIN_DIR: &str = "/run/docker/plugins";
const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

pub fn router(daemon: Shared) -> Router {
    Router::new()
        .route("/{method}", post(call))
        .with_state(daemon)
}

/// How a call failed: the protocol answers each in its own way.
#[derive(Debug)]
pub enum Failure {
    /// A method this plugin does not have: 404, so that Docker treats it as optional.
    Unknown(String),
    /// A body that is not JSON of the call's shape: an HTTP error status.
    Malformed(String),
    /// A valid call refused or failed: `{"Err": ...}` (NetworkDriver), `{"Error": ...}`
    /// (IpamDriver).
    Refused(String),
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Refused(e.to_string())
    }
}

async fn call(State(d): State<Shared>, Path(method): Path<String>, body: Bytes) -> Response {
    log::debug!("docker {method} {}", String::from_utf8_lossy(&body));
    let (api, result) = if method == "Plugin.Activate" {
        (
            "Err",
            Ok(json!({"Implements": ["NetworkDriver", "IpamDriver"]})),
        )
    } else if let Some(m) = method.strip_prefix("NetworkDriver.") {
        ("Err", network::call(&d, m, &body).await)
    } else if let Some(m) = method.strip_prefix("IpamDriver.") {
        ("Error", ipam::call(&d, m, &body).await)
    } else {
        ("Err", Err(Failure::Unknown(method.clone())))
    };
    let (status, value) = match result {
        Ok(value) => (StatusCode::OK, value),
        Err(Failure::Unknown(m)) => (
            StatusCode::NOT_FOUND,
            json!({api: format!("netd has no plugin method {m}")}),
        ),
        Err(Failure::Malformed(why)) => {
            log::warn!("docker {method}: {why}");
            // Docker reads `Err` of any answer that is not 200, whichever driver it asked.
            (StatusCode::BAD_REQUEST, json!({"Err": why}))
        }
        Err(Failure::Refused(why)) => {
            log::warn!("docker {method}: {why}");
            (StatusCode::OK, json!({api: why}))
        }
    };
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        value.to_string(),
    )
        .into_response()
}

/// The checks a plugin call's body passes before the engine sees it (the fuzz targets
/// drive them with any bytes): `Err` is a refusal, never a panic.
pub fn check(method: &str, bytes: &[u8]) -> Result<(), Failure> {
    if let Some(m) = method.strip_prefix("NetworkDriver.") {
        network::check(m, bytes)
    } else if let Some(m) = method.strip_prefix("IpamDriver.") {
        ipam::check(m, bytes)
    } else {
        Ok(())
    }
}

/// The plugin's refusal of a request the listener cuts short (too large, too slow): Docker
/// reads `Err` of any answer that is not 200.
pub fn reject(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        json!({"Err": message}).to_string(),
    )
        .into_response()
}

/// The call's body; an empty one (or `null`) is the call's defaults.
fn body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, Failure> {
    let text = std::str::from_utf8(bytes).unwrap_or_default().trim();
    if text.is_empty() || text == "null" {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Failure::Malformed(format!("invalid request body: {e}")))
}

fn ok() -> Result<Value, Failure> {
    Ok(json!({}))
}
