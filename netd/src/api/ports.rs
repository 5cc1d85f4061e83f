//! `POST /v1/containers/{key}/ports`: more published ports for an existing container.

use axum::{
    extract::{Path, State},
    Json,
};
use serde_json::Value;

use super::{server::ApiJson, wire, ApiError};
use crate::{
    config::port::{PortMapping, PublishPorts},
    engine::EngineError,
    shared::Shared,
};

/// Publishes the ports of the body (all or none) and answers the container as `inspect` does.
pub async fn publish_ports(
    State(d): State<Shared>,
    Path(key): Path<String>,
    ApiJson(req): ApiJson<PublishPorts>,
) -> Result<Json<Value>, ApiError> {
    let mappings = Vec::<PortMapping>::try_from(&req).map_err(EngineError::from)?;
    let mut engine = d.engine.lock().await;
    engine.publish_ports(&key, &mappings).await?;
    let c = engine.container(&key)?;
    Ok(Json(wire::container(&engine, c)))
}
