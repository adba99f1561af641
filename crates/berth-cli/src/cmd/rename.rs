//! `berth rename CONTAINER NEW_NAME`.

use anyhow::{bail, Result};
use clap::Args;
use hyper::Method;

use crate::client::{enc, Client};

#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

pub async fn run(client: &mut Client, args: RenameArgs) -> Result<i32> {
    let new = args.new_name.trim();
    if new.is_empty() || args.container.trim().is_empty() {
        bail!("Error: Neither old nor new names may be empty");
    }
    client
        .call(
            Method::POST,
            &format!(
                "/containers/{}/rename?name={}",
                enc(&args.container),
                enc(new)
            ),
        )
        .await?;
    Ok(0)
}
