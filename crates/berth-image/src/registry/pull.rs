//! Pull: reference → manifest (through a manifest list if need be) → config → layers, each layer
//! downloaded once and unpacked while it streams, then the image registered in the index.
//!
//! The tee: the network task sends each received buffer to a blocking thread that hashes it and
//! writes it, as it is, into a staged blob (`ContentStore::writer`), and that thread hands the
//! same buffer (a reference-counted `Bytes`, no copy) to a second blocking thread that
//! decompresses and applies it (`LayerStore::apply_staged`). A download gives its slot (of
//! `max_concurrent`) back as soon as its last byte arrived. Nothing becomes visible until
//! verified: the blob by its digest, the layer by its diff id from the (verified) config; once
//! every layer job ended, one `syncfs` makes all staged blobs and layers durable before they are
//! renamed in (see [`commit_all`]), and manifests and the config are stored only once every
//! layer succeeded. A broken connection resumes with `Range`.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use berth_types::{Digest, Reference};
use bytes::{Buf, Bytes};
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, RANGE};
use http::StatusCode;
use http_body_util::BodyExt;
use tokio::sync::Semaphore;

use super::http::{read_limited, status_error, Endpoint, Req, Transport};
use super::manifest::{
    parse_config, parse_manifest, select_platform, Descriptor, ImageManifest, Parsed,
    ACCEPT_MANIFESTS, MANIFEST_LIMIT,
};
use super::{sources, Progress, ProgressFn, RegistryError};
use crate::content::{sha256_digest, ContentError, ContentStore, StagedBlob};
use crate::image::ImageStore;
use crate::layer::{chain_id, ApplyOptions, LayerStore, StagedLayer};

/// What a pull stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The reference pulled, normalised (`docker.io/library/busybox:latest`).
    pub reference: Reference,
    /// The image id: the config digest.
    pub id: Digest,
    /// The digest the reference resolved to (a manifest list's, when it named one).
    pub manifest_digest: Digest,
    /// The digest of the linux/amd64 image manifest (equal to `manifest_digest` without a list):
    /// the manifest the image store records for the image.
    pub image_manifest_digest: Digest,
    /// Layer blob digests, bottom first.
    pub layer_blobs: Vec<Digest>,
    /// Chain ids of the unpacked layers, bottom first.
    pub layers: Vec<Digest>,
    /// Compressed bytes received for layers (0 when everything was already here).
    pub downloaded: u64,
}

/// One manifest as fetched: bytes, media type, digest.
struct Fetched {
    data: Vec<u8>,
    parsed: Parsed,
    digest: Digest,
}

fn join_err(e: tokio::task::JoinError) -> RegistryError {
    RegistryError::Task(e.to_string())
}

fn scopes_for(path: &str) -> Vec<String> {
    vec![format!("repository:{path}:pull")]
}

/// GET a manifest by tag or digest; verifies the digest when pulling by digest, and the
/// registry's `Docker-Content-Digest` when it sends one.
async fn fetch_manifest(
    t: &Transport,
    ep: &Endpoint,
    path: &str,
    reference: &str,
    expected: Option<&Digest>,
    display: &str,
) -> Result<Fetched, RegistryError> {
    let scopes = scopes_for(path);
    let what = format!("manifest of {display}");
    let req = Req::get(format!("/v2/{path}/manifests/{reference}"), &scopes, &what)
        .header(ACCEPT, ACCEPT_MANIFESTS);
    let resp = t.send(ep, &req).await?;
    if resp.status() == StatusCode::NOT_FOUND {
        return Err(RegistryError::ManifestUnknown {
            reference: display.to_string(),
        });
    }
    if !resp.status().is_success() {
        return Err(status_error(resp, &what, &ep.authority).await);
    }
    let header = |n| {
        resp.headers()
            .get(n)
            .and_then(|v: &http::HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header(CONTENT_TYPE);
    let claimed = header(http::HeaderName::from_static("docker-content-digest"))
        .and_then(|d| Digest::parse(&d).ok())
        .filter(|d| d.algorithm() == berth_types::Algorithm::Sha256);
    if let Some(len) = header(CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok()) {
        if len > MANIFEST_LIMIT {
            return Err(RegistryError::TooLarge {
                what,
                size: len,
                limit: MANIFEST_LIMIT,
            });
        }
    }
    let data = read_limited(resp.into_body(), MANIFEST_LIMIT, &what).await?;
    let digest = sha256_digest(&data);
    if let Some(want) = expected.or(claimed.as_ref()) {
        if *want != digest {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: want.clone(),
                actual: digest,
            });
        }
    }
    let parsed = parse_manifest(&data, content_type.as_deref(), &what)?;
    Ok(Fetched {
        data,
        parsed,
        digest,
    })
}

