//! `/v1/nodes`: the cluster's hosts, for `netd node ls` and `netd node rm`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use serde_json::Value;

use super::ApiError;
use crate::{
    cluster::{nodes::NodeError, ClusterError},
    shared::Shared,
};

impl From<NodeError> for ApiError {
    fn from(e: NodeError) -> Self {
        let status = match &e {
            NodeError::NameTaken { .. } | NodeError::Alive(_) | NodeError::Own(_) => {
                StatusCode::CONFLICT
            }
            NodeError::NotFound(_) => StatusCode::NOT_FOUND,
            NodeError::NotJoined { .. } | NodeError::Store(ClusterError::Unreachable { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            NodeError::Store(_) => StatusCode::BAD_GATEWAY,
        };
        ApiError::new(status, e.to_string())
    }
}

fn not_clustered() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "this daemon is not in a cluster: start it with --cluster-store",
    )
}

pub async fn list(State(d): State<Shared>) -> Result<Json<Value>, ApiError> {
    let node = d.cluster.as_ref().ok_or_else(not_clustered)?;
    let nodes = node.membership().await?.nodes().await?;
    Ok(Json(serde_json::to_value(nodes).expect("nodes serialize")))
}

pub async fn remove(
    State(d): State<Shared>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let node = d.cluster.as_ref().ok_or_else(not_clustered)?;
    node.membership().await?.remove(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
