//! `berth pull [-a] [-q] [--platform P] NAME[:TAG|@DIGEST]`: POST /images/create and docker's
//! progress display from its JSON message stream.

use anyhow::{anyhow, Result};
use berth_types::Reference;
use clap::Args;
use hyper::Method;

use crate::client::{json_lines, with_query, Client};
use crate::cmd::login::registry_auth_header;
use crate::progress::Display;
use crate::stream::{stderr_is_tty, stdout_is_tty};

#[derive(Args, Debug)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    pub name: String,
}

/// The query of POST /images/create for a reference (what docker's client sends).
pub fn pull_query(
    r: &Reference,
    all_tags: bool,
    platform: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut q = vec![("fromImage", r.name())];
    if !all_tags {
        let tag = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        };
        q.push(("tag", tag));
    }
    if let Some(p) = platform {
        q.push(("platform", p.to_string()));
    }
    q
}

/// Pulls an image, showing progress on stderr (`to_stderr`, docker run's way) or stdout.
pub async fn pull_image(
    client: &mut Client,
    image: &str,
    quiet: bool,
    to_stderr: bool,
) -> Result<()> {
    let r = Reference::parse_normalized(image).map_err(|e| anyhow!("{e}"))?;
    pull_ref(client, &r, false, None, quiet, to_stderr).await
}

async fn pull_ref(
    client: &mut Client,
    r: &Reference,
    all_tags: bool,
    platform: Option<&str>,
    quiet: bool,
    to_stderr: bool,
) -> Result<()> {
    let path = with_query("/images/create", &pull_query(r, all_tags, platform));
    let auth = registry_auth_header(r.domain());
    let resp = client
        .send(Method::POST, &path, None, &[("X-Registry-Auth", auth)])
        .await?;
    let tty = if to_stderr {
        stderr_is_tty()
    } else {
        stdout_is_tty()
    };
    let mut display = Display::new(tty && !quiet, to_stderr);
    let mut body = resp.into_body();
    let res = json_lines(&mut body, |v| {
        if quiet {
            let m = crate::progress::Message::from_value(&v);
            if let Some(e) = m.error {
                return Err(anyhow!("{e}"));
            }
            return Ok(());
        }
        display.show(&v)
    })
    .await;
    display.finish();
    res
}

pub async fn run(client: &mut Client, args: PullArgs) -> Result<i32> {
    let r = Reference::parse_normalized(&args.name).map_err(|e| anyhow!("{e}"))?;
    if args.all_tags && r.tag().is_some() {
        anyhow::bail!("tag can't be used with --all-tags/-a");
    }
    if !args.all_tags && r.tag().is_none() && r.digest().is_none() && !args.quiet {
        println!("Using default tag: latest");
    }
    pull_ref(
        client,
        &r,
        args.all_tags,
        args.platform.as_deref(),
        args.quiet,
        false,
    )
    .await?;
    let shown = if args.all_tags {
        r.clone()
    } else {
        r.clone().with_default_tag()
    };
    println!("{shown}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let r = Reference::parse_normalized("busybox").unwrap();
        assert_eq!(
            pull_query(&r, false, None),
            vec![
                ("fromImage", "docker.io/library/busybox".to_string()),
                ("tag", "latest".to_string())
            ]
        );
        let r = Reference::parse_normalized("localhost:5000/x:v1").unwrap();
        assert_eq!(pull_query(&r, false, Some("linux/amd64"))[1].1, "v1");
        assert_eq!(pull_query(&r, true, None).len(), 1);
    }
}
