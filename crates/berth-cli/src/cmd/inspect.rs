//! `berth inspect [-f FORMAT] [--type T] NAME...`: the daemon's JSON array, indented as docker
//! does (key order kept), or a template applied to each object.

use anyhow::Result;
use clap::Args;
use hyper::Method;
use serde_json::Value;

use crate::client::{enc, read_all, ApiError, Client};
use crate::format::indent_json;
use crate::template::Template;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template ('json', or a Go template)
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Display total file sizes if the type is container
    #[arg(short = 's', long)]
    pub size: bool,
    /// Return JSON for specified type (container, image, network)
    #[arg(long = "type")]
    pub typ: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Any,
    Container,
    Image,
    Network,
}

async fn fetch(client: &mut Client, kind: Kind, name: &str, size: bool) -> Result<Vec<u8>> {
    let cpath = format!(
        "/containers/{}/json{}",
        enc(name),
        if size { "?size=1" } else { "" }
    );
    let ipath = format!("/images/{}/json", enc(name));
    let npath = format!("/networks/{}", enc(name));
    match kind {
        Kind::Container => Ok(read_all(client.send(Method::GET, &cpath, None, &[]).await?)
            .await?
            .to_vec()),
        Kind::Image => Ok(read_all(client.send(Method::GET, &ipath, None, &[]).await?)
            .await?
            .to_vec()),
        Kind::Network => Ok(read_all(client.send(Method::GET, &npath, None, &[]).await?)
            .await?
            .to_vec()),
        Kind::Any => {
            match client.send(Method::GET, &cpath, None, &[]).await {
                Ok(r) => return Ok(read_all(r).await?.to_vec()),
                Err(e)
                    if e.downcast_ref::<ApiError>()
                        .is_some_and(ApiError::is_not_found) => {}
                Err(e) => return Err(e),
            }
            match client.send(Method::GET, &ipath, None, &[]).await {
                Ok(r) => return Ok(read_all(r).await?.to_vec()),
                Err(e)
                    if e.downcast_ref::<ApiError>()
                        .is_some_and(ApiError::is_not_found) => {}
                Err(e) => return Err(e),
            }
            match client.send(Method::GET, &npath, None, &[]).await {
                Ok(r) => Ok(read_all(r).await?.to_vec()),
                Err(e)
                    if e.downcast_ref::<ApiError>()
                        .is_some_and(ApiError::is_not_found) =>
                {
                    Err(anyhow::anyhow!("Error: No such object: {name}"))
                }
                Err(e) => Err(e),
            }
        }
    }
}

/// Prints fetched objects as docker's inspect does: without a format, one JSON array indented
/// with the daemon's key order kept; with one, the template applied to each object.
pub fn print(raws: &[Vec<u8>], format: Option<&str>) -> Result<()> {
    let tmpl = match format {
        None | Some("") => None,
        Some("json") => Some(Template::parse("{{json .}}")?),
        Some(f) => Some(Template::parse(
            &f.replace("\\t", "\t").replace("\\n", "\n"),
        )?),
    };
    use std::io::Write;
    let out = &mut std::io::stdout().lock();
    match tmpl {
        None => {
            let mut joined = b"[".to_vec();
            for (i, r) in raws.iter().enumerate() {
                if i > 0 {
                    joined.push(b',');
                }
                joined.extend_from_slice(r);
            }
            joined.push(b']');
            writeln!(out, "{}", indent_json(&joined))?;
        }
        Some(t) => {
            for r in raws {
                let v: Value = serde_json::from_slice(r)?;
                writeln!(out, "{}", t.render(&v)?)?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

pub async fn run(client: &mut Client, args: InspectArgs, kind: Kind) -> Result<i32> {
    let kind = match args.typ.as_deref() {
        Some("container") => Kind::Container,
        Some("image") => Kind::Image,
        Some("network") => Kind::Network,
        None | Some("") => kind,
        Some(t) => anyhow::bail!("\"{t}\" is not a valid value for --type"),
    };
    let mut raws = Vec::new();
    let mut failed = false;
    let mut errors = Vec::new();
    for n in &args.names {
        match fetch(client, kind, n, args.size).await {
            Ok(raw) => raws.push(raw),
            Err(e) => {
                failed = true;
                errors.push(format!("{e:#}"));
            }
        }
    }
    print(&raws, args.format.as_deref())?;
    for e in errors {
        eprintln!("{e}");
    }
    Ok(if failed { 1 } else { 0 })
}
