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
    /// runc's --rootless (true, false or auto), which go-runc passes when a shim sets it:
    /// accepted; berth-runc goes by the privileges it really has.
    #[arg(long, value_name = "true|false|auto", value_parser = ["true", "false", "auto"])]
    rootless: Option<String>,
    /// runc's --criu PATH, which go-runc passes when a shim names a CRIU binary: accepted;
    /// checkpoint and restore are not supported yet.
    #[arg(long, value_name = "PATH", hide = true)]
    criu: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

/// runc takes `events --interval` as a Go duration ("5s", "500ms", "1m30s"; go-runc passes
/// `--interval=Ns`) where liboci-cli wants whole seconds: rewrite such values, rounding up.
fn normalize_interval(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = Vec::new();
    let mut value_next = false;
    for a in args {
        let fixed = match a.to_str() {
            Some(s) if value_next => go_duration_secs(s).map(|n| n.to_string()),
            Some(s) => s
                .strip_prefix("--interval=")
                .and_then(go_duration_secs)
                .map(|n| format!("--interval={n}")),
            None => None,
        };
        value_next = a == "--interval";
        out.push(fixed.map(Into::into).unwrap_or(a));
    }
    out
}

/// Whole seconds (at least 1) of a Go duration with units; None for a bare number or garbage.
fn go_duration_secs(s: &str) -> Option<u64> {
    let mut nanos = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .filter(|&n| n > 0)?;
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += n * scale;
        rest = &rest[unit_len..];
    }
    Some(((nanos / 1e9).ceil() as u64).max(1))
}

#[derive(Subcommand, Debug)]
enum Cmd {
    #[command(flatten)]
    Standard(Box<StandardCmd>),
    #[command(flatten)]
    Common(Box<CommonCmd>),
    // runc's names for these two: liboci-cli spells its own verb "checkpointt", and go-runc
    // (containerd's shims) calls "checkpoint" and "restore". Both answer one clear error.
    /// Checkpoint a running container (not supported yet)
    Checkpoint(Unsupported),
    /// Restore a checkpointed container (not supported yet)
    Restore(Unsupported),
}

/// The arguments of a verb berth-runc does not implement yet, taken as they come.
#[derive(clap::Args, Debug)]
struct Unsupported {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
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
    let cli = Cli::parse_from(normalize_interval(std::env::args_os()));
    berth_runtime::timing::mark("args parsed");
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
            log.error(&describe(&e));
            std::process::exit(1);
        }
    }
}

/// One line for an error and its causes, each cause only once (our errors' messages already name
/// their source, anyhow's context chains may not).
fn describe(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if !line.contains(&c) {
            line.push_str(": ");
            line.push_str(&c);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_become_whole_seconds() {
        assert_eq!(go_duration_secs("5s"), Some(5));
        assert_eq!(go_duration_secs("1m30s"), Some(90));
        assert_eq!(go_duration_secs("500ms"), Some(1));
        assert_eq!(go_duration_secs("1.5s"), Some(2));
        assert_eq!(go_duration_secs("5"), None);
        assert_eq!(go_duration_secs("5x"), None);
        assert_eq!(go_duration_secs(""), Some(1));
    }

    #[test]
    fn interval_values_are_rewritten_in_both_forms() {
        fn args<'a>(v: &'a [&'a str]) -> impl Iterator<Item = std::ffi::OsString> + 'a {
            v.iter().map(std::ffi::OsString::from)
        }
        assert_eq!(
            normalize_interval(args(&["r", "events", "--interval=5s", "id"])),
            args(&["r", "events", "--interval=5", "id"]).collect::<Vec<_>>()
        );
        assert_eq!(
            normalize_interval(args(&["r", "events", "--interval", "2m", "id"])),
            args(&["r", "events", "--interval", "120", "id"]).collect::<Vec<_>>()
        );
        assert_eq!(
            normalize_interval(args(&["r", "events", "--interval", "3", "id"])),
            args(&["r", "events", "--interval", "3", "id"]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn go_runc_global_flags_parse() {
        let cli = Cli::try_parse_from([
            "berth-runc",
            "--root",
            "/r",
            "--log",
            "/l",
            "--log-format",
            "json",
            "--rootless=false",
            "--criu",
            "/usr/sbin/criu",
            "--systemd-cgroup",
            "state",
            "x",
        ])
        .unwrap();
        assert_eq!(cli.rootless.as_deref(), Some("false"));
        assert!(Cli::try_parse_from(["berth-runc", "--rootless=maybe", "state", "x"]).is_err());
    }
}
