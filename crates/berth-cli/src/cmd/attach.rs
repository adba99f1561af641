//! `berth attach CONTAINER`: our stdio to a running container's, exiting with its status.

use anyhow::Result;
use berth_types::api::ContainerWaitResponse;
use clap::Args;
use serde_json::Value;

use crate::client::{decode, enc, Client};
use crate::cmd::status;
use crate::stream;

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    pub container: String,
}

pub async fn run(client: &mut Client, args: AttachArgs) -> Result<i32> {
    // The wait and attach connections open while the daemon answers the inspect.
    client.reserve(2);
    let info: Value = client
        .get_json(&format!("/containers/{}/json", enc(&args.container)))
        .await?;
    let id = info["Id"].as_str().unwrap_or(&args.container).to_string();
    if !info["State"]["Running"].as_bool().unwrap_or(false) {
        return Err(status(
            1,
            "You cannot attach to a stopped container, start it first",
        ));
    }
    if info["State"]["Paused"].as_bool().unwrap_or(false) {
        return Err(status(
            1,
            "You cannot attach to a paused container, unpause it first",
        ));
    }
    let keys = stream::detach_keys(args.detach_keys.as_deref())?;
    let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = !args.no_stdin && info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    if tty && stdin && !stream::stdin_is_tty() {
        return Err(status(1, "the input device is not a TTY"));
    }
    let (hijacked, wait_resp, ()) = crate::cmd::run::attach_and_wait(
        client,
        &id,
        stdin,
        args.detach_keys.as_deref(),
        "not-running",
        async {},
    )
    .await;
    let wait_resp = wait_resp?;
    let waiter = tokio::spawn(async move { decode::<ContainerWaitResponse>(wait_resp).await });
    let hijacked = hijacked?;
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
    } else if args.sig_proxy {
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
        Err(_) => Ok(0),
    }
}
