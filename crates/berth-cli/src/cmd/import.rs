//! `berth import [-c CHANGE] [-m MSG] FILE|URL|- [REPOSITORY[:TAG]]`: POST
//! /images/create?fromSrc=- with the tarball (or fromSrc=URL, which the daemon downloads);
//! prints the new image id.

use anyhow::Result;
use clap::Args;
use hyper::Method;

use crate::client::{json_lines, with_query, Client};
use crate::cmd::load::input_body;
use crate::cmd::tag::repo_and_tag;
use crate::progress::Message;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// A file, an http(s) URL (the daemon downloads it), or "-" for stdin
    pub file: String,
    pub reference: Option<String>,
}

pub async fn run(client: &mut Client, args: ImportArgs) -> Result<i32> {
    // A URL is downloaded by the daemon (as docker does); a file or stdin is sent.
    let url = args.file.starts_with("http://") || args.file.starts_with("https://");
    let mut q = vec![(
        "fromSrc",
        if url {
            args.file.clone()
        } else {
            "-".to_string()
        },
    )];
    if let Some(r) = &args.reference {
        let (repo, tag) = repo_and_tag(r)?;
        q.push(("repo", repo));
        q.push(("tag", tag));
    }
    if let Some(m) = &args.message {
        q.push(("message", m.clone()));
    }
    for c in &args.change {
        q.push(("changes", c.clone()));
    }
    if let Some(p) = &args.platform {
        q.push(("platform", p.clone()));
    }
    let body = if url {
        crate::client::empty()
    } else {
        input_body(Some(&args.file))?
    };
    let resp = client
        .send_stream(
            Method::POST,
            &with_query("/images/create", &q),
            body,
            "application/x-tar",
            &[],
        )
        .await?;
    let mut b = resp.into_body();
    json_lines(&mut b, |v| {
        let m = Message::from_value(&v);
        if let Some(e) = m.error {
            anyhow::bail!("{e}");
        }
        if let Some(s) = m.status.filter(|s| s.starts_with("sha256:")) {
            println!("{s}");
        } else if let Some(id) = m.aux_id {
            println!("{id}");
        }
        Ok(())
    })
    .await?;
    Ok(0)
}
