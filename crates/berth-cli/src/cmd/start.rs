//! `berth start [-a] [-i] CONTAINER...`: plain starts print the names; with -a the container's
//! output is attached (and stdin with -i) and berth exits with its status code.

use anyhow::Result;
use berth_types::api::ContainerWaitResponse;
use clap::Args;
use hyper::Method;
use serde_json::Value;

use crate::client::{decode, enc, Client};
use crate::cmd::{each, run_error, status};
use crate::stream;

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Containers (names or ids)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn run(client: &mut Client, args: StartArgs) -> Result<i32> {
    if !args.attach && !args.interactive {
        return each(client, &args.containers, |c, t| {
            Box::pin(async move {
                c.call(Method::POST, &format!("/containers/{}/start", enc(t)))
                    .await?;
                Ok(Some(t.to_string()))
            })
        })
        .await;
    }
    if args.containers.len() > 1 {
        return Err(status(
            1,
            "you cannot start and attach multiple containers at once",
        ));
    }
    let name = &args.containers[0];
    // The attach and wait connections open while the daemon answers the inspect.
    client.reserve(2);
    let info: Value = client
        .get_json(&format!("/containers/{}/json", enc(name)))
        .await?;
    let id = info["Id"].as_str().unwrap_or(name).to_string();
    let keys = stream::detach_keys(args.detach_keys.as_deref())?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = args.interactive && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    if tty && stdin && !stream::stdin_is_tty() {
        return Err(status(1, "the input device is not a TTY"));
    }
    // Both in place before start, asked for at once (as `run` does).
    let (hijacked, wait_resp, ()) = crate::cmd::run::attach_and_wait(
        client,
        &id,
        stdin,
        args.detach_keys.as_deref(),
        "next-exit",
        async {},
    )
    .await;
    let (hijacked, wait_resp) = (hijacked?, wait_resp?);
    let waiter = tokio::spawn(async move { decode::<ContainerWaitResponse>(wait_resp).await });
    if let Err(e) = client
        .call(Method::POST, &format!("/containers/{id}/start"))
        .await
    {
        waiter.abort();
        return Err(run_error("start", e));
    }
    let mut tasks = Vec::new();
    let c2 = client.sibling();
    if tty {
        if stdin {
            stream::set_raw_terminal().ok();
        }
        tasks.push(tokio::spawn(stream::follow_resizes(
            c2,
            format!("/containers/{id}/resize"),
        )));
    } else {
        tasks.push(tokio::spawn(crate::cmd::run::proxy_signals(c2, id.clone())));
    }
    let out = stream::pump(hijacked, tty, stdin, Some(keys)).await;
    stream::restore_terminal();
    for t in tasks {
        t.abort();
    }
    if out? == stream::Pumped::Detached {
        waiter.abort();
        return Ok(0);
    }
    match waiter.await {
        Ok(Ok(w)) => Ok(w.status_code as i32),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(125),
    }
}
