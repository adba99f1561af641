//! berthd: the berth daemon. Serves the Docker Engine API on a unix socket.
//!
//! Usage: berthd [-H unix:///run/berth/berth.sock] [--data-root /var/lib/berth] [--exec-root DIR]
//!               [--registry-mirror URL]... [--insecure-registry HOST[:PORT]]...

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use berth_engine::api::router;
use berth_engine::config::Config;
use berth_engine::daemon::Daemon;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "berthd",
    version,
    about = "the berth daemon: Docker's Engine API on a unix socket"
)]
struct Args {
    /// The socket to listen on (unix://PATH).
    #[arg(short = 'H', long = "host")]
    host: Option<String>,
    /// Where durable state lives.
    #[arg(long, default_value = "/var/lib/berth")]
    data_root: PathBuf,
    /// Where run state (shim sockets, runtime state) lives; default /run/berth for the default
    /// data root, else <data-root>/run.
    #[arg(long)]
    exec_root: Option<PathBuf>,
    /// A registry that serves docker.io images (tried before Docker Hub); repeatable.
    #[arg(long = "registry-mirror")]
    registry_mirrors: Vec<String>,
    /// A registry spoken to over plain HTTP; repeatable.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// The default bridge's interface name (Docker's -b); default berth0 for the default data
    /// root, else bt<hash of the data root>.
    #[arg(short = 'b', long = "bridge")]
    bridge: Option<String>,
    /// The default bridge's address with prefix, e.g. 172.30.0.1/16.
    #[arg(long = "bip")]
    bip: Option<String>,
    /// Upstream DNS server for the embedded DNS of user networks; repeatable.
    #[arg(long = "dns")]
    dns: Vec<std::net::IpAddr>,
    /// Keep a pre-started container ready for a `run --rm` that comes again (`--prestart=false`
    /// turns it off).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    prestart: bool,
    /// Accepted for Docker compatibility; berth logs errors to stderr.
    #[arg(short = 'D', long)]
    debug: bool,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("berthd: {e:#}");
        std::process::exit(1);
    }
}

fn config(args: Args) -> Result<Config> {
    let mut c = Config::for_data_root(&args.data_root);
    if let Some(e) = args.exec_root {
        c.exec_root = e;
    }
    c.socket = PathBuf::from("/run/berth/berth.sock");
    if let Some(h) = args.host {
        let Some(p) = h.strip_prefix("unix://") else {
            bail!("-H {h:?}: only unix://PATH sockets are supported (no TCP unless asked, and that is not built yet)");
        };
        c.socket = PathBuf::from(p);
    }
    c.registry_mirrors = args.registry_mirrors;
    c.insecure_registries = args.insecure_registries;
    if let Some(b) = args.bridge {
        if b.is_empty()
            || b.len() > 15
            || !b
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
        {
            bail!("--bridge {b:?}: an interface name of 1-15 letters, digits, '_', '.', '-'");
        }
        c.bridge = b;
    }
    c.bip = args.bip;
    c.dns = args.dns;
    c.prestart = args.prestart;
    Ok(c)
}

#[tokio::main]
async fn run() -> Result<()> {
    let config = config(Args::parse())?;
    berth_runtime::timing::init_from_env();
    let socket = config.socket.clone();
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    // A socket file left by a daemon that died: nobody answers on it, so it can go.
    if socket.exists() {
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            bail!("{} is in use: another daemon is running", socket.display());
        }
        std::fs::remove_file(&socket)
            .with_context(|| format!("remove stale {}", socket.display()))?;
    }
    std::fs::create_dir_all(&config.exec_root)
        .with_context(|| format!("create {}", config.exec_root.display()))?;
    berth_engine::daemon::run_state_in_memory(&config.exec_root);
    let daemon = Daemon::open(config)?;
    daemon.restore().await;
    let listener = tokio::net::UnixListener::bind(&socket)
        .with_context(|| format!("listen on {}", socket.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660))?;
    axum::serve(listener, router(daemon.clone()))
        .with_graceful_shutdown(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            }
        })
        .await
        .context("serve the API")?;
    let _ = std::fs::remove_file(&socket);
    daemon.discard_all_warm();
    // Removed containers' mounts and files still queued go before we do.
    if !daemon
        .containers
        .janitor
        .drain(std::time::Duration::from_secs(20))
    {
        tracing::warn!(
            "teardown of removed containers still running at exit: the next start finishes it"
        );
    }
    Ok(())
}