/// GET a small blob (the config) into memory, verified.
async fn fetch_small_blob(
    t: &Transport,
    ep: &Endpoint,
    path: &str,
    desc: &Descriptor,
    what: &str,
) -> Result<Vec<u8>, RegistryError> {
    let scopes = scopes_for(path);
    let req = Req::get(format!("/v2/{path}/blobs/{}", desc.digest), &scopes, what);
    let resp = t.send(ep, &req).await?;
    if !resp.status().is_success() {
        return Err(status_error(resp, what, &ep.authority).await);
    }
    let data = read_limited(resp.into_body(), desc.size, what).await?;
    let actual = sha256_digest(&data);
    if actual != desc.digest {
        return Err(RegistryError::DigestMismatch {
            what: what.to_string(),
            expected: desc.digest.clone(),
            actual,
        });
    }
    Ok(data)
}

/// Pulls `reference` into `store` and registers it in the index.
pub(crate) async fn pull(
    t: &Arc<Transport>,
    store: &Arc<ImageStore>,
    reference: &Reference,
    progress: ProgressFn,
) -> Result<PulledImage, RegistryError> {
    let r = reference.docker_ref();
    let display = r.familiar_string();
    let path = r.path().to_string();
    let (by, expected) = match (r.digest(), r.tag()) {
        (Some(d), _) => (d.to_string(), Some(d.clone())),
        (None, Some(tag)) => (tag.to_string(), None),
        (None, None) => ("latest".to_string(), None),
    };

    // The manifest, from the first endpoint (mirror, then the registry) that has it.
    let mut first_err = None;
    let mut found = None;
    for ep in t.pull_endpoints(r.domain())? {
        match fetch_manifest(t, &ep, &path, &by, expected.as_ref(), &display).await {
            Ok(f) => {
                found = Some((ep, f));
                break;
            }
            Err(e) => {
                let last = !ep.mirror;
                first_err.get_or_insert(e);
                if last {
                    break;
                }
            }
        }
    }
    let Some((ep, top)) = found else {
        return Err(first_err.unwrap_or_else(|| RegistryError::ManifestUnknown {
            reference: display.clone(),
        }));
    };
    progress(Progress::Resolved {
        reference: display.clone(),
        digest: top.digest.clone(),
    });
    let (image, manifest): (Fetched, ImageManifest) = match &top.parsed {
        Parsed::Image(m, _) => (
            Fetched {
                data: top.data.clone(),
                parsed: top.parsed.clone(),
                digest: top.digest.clone(),
            },
            (**m).clone(),
        ),
        Parsed::Index(idx) => {
            let d = select_platform(idx, &display)?.digest.clone();
            let child = fetch_manifest(t, &ep, &path, &d.to_string(), Some(&d), &display).await?;
            let Parsed::Image(m, _) = &child.parsed else {
                return Err(RegistryError::BadManifest {
                    what: format!("manifest {d} of {display}"),
                    problem: "a manifest list entry is itself a list".into(),
                });
            };
            let m = (**m).clone();
            (child, m)
        }
    };

    // The config: from the store if there, else the registry; kept in memory until the end.
    let cfg_what = format!("config {} of {display}", manifest.config.digest);
    let config = if store.content().exists(&manifest.config.digest) {
        store.content().read(&manifest.config.digest)?
    } else {
        fetch_small_blob(t, &ep, &path, &manifest.config, &cfg_what).await?
    };
    let info = parse_config(&config, manifest.layers.len(), &cfg_what)?;

    // Layers, in parallel up to the limit.
    let sem = Arc::new(Semaphore::new(t.config.max_concurrent.max(1)));
    let cancel = Arc::new(AtomicBool::new(false));
    let mut parent: Option<Digest> = None;
    let mut tasks = Vec::new();
    for (desc, diff_id) in manifest.layers.iter().zip(&info.diff_ids) {
        let cid = chain_id(parent.as_ref(), diff_id);
        let job = LayerJob {
            t: t.clone(),
            ep: ep.clone(),
            path: path.clone(),
            content: store.content().clone(),
            layers: store.layers().clone(),
            desc: desc.clone(),
            diff_id: diff_id.clone(),
            parent: parent.clone(),
            chain: cid.clone(),
            progress: progress.clone(),
            cancel: cancel.clone(),
        };
        let sem = sem.clone();
        let cancel = cancel.clone();
        tasks.push(tokio::spawn(async move {
            let r = job.run(sem).await;
            if r.is_err() {
                cancel.store(true, Ordering::Relaxed);
            }
            r
        }));
        parent = Some(cid);
    }
    // Every task runs to its end (so no worker thread outlives the pull); the first error wins.
    let mut chain_ids = Vec::new();
    let mut blobs = Vec::new();
    let mut staged = Vec::new();
    let mut first_err: Option<RegistryError> = None;
    let mut downloaded = 0;
    for task in tasks {
        match task.await.map_err(join_err).and_then(|r| r) {
            Ok(out) => {
                downloaded += out.downloaded;
                chain_ids.push(out.chain_id.clone());
                blobs.extend(out.blob);
                staged.extend(out.layer);
            }
            Err(e) => {
                if first_err.is_none() || matches!(first_err, Some(RegistryError::Task(_))) {
                    first_err = Some(e);
                }
            }
        }
    }
    // What was verified is made durable and visible even when another layer failed, so that a
    // retry does not download it again.
    let (content, layer_store, root) = (
        store.content().clone(),
        store.layers().clone(),
        store.root().to_path_buf(),
    );
    let committed = tokio::task::spawn_blocking(move || {
        commit_all(&root, &content, &layer_store, blobs, staged)
    })
    .await
    .map_err(join_err)?;
    if let Some(e) = first_err {
        return Err(e);
    }
    committed?;
    // Everything verified and unpacked: the image store checks the config against the manifest
    // once more, stores both and registers the image with its layers and tag.
    let store2 = store.clone();
    let tags: Vec<Reference> = r.tag().map(|_| r.clone()).into_iter().collect();
    let (image_data, image_digest) = (image.data, image.digest);
    let (repo, top_digest) = (r.name(), top.digest.clone());
    tokio::task::spawn_blocking(move || {
        let img = store2.register(&config, &image_data, &tags)?;
        // Docker's RepoDigests: the digest the reference resolved to in its repository.
        store2
            .index()?
            .add_repo_digest(img.id(), &repo, &top_digest)?;
        Ok::<_, RegistryError>(())
    })
    .await
    .map_err(join_err)??;

    if !ep.mirror {
        let repo = r.name();
        for d in manifest
            .layers
            .iter()
            .map(|l| &l.digest)
            .chain([&manifest.config.digest])
        {
            let _ = sources::record(store.root(), d, &repo);
        }
    }
    Ok(PulledImage {
        reference: r,
        id: manifest.config.digest.clone(),
        manifest_digest: top.digest,
        image_manifest_digest: image_digest,
        layer_blobs: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
        layers: chain_ids,
        downloaded,
    })
}

