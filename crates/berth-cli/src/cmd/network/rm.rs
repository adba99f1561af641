//! `berth network rm [-f] NETWORK...`: each removed network's name on stdout, each failure on
//! stderr as it comes, then docker 28's closing "exit status 1" when any failed.

use anyhow::Result;
use clap::Args;
use hyper::Method;

use crate::client::{enc, ApiError, Client};

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Do not error if the network does not exist
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(required = true, value_name = "NETWORK")]
    pub networks: Vec<String>,
}

pub async fn run(client: &mut Client, args: RmArgs) -> Result<i32> {
    let mut failed = false;
    for n in &args.networks {
        match client
            .call(Method::DELETE, &format!("/networks/{}", enc(n)))
            .await
        {
            Ok(()) => println!("{n}"),
            Err(e)
                if args.force
                    && e.downcast_ref::<ApiError>()
                        .is_some_and(ApiError::is_not_found) => {}
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    if failed {
        return Err(crate::cmd::status(1, "exit status 1"));
    }
    Ok(0)
}
