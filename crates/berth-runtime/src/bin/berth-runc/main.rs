//! berth-runc: berth's OCI runtime behind runc's command-line contract, so that containerd's
//! io.containerd.runc.v2 shim (and so Kubernetes) can drive it as it drives runc.
//!
//! One verb per file; this file parses the command line, protects the binary (CVE-2019-5736),
//! sets up logging the way containerd reads it, and maps errors to one line and exit status 1.

mod clone_binary;
mod console;
mod verbs;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use liboci_cli::{CommonCmd, GlobalOpts, StandardCmd};

#[derive(Parser, Debug)]
#[command(
    name = "berth-runc",
    version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: 1.2.0"),
    about = "berth's OCI runtime, with runc's command line"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    #[command(flatten)]
    Standard(Box<StandardCmd>),
    #[command(flatten)]
    Common(Box<CommonCmd>),
}

/// Where errors go: stderr always, and the --log file (JSON lines with --log-format json).
struct Log {
    path: Option<PathBuf>,
    json: bool,
}

impl Log {
    fn error(&self, msg: &str) {
        eprintln!("berth-runc: {msg}");
        let Some(path) = &self.path else { return };
        let line = if self.json {
            serde_json::json!({
                "level": "error",
                "msg": msg,
                "time": berth_runtime::container::rfc3339_now(),
            })
            .to_string()
        } else {
            format!(
                "time=\"{}\" level=error msg={msg:?}",
                berth_runtime::container::rfc3339_now()
            )
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

fn main() {
    berth_runtime::timing::init_from_env();
    berth_runtime::timing::mark("main");
    // Protect the binary before anything else (and before parsing the command line, which would
    // otherwise be done twice): any argument naming a verb that enters a container re-execs.
    // A container id that happens to be "run" costs a needless re-exec, nothing more.
    if std::env::args()
        .skip(1)
        .any(|a| a == "create" || a == "run" || a == "exec")
    {
        if let Err(e) = clone_binary::ensure_sealed() {
            eprintln!("berth-runc: cannot protect the runtime binary: {e}");
            std::process::exit(1);
        }
    }
    let cli = Cli::parse();
    let log = Log {
        path: cli.global.log.clone(),
        json: cli.global.log_format.as_deref() == Some("json"),
    };
    let root = cli
        .global
        .root
        .clone()
        .unwrap_or_else(|| PathBuf::from("/run/berth-runc"));
    let ctx = verbs::Ctx {
        root,
        systemd_cgroup: cli.global.systemd_cgroup,
    };
    match verbs::dispatch(&ctx, cli.cmd) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            log.error(&format!("{e:#}"));
            std::process::exit(1);
        }
    }
}