/// One layer of a pull.
struct LayerJob {
    t: Arc<Transport>,
    ep: Endpoint,
    path: String,
    content: ContentStore,
    layers: LayerStore,
    desc: Descriptor,
    diff_id: Digest,
    parent: Option<Digest>,
    chain: Digest,
    progress: ProgressFn,
    cancel: Arc<AtomicBool>,
}

impl LayerJob {
    fn opts(&self) -> ApplyOptions {
        ApplyOptions {
            expected_diff_id: Some(self.diff_id.clone()),
            ..ApplyOptions::default()
        }
    }

    /// Downloads and unpacks what is missing of the layer, staged: see [`commit_all`].
    async fn run(self, sem: Arc<Semaphore>) -> Result<LayerOut, RegistryError> {
        let id = self.desc.digest.clone();
        let have_layer = self.layers.exists(&self.chain);
        let have_blob = self.content.exists(&id);
        let mut out = LayerOut {
            chain_id: self.chain.clone(),
            blob: None,
            layer: None,
            downloaded: 0,
        };
        if have_layer && have_blob {
            (self.progress)(Progress::AlreadyExists { id });
            return Ok(out);
        }
        (self.progress)(Progress::Waiting { id: id.clone() });
        let permit = sem
            .acquire_owned()
            .await
            .map_err(|e| RegistryError::Task(e.to_string()))?;
        if self.cancel.load(Ordering::Relaxed) {
            return Err(RegistryError::Task("stopped: another layer failed".into()));
        }
        if have_blob {
            // Unpack from the local blob: no network.
            drop(permit);
            (self.progress)(Progress::Extracting { id: id.clone() });
            out.layer = Some(self.apply_local().await?);
        } else {
            self.stream(!have_layer, permit, &mut out).await?;
        }
        (self.progress)(Progress::Done { id });
        Ok(out)
    }

