//! The benchmark's own traffic: a server for the container and clients for the external
//! namespace, in plain std Rust so that the client is never the bottleneck a script would be.
//! Every loop is bounded by its duration.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{Context, Result};

/// When a client counts. Clients measured side by side share a start time: each starts its
/// load then, counts only after a warm-up and keeps the load on a moment after its window,
/// so that every window sees all of them running.
pub struct Window {
    begin: Instant,
    end: Instant,
    stop: Instant,
}

impl Window {
    const WARM_UP: Duration = Duration::from_millis(300);
    const TAIL: Duration = Duration::from_millis(300);

    /// From now on, for `secs`.
    pub fn now(secs: u64) -> Self {
        let begin = Instant::now();
        let end = begin + Duration::from_secs(secs);
        Self {
            begin,
            end,
            stop: end,
        }
    }

    /// Load from `unix_ms` (milliseconds since the Unix epoch), counted for `secs` after the
    /// warm-up. Waits for the start.
    pub fn at(unix_ms: u64, secs: u64) -> Result<Self> {
        let start = UNIX_EPOCH + Duration::from_millis(unix_ms);
        let wait = start.duration_since(SystemTime::now()).with_context(|| {
            format!("started after the shared start time {unix_ms}: too little lead")
        })?;
        std::thread::sleep(wait);
        let begin = Instant::now() + Self::WARM_UP;
        let end = begin + Duration::from_secs(secs);
        Ok(Self {
            begin,
            end,
            stop: end + Self::TAIL,
        })
    }

    /// Repeats `op` until the window closes: what the calls that ended inside it returned,
    /// per second.
    fn rate(&self, mut op: impl FnMut() -> Result<u64>) -> Result<f64> {
        let mut counted = 0u64;
        loop {
            let n = op()?;
            let now = Instant::now();
            if now >= self.stop {
                break;
            }
            if now >= self.begin && now < self.end {
                counted += n;
            }
        }
        Ok(counted as f64 / (self.end - self.begin).as_secs_f64())
    }
}

/// Serves 1-byte request/response on TCP (one thread per connection) and UDP, for `secs`,
/// and with `sink` a TCP port that reads and discards, for [`stream`].
pub fn serve(tcp: u16, udp: u16, secs: u64, sink: Option<u16>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    if let Some(port) = sink {
        let listener = TcpListener::bind(("0.0.0.0", port)).context("bind sink")?;
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; STREAM_WRITE];
                    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
                });
            }
        });
    }
    let listener = TcpListener::bind(("0.0.0.0", tcp)).context("bind tcp")?;
    let socket = UdpSocket::bind(("0.0.0.0", udp)).context("bind udp")?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .ok();
        while Instant::now() < deadline {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let _ = socket.send_to(&buf[..n], from);
            }
        }
    });
    listener.set_nonblocking(false)?;
    for stream in listener.incoming() {
        if Instant::now() > deadline {
            break;
        }
        let Ok(mut s) = stream else { continue };
        std::thread::spawn(move || {
            let _ = s.set_nodelay(true);
            let mut b = [0u8; 1];
            while matches!(s.read(&mut b), Ok(1)) {
                if s.write_all(&b).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}

/// One byte there and back.
fn one_exchange(s: &mut TcpStream) -> Result<()> {
    let mut b = [7u8; 1];
    s.write_all(&b)?;
    s.read_exact(&mut b).context("no answer")?;
    Ok(())
}

/// A lost answer fails the run instead of hanging it.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Closes with a reset instead of a FIN, so that the client keeps no TIME_WAIT socket: tens
/// of thousands of those would make the client measure its own port search, not the path.
pub(super) fn close_with_reset(s: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads a valid linger struct of the size given.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            std::ptr::from_ref(&linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// New TCP connections per second: connect, one request, close.
pub fn crr(to: SocketAddr, window: &Window) -> Result<f64> {
    window.rate(|| {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).context("connect")?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
        one_exchange(&mut s)?;
        close_with_reset(s);
        Ok(1)
    })
}

/// Bytes of one write: what iperf3 writes by default.
const STREAM_WRITE: usize = 128 * 1024;

/// Throughput of one TCP connection to a sink, Gbit/s: what the sender got written.
pub fn stream(to: SocketAddr, window: &Window) -> Result<f64> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).context("connect")?;
    let buf = vec![0x5au8; STREAM_WRITE];
    let bytes = window.rate(|| {
        s.write_all(&buf).context("send")?;
        Ok(STREAM_WRITE as u64)
    })?;
    Ok(bytes * 8.0 / 1e9)
}

/// Payload of one flood datagram: with the headers, a 106-byte frame.
const FLOOD_PAYLOAD: usize = 64;
/// Datagrams per sendmmsg call.
const FLOOD_BATCH: usize = 64;

/// Small UDP datagrams to `to` as fast as sendmmsg takes them, one flow: datagrams sent per
/// second. The receiver's side counts what arrived.
pub fn udp_flood(to: SocketAddr, window: &Window) -> Result<f64> {
    use std::os::fd::AsRawFd;
    let s = UdpSocket::bind("0.0.0.0:0")?;
    s.connect(to)?;
    let payload = [0x5au8; FLOOD_PAYLOAD];
    let mut iov = [libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    }];
    // SAFETY: an all-zero mmsghdr is valid; each then points at the one iovec above.
    let mut msgs: Vec<libc::mmsghdr> = (0..FLOOD_BATCH)
        .map(|_| {
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = iov.as_mut_ptr();
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    window.rate(|| {
        // SAFETY: msgs holds FLOOD_BATCH valid headers on a connected socket we own.
        let sent = unsafe {
            libc::sendmmsg(
                s.as_raw_fd(),
                msgs.as_mut_ptr(),
                FLOOD_BATCH as libc::c_uint,
                0,
            )
        };
        // A full queue (ENOBUFS) is part of flooding: nothing sent this time.
        Ok(sent.max(0) as u64)
    })
}

/// Request/response on one connection: (rate per second, p50 µs, p99 µs).
pub fn rr(to: SocketAddr, secs: u64) -> Result<(f64, f64, f64)> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).context("connect")?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(ANSWER_TIMEOUT))?;
    let mut lat = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        let t = Instant::now();
        one_exchange(&mut s)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let rate = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize];
    Ok((rate, pct(0.5), pct(0.99)))
}

