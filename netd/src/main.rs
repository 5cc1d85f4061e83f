use clap::Parser;
use netd::cli::{self, Cli, Command};

/// mimalloc: a scrape of tens of thousands of series allocates and frees hundreds of thousands
/// of small strings, which glibc's allocator frees several times slower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    if let Command::Daemon(args) = &cli.command {
        let started = netd::daemon::Options::try_from(args)
            .and_then(|options| netd::daemon::run(options, cli.socket.clone()));
        if let Err(e) = started {
            eprintln!("Error: {e:#}");
            std::process::exit(1);
        }
        return;
    }
    // A client ends quietly when its reader goes away (`netd ps | head -1`), as Unix tools do,
    // instead of panicking on EPIPE. Not the daemon: a client that hangs up must not kill it.
    // SAFETY: signal(2) before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a single-threaded runtime starts");
    match runtime.block_on(cli::run(cli)) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(1);
        }
    }
}