    async fn apply_local(&self) -> Result<StagedLayer, RegistryError> {
        let (content, layers) = (self.content.clone(), self.layers.clone());
        let (d, parent, opts) = (self.desc.digest.clone(), self.parent.clone(), self.opts());
        tokio::task::spawn_blocking(move || -> Result<StagedLayer, RegistryError> {
            let f = content.open_blob(&d)?;
            Ok(layers.apply_staged(parent.as_ref(), f, &opts)?)
        })
        .await
        .map_err(join_err)?
    }

    /// Downloads the blob once into a staged blob, unpacking it on the way when `unpack`. The
    /// download permit is given back as soon as the last byte arrived.
    async fn stream(
        &self,
        unpack: bool,
        permit: tokio::sync::OwnedSemaphorePermit,
        out: &mut LayerOut,
    ) -> Result<(), RegistryError> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(64);
        let (ftx, frx) = if unpack {
            let (a, b) = std::sync::mpsc::sync_channel::<io::Result<Bytes>>(64);
            (Some(a), Some(b))
        } else {
            (None, None)
        };
        let content = self.content.clone();
        let (d, size) = (self.desc.digest.clone(), self.desc.size);
        // The writer: hashes and writes each network buffer as it is (no copy) and hands the
        // same buffer (a reference-counted `Bytes`) to the unpacker.
        let ingest = tokio::task::spawn_blocking(move || -> Result<StagedBlob, ContentError> {
            let mut fwd = ftx;
            let mut w = content.writer(Some(&d), Some(size))?;
            while let Some(msg) = rx.blocking_recv() {
                let chunk = match msg {
                    Ok(b) => b,
                    Err(e) => {
                        if let Some(f) = fwd.take() {
                            let _ = f.send(Err(io::Error::new(e.kind(), e.to_string())));
                        }
                        return Err(ContentError::Read(e));
                    }
                };
                if let Some(f) = &fwd {
                    if f.send(Ok(chunk.clone())).is_err() {
                        // The unpacker finished or failed; keep hashing and storing.
                        fwd = None;
                    }
                }
                if let Err(e) = w.write(&chunk) {
                    if let Some(f) = fwd.take() {
                        let _ = f.send(Err(io::Error::other("storing the blob failed")));
                    }
                    return Err(e);
                }
            }
            drop(fwd);
            w.finish()
        });
        let unpacker = frx.map(|frx| {
            let layers = self.layers.clone();
            let (parent, opts) = (self.parent.clone(), self.opts());
            tokio::task::spawn_blocking(move || {
                layers.apply_staged(
                    parent.as_ref(),
                    ChanReader {
                        rx: frx,
                        cur: Bytes::new(),
                    },
                    &opts,
                )
            })
        });
        let fetched = self.fetch(&tx).await;
        drop(permit);
        if fetched.is_err() {
            let _ = tx.send(Err(io::Error::other("the download failed"))).await;
        }
        drop(tx);
        if unpack && fetched.is_ok() {
            (self.progress)(Progress::Extracting {
                id: self.desc.digest.clone(),
            });
        }
        let ingested = ingest.await.map_err(join_err)?;
        let unpacked = match unpacker {
            Some(h) => Some(h.await.map_err(join_err)?),
            None => None,
        };
        out.downloaded = fetched?;
        // A blob that failed verification takes the layer unpacked from it along (dropped
        // staged, so removed).
        out.blob = Some(ingested?);
        out.layer = unpacked.transpose()?;
        Ok(())
    }

    /// Streams the blob into `tx`, resuming with `Range` after a broken connection. Returns the
    /// bytes received.
    async fn fetch(
        &self,
        tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
    ) -> Result<u64, RegistryError> {
        let t = &self.t;
        let id = &self.desc.digest;
        let size = self.desc.size;
        let scopes = scopes_for(&self.path);
        let what = format!("blob {id}");
        let url = format!("/v2/{}/blobs/{id}", self.path);
        let mut offset = 0u64;
        let mut failures = 0u32;
        let mut reported = 0u64;
        loop {
            let mut req = Req::get(url.clone(), &scopes, &what);
            if offset > 0 {
                req = req.header(RANGE, &format!("bytes={offset}-"));
            }
            let resp = t.send(&self.ep, &req).await?;
            let mut skip = match resp.status() {
                StatusCode::PARTIAL_CONTENT if offset > 0 => {
                    match content_range_start(resp.headers().get(CONTENT_RANGE)) {
                        Some(start) if start <= offset => offset - start,
                        _ => {
                            return Err(RegistryError::Status {
                                what,
                                status: 206,
                                detail: format!(
                                ": a Content-Range that does not start at or before byte {offset}"
                            ),
                            })
                        }
                    }
                }
                // The registry ignored the range: drop what we already have.
                StatusCode::OK => offset,
                StatusCode::NOT_FOUND => {
                    return Err(RegistryError::Status {
                        what,
                        status: 404,
                        detail: ": blob unknown to the registry".into(),
                    })
                }
                _ => return Err(status_error(resp, &what, &self.ep.authority).await),
            };
            let mut body = resp.into_body();
            let mut broke = None;
            loop {
                if self.cancel.load(Ordering::Relaxed) {
                    return Err(RegistryError::Task("stopped: another layer failed".into()));
                }
                match body.frame().await {
                    None => break,
                    Some(Err(e)) => {
                        broke = Some(e);
                        break;
                    }
                    Some(Ok(frame)) => {
                        let Ok(mut data) = frame.into_data() else {
                            continue;
                        };
                        if skip > 0 {
                            let n = (skip.min(data.len() as u64)) as usize;
                            data.advance(n);
                            skip -= n as u64;
                        }
                        if data.is_empty() {
                            continue;
                        }
                        offset += data.len() as u64;
                        if offset > size {
                            return Err(RegistryError::TooLarge {
                                what,
                                size: offset,
                                limit: size,
                            });
                        }
                        if tx.send(Ok(data)).await.is_err() {
                            // The writer stopped reading (the blob appeared meanwhile, or it
                            // failed): its result says which.
                            return Ok(offset);
                        }
                        if offset - reported >= 256 * 1024 || offset == size {
                            reported = offset;
                            (self.progress)(Progress::Downloading {
                                id: id.clone(),
                                current: offset,
                                total: size,
                            });
                        }
                    }
                }
            }
            if broke.is_none() && offset >= size {
                return Ok(offset);
            }
            failures += 1;
            if failures >= t.config.attempts {
                return Err(match broke {
                    Some(source) => RegistryError::Body { what, source },
                    None => RegistryError::Status {
                        what,
                        status: 200,
                        detail: format!(": the body ended after {offset} of {size} bytes"),
                    },
                });
            }
            (self.progress)(Progress::Retrying {
                id: id.clone(),
                attempt: failures,
                offset,
            });
            let delay = t
                .config
                .retry_delay
                .saturating_mul(1 << failures.min(5))
                .min(std::time::Duration::from_secs(2));
            tokio::time::sleep(delay).await;
        }
    }
}

