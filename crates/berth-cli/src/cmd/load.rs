//! `berth load [-i FILE] [-q]`: POST /images/load with the tar from a file or stdin.

use anyhow::{bail, Context, Result};
use clap::Args;
use hyper::Method;

use crate::client::{json_lines, Body, Client, ReaderBody};
use crate::progress::Display;
use crate::stream::{stdin_is_tty, stdout_is_tty};

#[derive(Args, Debug)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short = 'i', long)]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

/// A body from a file, or from stdin ("-" or none), refusing a terminal.
pub fn input_body(path: Option<&str>) -> Result<Body> {
    match path {
        Some(p) if p != "-" => {
            let f = std::fs::File::open(p).with_context(|| format!("open {p}"))?;
            Ok(ReaderBody::spawn(f))
        }
        _ => {
            if stdin_is_tty() {
                bail!("requested load from stdin, but stdin is empty");
            }
            Ok(ReaderBody::spawn(std::io::stdin()))
        }
    }
}

pub async fn run(client: &mut Client, args: LoadArgs) -> Result<i32> {
    let body = input_body(args.input.as_deref())?;
    let quiet = args.quiet || !stdout_is_tty();
    let resp = client
        .send_stream(
            Method::POST,
            &format!("/images/load?quiet={}", if quiet { 1 } else { 0 }),
            body,
            "application/x-tar",
            &[],
        )
        .await?;
    let mut display = Display::new(stdout_is_tty() && !args.quiet, false);
    let mut b = resp.into_body();
    let res = json_lines(&mut b, |v| display.show(&v)).await;
    display.finish();
    res?;
    Ok(0)
}
