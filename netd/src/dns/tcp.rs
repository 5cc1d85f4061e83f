//! DNS over TCP for a network's server. hickory answers each query, but netd accepts the
//! connections: hickory's own listener takes every connection it is offered, so a client
//! could hold thousands of idle ones. A network's server holds [`MAX_TCP_CONNECTIONS`] at
//! most; one more is closed at once, and the ones it has keep answering.

use std::{net::SocketAddr, sync::Arc};

use hickory_server::{
    net::{runtime::TokioTime, xfer::Protocol, NetError},
    proto::{rr::Record, serialize::binary::BinEncoder},
    server::{Request, RequestHandler, ResponseHandler, ResponseInfo},
    zone_handler::MessageResponse,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{tcp::OwnedWriteHalf, TcpListener, TcpStream},
    sync::{Mutex, OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
    time::timeout,
};

use super::server::{Handler, TCP_TIMEOUT};

/// TCP connections a network's server holds at once. DNS clients fall back to TCP only for
/// truncated answers, one query each: a few dozen is plenty for a host's containers.
pub const MAX_TCP_CONNECTIONS: usize = 64;

/// Accepts connections on `listener` until the task is dropped (with the server): the
/// connections' tasks live in its own set and end with it.
pub async fn serve(listener: TcpListener, handler: Handler) {
    let handler = Arc::new(handler);
    let turns = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, src)) = listener.accept().await else {
            // Out of descriptors, say: try again rather than stop serving.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        // Reap finished connections so that the set does not grow with them.
        while connections.try_join_next().is_some() {}
        let Ok(turn) = Arc::clone(&turns).try_acquire_owned() else {
            handler
                .counters
                .tcp_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            drop(stream);
            continue;
        };
        connections.spawn(connection(stream, src, Arc::clone(&handler), turn));
    }
}

/// Queries of one connection, one at a time as hickory serves them, until the client is
/// silent for [`TCP_TIMEOUT`] or sends something that is not DNS.
async fn connection(
    stream: TcpStream,
    src: SocketAddr,
    handler: Arc<Handler>,
    _turn: OwnedSemaphorePermit,
) {
    let (mut reader, writer) = stream.into_split();
    let responder = Responder {
        writer: Arc::new(Mutex::new(writer)),
    };
    loop {
        let mut len = [0u8; 2];
        if !matches!(
            timeout(TCP_TIMEOUT, reader.read_exact(&mut len)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let mut message = vec![0; usize::from(u16::from_be_bytes(len))];
        if !matches!(
            timeout(TCP_TIMEOUT, reader.read_exact(&mut message)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let Ok(request) = Request::from_bytes(message, src, Protocol::Tcp) else {
            return;
        };
        handler
            .handle_request::<_, TokioTime>(&request, responder.clone())
            .await;
    }
}

/// Writes a response, length first (RFC 1035 4.2.2), on its connection.
#[derive(Clone)]
struct Responder {
    writer: Arc<Mutex<OwnedWriteHalf>>,
}

#[async_trait::async_trait]
impl ResponseHandler for Responder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(u16::MAX);
        let info = response.destructive_emit(&mut encoder)?;
        let len = u16::try_from(bytes.len()).map_err(|_| NetError::from("response too long"))?;
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&bytes);
        let mut writer = self.writer.lock().await;
        timeout(TCP_TIMEOUT, writer.write_all(&framed))
            .await
            .map_err(|_| NetError::from("client stopped reading"))??;
        Ok(info)
    }
}
