//! `berth kill [-s SIGNAL]`.

use anyhow::Result;
use clap::Args;
use hyper::Method;

use crate::client::{enc, with_query, Client};
use crate::cmd::each;

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, default_value = "")]
    pub signal: String,
    /// Containers (names or ids)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn run(client: &mut Client, args: KillArgs) -> Result<i32> {
    let sig = args.signal.clone();
    each(client, &args.containers, |c, t| {
        let sig = sig.clone();
        Box::pin(async move {
            let q: Vec<(&str, String)> = if sig.is_empty() {
                Vec::new()
            } else {
                vec![("signal", sig)]
            };
            let path = with_query(&format!("/containers/{}/kill", enc(t)), &q);
            c.call(Method::POST, &path).await?;
            Ok(Some(t.to_string()))
        })
    })
    .await
}
