//! Forwarding names that are not containers' to the host's resolvers: the query as the client
//! sent it, over UDP, and again over TCP when the answer was truncated.

use std::{net::SocketAddr, time::Duration};

use hickory_server::proto::op::Message;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
    time::timeout,
};

/// Per upstream, per attempt.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The first answer of `upstreams`, tried in order; `None` when none answered.
pub async fn query(upstreams: &[SocketAddr], raw: &[u8]) -> Option<Message> {
    for upstream in upstreams {
        match timeout(UPSTREAM_TIMEOUT, over_udp(*upstream, raw)).await {
            Ok(Ok(m)) if m.metadata.truncation => {
                if let Ok(Ok(m)) = timeout(UPSTREAM_TIMEOUT, over_tcp(*upstream, raw)).await {
                    return Some(m);
                }
                return Some(m);
            }
            Ok(Ok(m)) => return Some(m),
            Ok(Err(e)) => log::debug!("DNS upstream {upstream}: {e}"),
            Err(_) => log::debug!("DNS upstream {upstream}: no answer in {UPSTREAM_TIMEOUT:?}"),
        }
    }
    None
}

async fn over_udp(upstream: SocketAddr, raw: &[u8]) -> std::io::Result<Message> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        "0.0.0.0:0".parse().expect("valid")
    } else {
        "[::]:0".parse().expect("valid")
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(upstream).await?;
    socket.send(raw).await?;
    // The largest answer over UDP that EDNS lets a client ask for; larger ones come truncated.
    let mut buf = vec![0u8; 65_535];
    let id = raw.get(..2);
    loop {
        let n = socket.recv(&mut buf).await?;
        // Only the answer to this query (a connected socket filters the source already).
        if buf.get(..2) == id {
            return decode(&buf[..n]);
        }
    }
}

async fn over_tcp(upstream: SocketAddr, raw: &[u8]) -> std::io::Result<Message> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(raw.len()).map_err(std::io::Error::other)?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(raw).await?;
    let len = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    decode(&buf)
}

fn decode(bytes: &[u8]) -> std::io::Result<Message> {
    Message::from_vec(bytes).map_err(std::io::Error::other)
}
