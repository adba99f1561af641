//! `berth run`: docker's sequence — create (pulling if missing), attach (hijacked) and wait
//! (`next-exit`, or `removed` with --rm) before start, then start, the TTY sized and in raw mode,
//! and exit with the container's status code. `-d` prints the full id instead.

use anyhow::Result;
use berth_types::api::ContainerWaitResponse;
use clap::Args;
use hyper::Method;

use crate::client::{decode, Client};
use crate::cmd::create::{create_container, ContainerOpts};
use crate::cmd::{run_error, status};
use crate::stream;

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[command(flatten)]
    pub opts: ContainerOpts,
}

/// The wait condition docker uses for a foreground run.
pub fn wait_condition(auto_remove: bool) -> &'static str {
    if auto_remove {
        "removed"
    } else {
        "next-exit"
    }
}

pub async fn run(client: &mut Client, args: RunArgs) -> Result<i32> {
    let opts = &args.opts;
    if args.detach && opts.rm && opts.restart.as_deref().is_some_and(|r| r != "no") {
        return Err(status(
            125,
            "berth: Conflicting options: --restart and --rm\n\nRun 'berth run --help' for more information",
        ));
    }
    let keys = stream::detach_keys(args.detach_keys.as_deref())?;
    let attach = !args.detach;
    let stdin = opts.interactive;
    let tty = opts.tty;
    if attach && tty && stdin && !stream::stdin_is_tty() {
        // docker refuses this too: a raw terminal is needed for -it.
        return Err(status(1, "the input device is not a TTY"));
    }
    let id = create_container(client, opts, attach)
        .await
        .map_err(|e| run_error("run", e))?;

    if args.detach {
        client
            .call(Method::POST, &format!("/containers/{id}/start"))
            .await
            .map_err(|e| run_error("run", e))?;
        println!("{id}");
        return Ok(0);
    }

    let attach_path = format!(
        "/containers/{id}/attach?stream=1&stdout=1&stderr=1{}{}",
        if stdin { "&stdin=1" } else { "" },
        detach_query(args.detach_keys.as_deref())
    );
    let hijacked = client
        .hijack(Method::POST, &attach_path, None)
        .await
        .map_err(|e| run_error("run", e))?;
    let wait_resp = client
        .send_own(
            Method::POST,
            &format!(
                "/containers/{id}/wait?condition={}",
                wait_condition(opts.rm)
            ),
            None,
        )
        .await
        .map_err(|e| run_error("run", e))?;
    let waiter = tokio::spawn(async move { decode::<ContainerWaitResponse>(wait_resp).await });

    if let Err(e) = client
        .call(Method::POST, &format!("/containers/{id}/start"))
        .await
    {
        if opts.rm {
            // As docker does: the daemon removes an --rm container whose start failed; wait
            // for that (bounded) so the name is free when we return.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), waiter).await;
        } else {
            waiter.abort();
        }
        return Err(run_error("run", e));
    }

    let mut tasks = Vec::new();
    if tty {
        if stdin {
            stream::set_raw_terminal().ok();
        }
        let mut c2 = Client::new(client.host().to_string())?;
        // Reuse the agreed version on the resize connection.
        c2.negotiate_to(client.api_version());
        tasks.push(tokio::spawn(stream::follow_resizes(
            c2,
            format!("/containers/{id}/resize"),
        )));
    } else if args.sig_proxy {
        let mut c2 = Client::new(client.host().to_string())?;
        c2.negotiate_to(client.api_version());
        tasks.push(tokio::spawn(proxy_signals(c2, id.clone())));
    }

    let out = stream::pump(hijacked, tty, stdin, Some(keys)).await;
    stream::restore_terminal();
    if matches!(out, Ok(stream::Pumped::Detached)) {
        // As docker: detaching leaves the container running and exits 0.
        waiter.abort();
        for t in tasks {
            t.abort();
        }
        return Ok(0);
    }
    let code = match waiter.await {
        Ok(Ok(w)) => {
            if let Some(msg) = w.error.and_then(|e| e.message).filter(|m| !m.is_empty()) {
                eprintln!("berth: {msg}");
                return Ok(125);
            }
            w.status_code as i32
        }
        Ok(Err(e)) => return Err(run_error("run", e)),
        Err(_) => 125,
    };
    for t in tasks {
        t.abort();
    }
    out?;
    Ok(code)
}

/// The `detachKeys` query parameter for an attach, when the user chose keys.
pub fn detach_query(spec: Option<&str>) -> String {
    match spec {
        Some(k) if !k.is_empty() => format!("&detachKeys={}", crate::client::enc(k)),
        _ => String::new(),
    }
}

/// Forwards the signals a user sends us to the container, as docker's --sig-proxy does.
pub async fn proxy_signals(mut client: Client, id: String) {
    use tokio::signal::unix::{signal, SignalKind};
    let kinds = [
        (SignalKind::interrupt(), 2),
        (SignalKind::terminate(), 15),
        (SignalKind::hangup(), 1),
        (SignalKind::quit(), 3),
        (SignalKind::user_defined1(), 10),
        (SignalKind::user_defined2(), 12),
    ];
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
    for (k, n) in kinds {
        if let Ok(mut s) = signal(k) {
            let tx = tx.clone();
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
            });
        }
    }
    drop(tx);
    while let Some(n) = rx.recv().await {
        let _ = client
            .call(Method::POST, &format!("/containers/{id}/kill?signal={n}"))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        r: RunArgs,
    }

    #[test]
    fn wait_conditions() {
        assert_eq!(wait_condition(true), "removed");
        assert_eq!(wait_condition(false), "next-exit");
    }

    #[test]
    fn command_args_after_the_image_are_not_flags() {
        let t = T::try_parse_from(["t", "--rm", "-d", "busybox", "sh", "-c", "echo -d"]).unwrap();
        assert!(t.r.detach);
        assert!(t.r.opts.rm);
        assert_eq!(
            t.r.opts.image_and_args,
            vec!["busybox", "sh", "-c", "echo -d"]
        );
        let t = T::try_parse_from(["t", "-h", "box", "img"]).unwrap();
        assert_eq!(t.r.opts.hostname.as_deref(), Some("box"));
        assert!(T::try_parse_from(["t", "-d"]).is_err());
        assert!(T::try_parse_from(["t", "--pids-limit", "x", "img"]).is_err());
        let t = T::try_parse_from(["t", "--pids-limit", "-1", "img"]).unwrap();
        assert_eq!(t.r.opts.pids_limit, Some(-1));
    }
}
