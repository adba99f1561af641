//! `berth volume inspect [-f FORMAT] VOLUME...`: the daemon's objects as docker prints them; a
//! missing one is reported on stderr and makes the exit status 1.

use anyhow::Result;
use clap::Args;
use hyper::Method;

use crate::client::{enc, read_all, Client};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template ('json', or a Go template)
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    pub volumes: Vec<String>,
}

pub async fn run(client: &mut Client, args: InspectArgs) -> Result<i32> {
    let mut raws = Vec::new();
    let mut errors = Vec::new();
    for n in &args.volumes {
        match client
            .send(Method::GET, &format!("/volumes/{}", enc(n)), None, &[])
            .await
        {
            Ok(r) => raws.push(read_all(r).await?.to_vec()),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    crate::cmd::inspect::print(&raws, args.format.as_deref())?;
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}
