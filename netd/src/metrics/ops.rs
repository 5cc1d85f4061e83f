//! Counts every API call by its route (see [`crate::shared::Operations`]).

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};

use crate::shared::Shared;

/// Axum middleware of the API router: counts each call under its route template, so that
/// names and ids do not make a series each. Nothing of a label comes from the client: a
/// method netd does not serve is `OTHER`, a path that matches no route `unknown`.
pub async fn track_operations(State(d): State<Shared>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unknown", |p| p.as_str())
        .to_string();
    let operation = format!("{} {route}", method_label(req.method()));
    let response = next.run(req).await;
    d.operations.record(operation, response.status().as_u16());
    response
}

/// The method as a label: one of the few netd serves, else `OTHER`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        _ => "OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_of_the_clients_invention_is_other() {
        assert_eq!(method_label(&axum::http::Method::GET), "GET");
        let made_up = axum::http::Method::from_bytes(b"X-RANDOM-1234").unwrap();
        assert_eq!(method_label(&made_up), "OTHER");
        assert_eq!(method_label(&axum::http::Method::PATCH), "OTHER");
    }
}
