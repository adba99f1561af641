//! Pulls one image into a data root with the registry client, for bench/pull.sh (the CLI comes
//! with the engine).
//!
//! usage: pull DATA_ROOT REFERENCE [--mirror URL]... [--insecure HOST:PORT]... [--concurrency N] [--quiet]

use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use berth_image::image::ImageStore;
use berth_image::registry::{Progress, Registry, RegistryConfig};
use berth_types::Reference;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut config = RegistryConfig::default();
    let mut quiet = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--mirror" => config
                .mirrors
                .push(args.next().context("--mirror needs a URL")?),
            "--insecure" => config
                .insecure
                .push(args.next().context("--insecure needs host:port")?),
            "--concurrency" => {
                config.max_concurrent = args
                    .next()
                    .context("--concurrency needs a number")?
                    .parse()?
            }
            "--quiet" | "-q" => quiet = true,
            _ => positional.push(a),
        }
    }
    let [root, reference] = positional.as_slice() else {
        bail!(
            "usage: pull DATA_ROOT REFERENCE [--mirror URL]... [--insecure HOST:PORT]... [--quiet]"
        );
    };
    let reference = Reference::parse_normalized(reference)?;
    let start = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let pulled = rt.block_on(async {
        let store = Arc::new(ImageStore::open(std::path::Path::new(root))?);
        let registry = Registry::new(config)?;
        let progress: berth_image::registry::ProgressFn = Arc::new(move |p| {
            if quiet {
                return;
            }
            match p {
                Progress::Resolved { reference, digest } => eprintln!("{reference}: {digest}"),
                Progress::Done { id } => eprintln!("{}: Pull complete", id.short()),
                Progress::AlreadyExists { id } => eprintln!("{}: Already exists", id.short()),
                Progress::Retrying {
                    id,
                    attempt,
                    offset,
                } => {
                    eprintln!("{}: retry {attempt} from byte {offset}", id.short())
                }
                _ => {}
            }
        });
        anyhow::Ok(registry.pull(&store, &reference, progress).await?)
    })?;
    if !quiet {
        eprintln!(
            "pulled {} ({} layers, {} bytes downloaded) in {:.0?}",
            pulled.id,
            pulled.layers.len(),
            pulled.downloaded,
            start.elapsed()
        );
    }
    Ok(())
}
