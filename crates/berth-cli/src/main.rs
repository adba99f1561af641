//! berth: the command-line client. Docker's verbs and flags, spoken over the public Engine API
//! to berthd's unix socket (or any Docker-compatible daemon's), never around it.
//!
//! Exit codes are docker's: 125 for flag errors and daemon errors of run/create, 126/127 when
//! the command could not be invoked/found, otherwise the container's own code where docker
//! passes it through (run, start -a, exec, attach) and 1 for a failed command.
//!
//! Start-up is on the path of every command, so it is kept short: clap builds only the verb that
//! argv names (`defer`), the runtime is tokio's current-thread one, and `run` overlaps its round
//! trips. Built like berth-shim (`RUSTFLAGS="-C target-feature=+crt-static -C
//! relocation-model=static"`, its own target dir) the binary skips the dynamic loader: `berth
//! --version` 0.22 ms instead of 0.48 ms here (2026-11-22), the same gain on every command.

mod autostart;
mod client;
mod cmd;
mod format;
mod progress;
mod stream;
mod template;

use clap::Parser;

use crate::client::Client;
use crate::cmd::{Cli, StatusError};

fn main() {
    let code = real_main();
    stream::restore_terminal();
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

fn real_main() -> i32 {
    // Like docker (and any Unix filter), die quietly when the reader of our output goes away
    // (`berth logs x | head`) instead of failing writes.
    // SAFETY: setting SIGPIPE's disposition to the default touches no Rust state; we have no
    // other threads yet and no handler is being replaced that Rust code relies on.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
                _ => 125,
            };
            let _ = e.print();
            return code;
        }
    };
    let host = client::resolve_host(cli.host.as_deref());
    let client = match Client::new(host) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth: {e:#}");
            return 125;
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("berth: start the async runtime: {e}");
            return 125;
        }
    };
    let res = rt.block_on(cmd::dispatch(cli.cmd, client));
    // A blocking read of stdin may still be pending: do not wait for it.
    rt.shutdown_background();
    match res {
        Ok(code) => code,
        Err(e) => report(&e),
    }
}

/// Prints an error as docker does and gives its exit code.
fn report(e: &anyhow::Error) -> i32 {
    stream::restore_terminal();
    if let Some(s) = e.downcast_ref::<StatusError>() {
        if !s.message.is_empty() {
            eprintln!("{}", s.message);
        }
        return s.code;
    }
    eprintln!("{e:#}");
    1
}
