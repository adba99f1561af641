//! `berth volume rm [-f] VOLUME...`: each removed volume's name on stdout, each failure on
//! stderr, exit status 1 when any failed (docker's).

use anyhow::Result;
use clap::Args;
use hyper::Method;

use crate::client::{enc, Client};

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

pub async fn run(client: &mut Client, args: RmArgs) -> Result<i32> {
    let mut failed = false;
    for n in &args.volumes {
        let path = format!(
            "/volumes/{}{}",
            enc(n),
            if args.force { "?force=1" } else { "" }
        );
        match client.call(Method::DELETE, &path).await {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}
