//! Counts every API call by its route (see [`crate::shared::Operations`]).

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};

use crate::shared::Shared;

/// Axum middleware of the API router: counts each call under its route template, so that
/// names and ids do not make a series each.
pub async fn track_operations(State(d): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unknown", |p| p.as_str())
        .to_string();
    let operation = format!("{} {route}", req.method());
    let response = next.run(req).await;
    d.operations.record(operation, response.status().as_u16());
    response
}
