//! Prometheus metrics on `--metrics-addr` (default 127.0.0.1:9640): `GET /metrics` in the
//! Prometheus text format, read from the BPF maps and the daemon's state at scrape time.

mod collect;
mod family;
mod ops;
pub mod views;

use std::net::SocketAddr;

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};

pub use ops::track_operations;

use crate::{
    api::listen::{self, Limits},
    shared::Shared,
};

/// Where the metrics are served; `None` for `--metrics-addr none`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsAddr(pub Option<SocketAddr>);

/// Parses `--metrics-addr`: IP:PORT, or `none`.
pub fn parse_addr(s: &str) -> Result<MetricsAddr, String> {
    if s == "none" {
        return Ok(MetricsAddr(None));
    }
    s.parse()
        .map(|a| MetricsAddr(Some(a)))
        .map_err(|_| format!("{s:?} is not IP:PORT or none"))
}

/// The metrics port, bound, with what it serves.
pub struct Bound {
    listener: tokio::net::TcpListener,
    app: Router,
}

/// Binds the metrics port (an error here stops the daemon's start).
pub async fn bind(addr: SocketAddr, daemon: Shared) -> std::io::Result<Bound> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = Router::new()
        .route("/metrics", get(metrics))
        .with_state(daemon);
    Ok(Bound { listener, app })
}

/// Serves `/metrics` until `stopped`. Any local user reaches this port: it holds few
/// connections and gives each a short time (see [`Limits::METRICS`]).
pub async fn serve(bound: Bound, stopped: impl std::future::Future<Output = ()>) {
    listen::serve(
        bound.listener,
        bound.app,
        ("the metrics port", Limits::METRICS, listen::reject_text),
        stopped,
    )
    .await
}

async fn metrics(State(d): State<Shared>) -> impl IntoResponse {
    let body = collect::render(&d).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_none_turns_metrics_off() {
        assert_eq!(parse_addr("none"), Ok(MetricsAddr(None)));
        assert_eq!(
            parse_addr("127.0.0.1:9640"),
            Ok(MetricsAddr(Some("127.0.0.1:9640".parse().unwrap())))
        );
        assert!(parse_addr("localhost:9640")
            .unwrap_err()
            .contains("localhost:9640"));
    }
}
