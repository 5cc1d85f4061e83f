//! `netd daemon`: enter the chosen namespace, load the datapath, reconcile, serve the API.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{bail, Context, Result};

mod cluster;
mod lock;
mod upkeep;

pub use cluster::ClusterOptions;

use crate::{
    api::{
        listen::{self, Limits, SHUTDOWN_GRACE},
        server,
    },
    datapath::Datapath,
    dns::Dns,
    engine::{linux::LinuxHost, Engine},
    link::Netlink,
    netns,
    reserved::ReservedPorts,
    shared::Daemon,
    state::Store,
};

/// What the daemon is started with (the CLI's `netd daemon` flags, parsed).
#[derive(Clone, Debug)]
pub struct Options {
    pub state_dir: PathBuf,
    pub bpffs: PathBuf,
    /// An existing network namespace to live in (/run/netns/NAME, or a path).
    pub netns: Option<String>,
    pub uplinks: Vec<String>,
    /// Resolvers of the embedded DNS; empty for /etc/resolv.conf's.
    pub dns_upstreams: Vec<std::net::SocketAddr>,
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Serve Docker's network and IPAM plugin protocol under this plugin name.
    pub docker_plugin: Option<String>,
    /// Entries of the connection-tracking table.
    pub conntrack_max: u32,
    /// Join the cluster of this store; none: this host on its own.
    pub cluster: Option<ClusterOptions>,
}