/// Request/response on one connection for `secs`: (exchanges, longest time between two
/// answers in ms). A restart of the daemon under it shows as the longest gap.
pub fn gaps(to: SocketAddr, secs: u64) -> Result<(usize, f64)> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2)).context("connect")?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let start = Instant::now();
    let mut last = start;
    let mut longest = Duration::ZERO;
    let mut count = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        one_exchange(&mut s)?;
        let now = Instant::now();
        longest = longest.max(now - last);
        last = now;
        count += 1;
    }
    Ok((count, longest.as_secs_f64() * 1e3))
}

/// New UDP flows per second: a new socket (new source port) per request/response.
pub fn udp_flows(to: SocketAddr, secs: u64) -> Result<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    let mut buf = [0u8; 8];
    while start.elapsed() < Duration::from_secs(secs) {
        let s = UdpSocket::bind("0.0.0.0:0")?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        s.send_to(&[1], to)?;
        if s.recv_from(&mut buf).is_ok() {
            n += 1;
        }
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// DNS A queries for `name` per second, answered by `server` (UDP), from `threads` closed-loop
/// clients: each sends a query and waits for its answer before the next.
pub fn dns_qps(server: SocketAddr, name: &str, threads: usize, secs: u64) -> Result<f64> {
    let query = dns_query(name);
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let query = query.clone();
            std::thread::spawn(move || -> Result<u64> {
                let socket = UdpSocket::bind(("0.0.0.0", 0))?;
                socket.connect(server)?;
                socket.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut buf = [0u8; 512];
                let mut answered = 0u64;
                let mut id = 0u16;
                while start.elapsed() < Duration::from_secs(secs) {
                    id = id.wrapping_add(1);
                    let mut q = query.clone();
                    q[..2].copy_from_slice(&id.to_be_bytes());
                    socket.send(&q)?;
                    let n = socket.recv(&mut buf).context("no DNS answer")?;
                    // Same id, a response, no error, at least one answer.
                    let ok = n > 12
                        && buf[..2] == id.to_be_bytes()
                        && buf[2] & 0x80 != 0
                        && buf[3] & 0x0f == 0
                        && u16::from_be_bytes([buf[6], buf[7]]) > 0;
                    anyhow::ensure!(ok, "bad DNS answer for the benchmark's query");
                    answered += 1;
                }
                Ok(answered)
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w
            .join()
            .map_err(|_| anyhow::anyhow!("DNS client panicked"))??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// A recursion-desired query for the A record of `name` (id 0, set per query).
fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}
