//! `berth export [-o FILE] CONTAINER`: the container's filesystem as a tar.

use anyhow::{bail, Result};
use clap::Args;
use hyper::Method;

use crate::client::{enc, Client};
use crate::cmd::save::write_body;
use crate::stream::stdout_is_tty;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    pub container: String,
}

pub async fn run(client: &mut Client, args: ExportArgs) -> Result<i32> {
    if args.output.is_none() && stdout_is_tty() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let resp = client
        .send_own(
            Method::GET,
            &format!("/containers/{}/export", enc(&args.container)),
            None,
        )
        .await?;
    write_body(&mut resp.into_body(), args.output.as_deref()).await?;
    Ok(0)
}
