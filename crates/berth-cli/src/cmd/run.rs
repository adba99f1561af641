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
    if attach {
        // The attach and wait connections open while the daemon creates the container.
        client.reserve(2);
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

    // Our signal handlers are set up (as docker does, before start) meanwhile.
    let proxy = !tty && args.sig_proxy;
    let (hijacked, wait_resp, mut signals) = attach_and_wait(
        client,
        &id,
        stdin,
        args.detach_keys.as_deref(),
        wait_condition(opts.rm),
        async {
            // After both requests are on their way.
            tokio::task::yield_now().await;
            if proxy {
                catch_signals()
            } else {
                Vec::new()
            }
        },
    )
    .await;
    let hijacked = hijacked.map_err(|e| run_error("run", e))?;
    let wait_resp = wait_resp.map_err(|e| run_error("run", e))?;
    let waiter = tokio::spawn(async move { decode::<ContainerWaitResponse>(wait_resp).await });

    if let Err(e) = client
        .call(Method::POST, &format!("/containers/{id}/start"))
        .await
    {
        if opts.rm {
            // As docker does: the daemon removes an --rm container whose start failed; wait
            // for that (bounded) so the name is free when we return. A signal we caught for
            // the container (nothing to forward it to) ends the wait instead.
            tokio::select! {
                _ = tokio::time::timeout(std::time::Duration::from_secs(10), waiter) => {}
                _ = next_signal(&mut signals) => {}
            }
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
        tasks.push(tokio::spawn(stream::follow_resizes(
            client.sibling(),
            format!("/containers/{id}/resize"),
        )));
    } else if proxy {
        tasks.push(tokio::spawn(forward_signals(
            client.sibling(),
            id.clone(),
            signals,
        )));
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
/// The attach stream (stdout, stderr, and stdin when asked) and the wait request (`condition`) of
/// container `id`, asked for at once on connections of their own, both in place before a start so
/// that no output and no exit is missed; `beside` runs alongside.
pub async fn attach_and_wait<T>(
    client: &mut Client,
    id: &str,
    stdin: bool,
    detach_keys: Option<&str>,
    condition: &str,
    beside: impl std::future::Future<Output = T>,
) -> (
    Result<crate::client::Hijacked>,
    Result<hyper::Response<hyper::body::Incoming>>,
    T,
) {
    let attach_path = format!(
        "/containers/{id}/attach?stream=1&stdout=1&stderr=1{}{}",
        if stdin { "&stdin=1" } else { "" },
        detach_query(detach_keys)
    );
    let wait_path = format!("/containers/{id}/wait?condition={condition}");
    let (mut attach_client, mut wait_client) = (client.sibling(), client.sibling());
    tokio::join!(
        attach_client.hijack(Method::POST, &attach_path, None),
        wait_client.send_own(Method::POST, &wait_path, None),
        beside
    )
}

pub fn detach_query(spec: Option<&str>) -> String {
    match spec {
        Some(k) if !k.is_empty() => format!("&detachKeys={}", crate::client::enc(k)),
        _ => String::new(),
    }
}

/// Forwards the signals a user sends us to the container, as docker's --sig-proxy does.
pub async fn proxy_signals(client: Client, id: String) {
    forward_signals(client, id, catch_signals()).await;
}

/// Catches the signals docker's --sig-proxy forwards (from now on: they no longer stop us),
/// each with its number. Needs the runtime.
pub fn catch_signals() -> Vec<(tokio::signal::unix::Signal, i32)> {
    use tokio::signal::unix::{signal, SignalKind};
    [
        (SignalKind::interrupt(), 2),
        (SignalKind::terminate(), 15),
        (SignalKind::hangup(), 1),
        (SignalKind::quit(), 3),
        (SignalKind::user_defined1(), 10),
        (SignalKind::user_defined2(), 12),
    ]
    .into_iter()
    .filter_map(|(k, n)| signal(k).ok().map(|s| (s, n)))
    .collect()
}

/// The number of the next signal caught by [`catch_signals`]; never, if none are caught.
pub async fn next_signal(signals: &mut [(tokio::signal::unix::Signal, i32)]) -> i32 {
    std::future::poll_fn(|cx| {
        for (s, n) in signals.iter_mut() {
            // A stream that ended (the runtime going away) stays pending: nothing more comes.
            if let std::task::Poll::Ready(Some(())) = s.poll_recv(cx) {
                return std::task::Poll::Ready(*n);
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// Sends each signal caught by [`catch_signals`] to the container.
pub async fn forward_signals(
    mut client: Client,
    id: String,
    mut signals: Vec<(tokio::signal::unix::Signal, i32)>,
) {
    loop {
        let n = next_signal(&mut signals).await;
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
