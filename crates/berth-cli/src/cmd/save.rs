//! `berth save [-o FILE] IMAGE...`: GET /images/get, the tar to a file or (not a terminal) stdout.

use std::io::Write;

use anyhow::{bail, Context, Result};
use clap::Args;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::Method;

use crate::client::{enc, Client};
use crate::stream::stdout_is_tty;

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

/// Writes a body to `-o FILE` (via a temp file renamed into place) or stdout.
pub async fn write_body(body: &mut Incoming, output: Option<&str>) -> Result<()> {
    match output {
        Some(path) => {
            let tmp = format!("{path}.berth-tmp");
            let mut f = std::fs::File::create(&tmp).with_context(|| format!("create {tmp}"))?;
            let res = async {
                while let Some(frame) = body.frame().await {
                    let frame = frame.context("read the daemon's stream")?;
                    if let Ok(d) = frame.into_data() {
                        f.write_all(&d)?;
                    }
                }
                f.sync_all()?;
                Ok::<_, anyhow::Error>(())
            }
            .await;
            if let Err(e) = res {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            std::fs::rename(&tmp, path).with_context(|| format!("write {path}"))?;
        }
        None => {
            let mut out = std::io::stdout().lock();
            while let Some(frame) = body.frame().await {
                let frame = frame.context("read the daemon's stream")?;
                if let Ok(d) = frame.into_data() {
                    out.write_all(&d)?;
                }
            }
            out.flush()?;
        }
    }
    Ok(())
}

pub async fn run(client: &mut Client, args: SaveArgs) -> Result<i32> {
    if args.output.is_none() && stdout_is_tty() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }
    let q: Vec<String> = args
        .images
        .iter()
        .map(|i| format!("names={}", enc(i)))
        .collect();
    let resp = client
        .send_own(Method::GET, &format!("/images/get?{}", q.join("&")), None)
        .await?;
    write_body(&mut resp.into_body(), args.output.as_deref()).await?;
    Ok(0)
}
