//! `berth pause` / `unpause` (and the target list `wait` shares): one POST per container,
//! printing each name as docker does.

use anyhow::Result;
use clap::Args;
use hyper::Method;

use crate::client::{enc, Client};
use crate::cmd::each;

#[derive(Args, Debug)]
pub struct Targets {
    /// Containers (names or ids)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// POST /containers/{id}/{action} for each target.
pub async fn run(client: &mut Client, args: Targets, action: &'static str) -> Result<i32> {
    each(client, &args.containers, |c, t| {
        Box::pin(async move {
            c.call(Method::POST, &format!("/containers/{}/{action}", enc(t)))
                .await?;
            Ok(Some(t.to_string()))
        })
    })
    .await
}
