//! A small HTTP/1.1 client over the daemon's unix socket, used by the CLI.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use super::error::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the netd daemon at {socket}: {source}; is `netd daemon` running (see --socket / NETD_SOCKET)?")]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the daemon: {0}")]
    Http(#[from] hyper::Error),
    #[error("{message}")]
    Api { status: StatusCode, message: String },
    #[error("the daemon answered with something that is not JSON: {0}")]
    Decode(#[from] serde_json::Error),
}

pub struct Response {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

pub struct Client {
    socket: PathBuf,
}

impl Client {
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_path_buf(),
        }
    }

    /// A fresh HTTP/1.1 connection to the daemon.
    async fn connect(
        &self,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::Connect {
                socket: self.socket.clone(),
                source,
            })?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// One request on a fresh connection; any status comes back as it is.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Response, ClientError> {
        let mut sender = self.connect().await?;
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "netd")
            .header("content-type", "application/json")
            .body(Full::new(body))
            .expect("static request parts are valid");
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Response {
            status,
            headers,
            body,
        })
    }

    /// A GET whose answer is a stream of lines (`/v1/monitor`): `line` is called for each as
    /// it arrives, until the daemon ends the stream.
    pub async fn stream_lines(
        &self,
        path: &str,
        mut line: impl FnMut(&str),
    ) -> Result<(), ClientError> {
        let mut sender = self.connect().await?;
        let req = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header("host", "netd")
            .body(Full::new(Bytes::new()))
            .expect("static request parts are valid");
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        if !status.is_success() {
            let bytes = body.collect().await?.to_bytes();
            let message = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
            return Err(ClientError::Api { status, message });
        }
        let mut pending = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let rest = pending.split_off(end + 1);
                line(String::from_utf8_lossy(&pending[..end]).as_ref());
                pending = rest;
            }
        }
        Ok(())
    }

    /// A request whose non-2xx answers become [`ClientError::Api`] with the daemon's message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let resp = self.raw(method, path, body).await?;
        if !resp.status.is_success() {
            let message = serde_json::from_slice::<ErrorBody>(&resp.body)
                .map(|b| b.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&resp.body).into_owned());
            return Err(ClientError::Api {
                status: resp.status,
                message,
            });
        }
        if resp.body.is_empty() {
            return Ok(Value::Null);
        }
        Ok(serde_json::from_slice(&resp.body)?)
    }
}
