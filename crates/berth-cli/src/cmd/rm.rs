//! `berth rm [-f] [-v]`.

use anyhow::Result;
use clap::Args;
use hyper::Method;

use crate::client::{enc, with_query, Client};
use crate::cmd::each;

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove the specified link
    #[arg(short = 'l', long)]
    pub link: bool,
    /// Containers (names or ids)
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn run(client: &mut Client, args: RmArgs) -> Result<i32> {
    let mut q = Vec::new();
    if args.force {
        q.push(("force", "1".to_string()));
    }
    if args.volumes {
        q.push(("v", "1".to_string()));
    }
    if args.link {
        q.push(("link", "1".to_string()));
    }
    each(client, &args.containers, |c, t| {
        let q = q.clone();
        Box::pin(async move {
            let name = t.trim_start_matches('/');
            if name.is_empty() {
                anyhow::bail!("Container name cannot be empty");
            }
            let path = with_query(&format!("/containers/{}", enc(name)), &q);
            c.call(Method::DELETE, &path).await?;
            Ok(Some(t.to_string()))
        })
    })
    .await
}
