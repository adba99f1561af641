//! `berth push [-a] [-q] NAME[:TAG]`: POST /images/{name}/push with the stored credentials and
//! docker's progress display.

use anyhow::{anyhow, Result};
use berth_types::Reference;
use clap::Args;
use hyper::Method;

use crate::client::{enc, json_lines, Client};
use crate::cmd::login::registry_auth_header;
use crate::progress::Display;
use crate::stream::stdout_is_tty;

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    pub name: String,
}

pub async fn run(client: &mut Client, args: PushArgs) -> Result<i32> {
    let r = Reference::parse_normalized(&args.name).map_err(|e| anyhow!("{e}"))?;
    let mut path = format!("/images/{}/push", enc(&r.familiar_name()));
    if !args.all_tags {
        let tag = r.tag().unwrap_or("latest");
        path = format!("{path}?tag={}", enc(tag));
    } else if r.tag().is_some() {
        anyhow::bail!("tag can't be used with --all-tags/-a");
    } else if !args.quiet {
        println!("Using default tag: latest");
    }
    let auth = registry_auth_header(r.domain());
    let resp = client
        .send(Method::POST, &path, None, &[("X-Registry-Auth", auth)])
        .await?;
    let mut display = Display::new(stdout_is_tty() && !args.quiet, false);
    let mut body = resp.into_body();
    let quiet = args.quiet;
    let res = json_lines(&mut body, |v| {
        if quiet {
            let m = crate::progress::Message::from_value(&v);
            return match m.error {
                Some(e) => Err(anyhow!("{e}")),
                None => Ok(()),
            };
        }
        display.show(&v)
    })
    .await;
    display.finish();
    res?;
    if quiet {
        println!("{}", r.clone().with_default_tag());
    }
    Ok(0)
}