/// Runs the daemon until SIGINT or SIGTERM. Enters `--netns` before any runtime thread
/// exists, so that every thread lives in it (a namespace is per thread).
pub fn run(args: Options, socket: PathBuf) -> Result<()> {
    // Everything the daemon writes (state, container logs, which may hold secrets) is its
    // own: 0600 files in 0700 dirs.
    // SAFETY: umask(2) has no preconditions.
    unsafe { libc::umask(0o077) };
    raise_open_files_limit();
    if let Some(name) = &args.docker_plugin {
        check_plugin_name(name)?;
    }
    // Taken before entering --netns: the namespace netd was started in is the host's (or
    // the caller's), and no container may be given it by any path.
    let mut protected = netns::Protected::at_start()
        .context("reading the identity of the network namespace netd was started in")?;
    let netns_name = match &args.netns {
        Some(name) => {
            let path = if name.contains('/') {
                PathBuf::from(name)
            } else {
                Path::new("/run/netns").join(name)
            };
            netns::enter(&path)
                .with_context(|| format!("entering network namespace {}", path.display()))?;
            path
        }
        // The host's (or the caller's): as the kernel names it, net:[INODE].
        None => std::fs::read_link("/proc/self/ns/net")
            .unwrap_or_else(|_| PathBuf::from("/proc/self/ns/net")),
    };
    protected
        .add_own()
        .context("reading the identity of the daemon's network namespace")?;
    // Before anything is read or changed: a second daemon on a shared path stops here.
    let _locks = lock::take(&lock::Paths {
        netns: Path::new("/proc/self/ns/net"),
        netns_name: &netns_name,
        state_dir: &args.state_dir,
        bpffs: &args.bpffs,
        socket: &socket,
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let served = runtime.block_on(serve(args, socket, protected));
    // Whatever still runs (a blocking read of a hung file system, say) must not hold the
    // exit: SIGTERM ends the daemon in bounded time.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}

async fn serve(args: Options, socket: PathBuf, protected: netns::Protected) -> Result<()> {
    let started = std::time::Instant::now();
    let store = Store::open(&args.state_dir).context("opening the state dir")?;
    let datapath =
        Datapath::load_sized(&args.bpffs, args.conntrack_max).context("loading the datapath")?;
    let loaded = started.elapsed();
    let programs = if datapath.programs_reused() {
        "pinned programs of this build"
    } else {
        "programs through the verifier"
    };
    let nl = Netlink::current().context("opening rtnetlink")?;
    let upstreams = if args.dns_upstreams.is_empty() {
        let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        crate::dns::resolv_conf_servers(&conf)
    } else {
        args.dns_upstreams.clone()
    };
    log::info!("embedded DNS forwards to {upstreams:?}");
    let reserved = ReservedPorts::open(&args.state_dir.join("reserved-ports"));
    let host = Arc::new(LinuxHost::new(
        nl,
        datapath,
        Arc::new(Dns::new(upstreams)),
        reserved,
    ));
    enable_forwarding()?;
    let uplinks = host
        .attach_uplinks(&args.uplinks)
        .await
        .context("attaching uplinks")?;
    match uplinks.as_slice() {
        [] => log::info!("no uplink: no default route and no --uplink"),
        names => log::info!("uplinks: {}", names.join(", ")),
    }
    let daemon_netns = PathBuf::from(format!("/proc/{}/ns/net", std::process::id()));
    let before_reconcile = started.elapsed();
    let (engine, alive) = Engine::start(host.interfaces(), store, daemon_netns, protected)
        .await
        .context("reconciling state")?;
    let reconciled = started.elapsed();
    host.refresh_local_addrs()
        .await
        .context("reading host addresses")?;
    host.attach_socket_hooks()
        .context("attaching socket hooks")?;
    host.finish_map_moves()
        .context("moving the entries of older pinned maps")?;
    let monitor = match host.take_events() {
        Some(events) => match crate::monitor::Monitor::start(events, host.clone()) {
            Ok(m) => Some(m),
            Err(e) => {
                log::warn!("netd monitor is unavailable: {e}");
                None
            }
        },
        None => None,
    };
    let changes = match crate::link::events::watch_changes() {
        Ok(changes) => Some(changes),
        Err(e) => {
            log::warn!("repairs only look periodically: {e}");
            None
        }
    };
    let cluster = match &args.cluster {
        Some(options) => Some(cluster::join(options, &host, &args.state_dir).await?),
        None => None,
    };
    tokio::spawn(upkeep::maintain(host, changes.clone()));
    let daemon = Daemon::new(engine, monitor, cluster);
    tokio::spawn(upkeep::repair(Arc::clone(&daemon), changes));
    for (id, process) in alive {
        daemon.watch_adopted(id, process);
    }
    let mut metrics_server = None;
    let metrics = match args.metrics_addr {
        Some(addr) => Some(
            crate::metrics::bind(addr, Arc::clone(&daemon))
                .await
                .with_context(|| {
                    format!("serving metrics on {addr} (--metrics-addr; `none` turns them off)")
                })?,
        ),
        None => None,
    };
    let listener = bind(&socket, "--socket").await?;
    log::info!(
        "serving {} ms after start: datapath loaded at {} ms ({programs}), reconcile from {} to {} ms",
        started.elapsed().as_millis(),
        loaded.as_millis(),
        before_reconcile.as_millis(),
        reconciled.as_millis()
    );
    // Every listener stops on SIGTERM or SIGINT, each giving its connections a bounded grace.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|s| *s).await;
        }
    };
    let plugin = match &args.docker_plugin {
        Some(name) => match serve_docker_plugin(name, Arc::clone(&daemon), stopped()).await {
            Ok(served) => Some(served),
            Err(e) => {
                let _ = std::fs::remove_file(&socket);
                return Err(e);
            }
        },
        None => None,
    };
    if let (Some(addr), Some(metrics)) = (args.metrics_addr, metrics) {
        metrics_server = Some(tokio::spawn(crate::metrics::serve(metrics, stopped())));
        log::info!("metrics on http://{addr}/metrics");
    }
    log::info!("netd listening on {}", socket.display());
    let api = tokio::spawn(listen::serve(
        listener,
        server::router(daemon),
        ("the API", Limits::SOCKET, crate::api::reject),
        stopped(),
    ));
    shutdown().await;
    log::info!("stopping: connections under way get {SHUTDOWN_GRACE:?}");
    let _ = stop.send(true);
    let _ = api.await;
    if let Some(server) = metrics_server {
        let _ = server.await;
    }
    let _ = std::fs::remove_file(&socket);
    if let Some((path, server)) = plugin {
        let _ = server.await;
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Lifts the soft limit on open files to the hard one, as container runtimes do: every
/// container's DNS server holds sockets, and each listener holds its clients up to its
/// bound. Failing to lift it is no error.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                log::warn!(
                    "cannot raise the open files limit: {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// A plugin name Docker can look up, and a file name under /run/docker/plugins.
fn check_plugin_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && !name.starts_with('.');
    if !valid {
        bail!("--docker-plugin {name:?}: a plugin name is 1-64 letters, digits, '-', '_' or '.'");
    }
    Ok(())
}

/// Serves Docker's plugin protocol on /run/docker/plugins/NAME.sock, where Docker finds
/// plugins by name, until `stopped`; returns the socket's path and the server's task.
async fn serve_docker_plugin(
    name: &str,
    daemon: crate::shared::Shared,
    stopped: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(PathBuf, tokio::task::JoinHandle<()>)> {
    let path = Path::new(crate::docker::PLUGIN_DIR).join(format!("{name}.sock"));
    let listener = bind(&path, "--docker-plugin").await?;
    log::info!(
        "Docker network and IPAM plugin {name} on {}",
        path.display()
    );
    let server = tokio::spawn(listen::serve(
        listener,
        crate::docker::router(daemon),
        ("the Docker plugin", Limits::SOCKET, crate::docker::reject),
        stopped,
    ));
    Ok((path, server))
}

/// Published ports and masquerade forward between uplinks and bridges, as with Docker.
fn enable_forwarding() -> Result<()> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(PATH).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    log::info!("enabling IPv4 forwarding (net.ipv4.ip_forward=1)");
    std::fs::write(PATH, "1").with_context(|| format!("writing {PATH}"))
}

/// Binds a socket with mode 0600, replacing a stale socket but never a live daemon's; `flag`
/// is the option that names it.
async fn bind(socket: &Path, flag: &str) -> Result<tokio::net::UnixListener> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if socket.exists() {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            bail!(
                "another daemon is listening on {}; pick another {flag}",
                socket.display()
            );
        }
        std::fs::remove_file(socket)
            .with_context(|| format!("removing stale socket {}", socket.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(socket)
        .with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", socket.display()))?;
    Ok(listener)
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    log::info!("shutting down; containers, links and datapath stay in place");
}
