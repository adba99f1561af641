//! `berth rmi [-f] [--no-prune] IMAGE...`: prints docker's "Untagged:"/"Deleted:" lines.

use anyhow::Result;
use berth_types::api::ImageDeleteResponseItem;
use clap::Args;
use hyper::Method;

use crate::client::{decode, enc, Client};

#[derive(Args, Debug)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long = "no-prune")]
    pub no_prune: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

pub async fn run(client: &mut Client, args: RmiArgs) -> Result<i32> {
    let mut failed = false;
    for img in &args.images {
        let mut path = format!("/images/{}", enc(img));
        let mut q = Vec::new();
        if args.force {
            q.push("force=1");
        }
        if args.no_prune {
            q.push("noprune=1");
        }
        if !q.is_empty() {
            path = format!("{path}?{}", q.join("&"));
        }
        let res = async {
            let resp = client.send(Method::DELETE, &path, None, &[]).await?;
            decode::<Vec<ImageDeleteResponseItem>>(resp).await
        }
        .await;
        match res {
            Ok(items) => {
                for i in items {
                    if let Some(u) = i.untagged {
                        println!("Untagged: {u}");
                    }
                    if let Some(d) = i.deleted {
                        println!("Deleted: {d}");
                    }
                }
            }
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}