/// `bytes 100-199/200` → 100.
fn content_range_start(v: Option<&http::HeaderValue>) -> Option<u64> {
    let s = v?.to_str().ok()?.trim();
    let rest = s.strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// What one layer job leaves to commit.
struct LayerOut {
    chain_id: Digest,
    blob: Option<StagedBlob>,
    layer: Option<StagedLayer>,
    downloaded: u64,
}

/// Makes the staged blobs and layers of a pull durable and visible: one `syncfs` of the data
/// root's filesystem, then the renames, then one fsync of `blobs/` and of `layers/`.
///
/// This keeps the store's rule (temp file + fsync + rename: nothing is renamed in before its
/// data is on disk) with one flush for the whole pull instead of one fsync per blob and one
/// syncfs per layer: syncfs writes back every dirty page and inode of the filesystem and commits
/// its journal, so when it returns every staged file and directory (all written and closed
/// before it began) is as durable as an fsync of each would have made it. The renames are
/// then made durable by the directory fsyncs. A crash before those leaves at most complete,
/// verified blobs and layers visible, or temp files that gc removes. The writers started
/// writeback of large files while they streamed, so this mostly waits for the tail.
fn commit_all(
    root: &std::path::Path,
    content: &ContentStore,
    layers: &LayerStore,
    blobs: Vec<StagedBlob>,
    staged: Vec<StagedLayer>,
) -> Result<(), RegistryError> {
    if blobs.is_empty() && staged.is_empty() {
        return Ok(());
    }
    let io_err = |op, source| RegistryError::Io {
        op,
        path: root.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(root).map_err(|e| io_err("open", e))?;
    rustix::fs::syncfs(&f).map_err(|e| io_err("syncfs", e.into()))?;
    let renamed_blobs = !blobs.is_empty();
    let renamed_layers = !staged.is_empty();
    for b in blobs {
        b.commit_after_sync()?;
    }
    for l in staged {
        l.commit_after_sync()?;
    }
    if renamed_blobs {
        content.sync_blob_dir()?;
    }
    if renamed_layers {
        layers.sync_layer_dir()?;
    }
    Ok(())
}

/// The reader the unpacker reads from: the chunks the tee hands over.
struct ChanReader {
    rx: std::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Err(_) => return Ok(0),
                Ok(Err(e)) => return Err(e),
                Ok(Ok(b)) => self.cur = b,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        let v = |s: &str| http::HeaderValue::from_str(s).unwrap();
        assert_eq!(
            content_range_start(Some(&v("bytes 100-199/200"))),
            Some(100)
        );
        assert_eq!(content_range_start(Some(&v("bytes */200"))), None);
        assert_eq!(content_range_start(None), None);
    }

    #[test]
    fn chan_reader_joins_chunks_and_passes_errors() {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        for c in ["hel", "lo ", "world"] {
            tx.send(Ok(Bytes::from(c))).unwrap();
        }
        drop(tx);
        let mut s = String::new();
        ChanReader {
            rx,
            cur: Bytes::new(),
        }
        .read_to_string(&mut s)
        .unwrap();
        assert_eq!(s, "hello world");

        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        tx.send(Ok(Bytes::from("x"))).unwrap();
        tx.send(Err(io::Error::other("the download failed")))
            .unwrap();
        let mut v = Vec::new();
        let e = ChanReader {
            rx,
            cur: Bytes::new(),
        }
        .read_to_end(&mut v)
        .unwrap_err();
        assert!(e.to_string().contains("download failed"));
    }
}
