//! A small HTTP/1.1 client over the daemon's unix socket, used by the CLI and netd-cni.
//! Every call is bounded: a daemon that is stopped or hung gets a timeout error, never a
//! caller blocked for ever.

use std::{
    future::Future,
    path::{Path, PathBuf},
    time::Duration,
};

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
    #[error("the netd daemon at {socket} did not answer within {} s; it may be stopped or overloaded (NETD_TIMEOUT sets the limit in seconds)", after.as_secs())]
    Timeout { socket: PathBuf, after: Duration },
    #[error("cannot make a request for {path:?}: {why}")]
    Request { path: String, why: String },
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

/// How long a call may take when NETD_TIMEOUT does not say: from connecting until the
/// whole answer is read (for a stream, until it starts).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Client {
    socket: PathBuf,
    timeout: Duration,
}

impl Client {
    /// A client whose calls give up after NETD_TIMEOUT seconds (default [`DEFAULT_TIMEOUT`]).
    pub fn new(socket: &Path) -> Self {
        let timeout = std::env::var("NETD_TIMEOUT")
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e6)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64);
        Self {
            socket: socket.to_path_buf(),
            timeout,
        }
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Runs `call` within the client's timeout.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = Result<T, ClientError>>,
    ) -> Result<T, ClientError> {
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ClientError::Timeout {
                socket: self.socket.clone(),
                after: self.timeout,
            })?
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
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let req = request(method, path)
            .header("content-type", "application/json")
            .body(Full::new(body))
            .map_err(|e| bad_request(path, e))?;
        self.bounded(async {
            let mut sender = self.connect().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = resp.into_body().collect().await?.to_bytes();
            Ok(Response {
                status,
                headers,
                body,
            })
        })
        .await
    }

    /// A GET whose answer is a stream of lines (`/v1/monitor`): `line` is called for each as
    /// it arrives, until the daemon ends the stream.
    pub async fn stream_lines(
        &self,
        path: &str,
        mut line: impl FnMut(&str),
    ) -> Result<(), ClientError> {
        let req = request(Method::GET, path)
            .body(Full::new(Bytes::new()))
            .map_err(|e| bad_request(path, e))?;
        // Bounded until the stream starts; then it lasts as long as the daemon sends.
        let resp = self
            .bounded(async {
                let mut sender = self.connect().await?;
                Ok(sender.send_request(req).await?)
            })
            .await?;
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

fn request(method: Method, path: &str) -> hyper::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", "netd")
}

fn bad_request(path: &str, e: hyper::http::Error) -> ClientError {
    ClientError::Request {
        path: path.to_string(),
        why: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_daemon_that_never_answers_is_given_up_on() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        // Accepts connections (the kernel's backlog) but never reads or answers, as a
        // stopped daemon does.
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let client = Client::new(&socket).with_timeout(Duration::from_millis(200));
        let e = client
            .call(Method::GET, "/v1/version", None)
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
        assert!(e.to_string().contains("did not answer"), "{e}");
        let e = client
            .stream_lines("/v1/monitor", |_| {})
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::Timeout { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_path_that_is_no_uri_is_an_error() {
        let client = Client::new(Path::new("/nonexistent.sock"));
        let e = client.call(Method::GET, "/v1/x y", None).await.unwrap_err();
        assert!(matches!(e, ClientError::Request { .. }), "{e}");
    }
}
