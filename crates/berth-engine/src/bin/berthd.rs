//! berthd: the berth daemon. Serves the Docker Engine API on a unix socket.
//!
//! Usage: berthd [-H unix:///run/berth/berth.sock] [--data-root /var/lib/berth]

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use berth_engine::api::{router, Daemon};

struct Args {
    socket: PathBuf,
    data_root: PathBuf,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        socket: PathBuf::from("/run/berth/berth.sock"),
        data_root: PathBuf::from("/var/lib/berth"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let (key, inline) = match k.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (k.clone(), None),
        };
        let mut val = || -> Result<String> {
            inline
                .clone()
                .or_else(|| it.next())
                .with_context(|| format!("{key} needs a value"))
        };
        match key.as_str() {
            "-H" | "--host" => {
                let v = val()?;
                let Some(p) = v.strip_prefix("unix://") else {
                    bail!("-H {v:?}: only unix://PATH sockets are supported (no TCP unless asked, and that is not built yet)");
                };
                a.socket = PathBuf::from(p);
            }
            "--data-root" => a.data_root = PathBuf::from(val()?),
            "--version" | "-v" => {
                println!("berthd {}", berth_engine::VERSION);
                std::process::exit(0);
            }
            other => {
                bail!("unknown argument {other:?} (berthd [-H unix://PATH] [--data-root DIR])")
            }
        }
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("berthd: {e:#}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn run() -> Result<()> {
    let args = parse_args()?;
    std::fs::create_dir_all(&args.data_root)
        .with_context(|| format!("create data root {}", args.data_root.display()))?;
    let images = berth_image::image::ImageStore::open(&args.data_root)
        .with_context(|| format!("open the image store in {}", args.data_root.display()))?;
    if let Some(dir) = args.socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    }
    // A socket file left by a daemon that died: nobody answers on it, so it can go.
    if args.socket.exists() {
        if std::os::unix::net::UnixStream::connect(&args.socket).is_ok() {
            bail!(
                "{} is in use: another daemon is running",
                args.socket.display()
            );
        }
        std::fs::remove_file(&args.socket)
            .with_context(|| format!("remove stale {}", args.socket.display()))?;
    }
    let listener = tokio::net::UnixListener::bind(&args.socket)
        .with_context(|| format!("listen on {}", args.socket.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&args.socket, std::fs::Permissions::from_mode(0o660))?;
    let daemon = Arc::new(Daemon {
        data_root: args.data_root.clone(),
        images,
    });
    axum::serve(listener, router(daemon))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serve the API")?;
    let _ = std::fs::remove_file(&args.socket);
    Ok(())
}
