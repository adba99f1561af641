//! Pull: reference → manifest (through a manifest list if need be) → config → layers, each layer
//! downloaded once and unpacked while it streams, then the image registered in the index.
//!
//! The tee: the network task sends each received chunk to a blocking thread that hashes it and
//! writes it into the content store's temp file (`ContentStore::ingest`), and that thread hands
//! the same chunk (a reference-counted `Bytes`, no copy) to a second blocking thread that
//! decompresses and applies it (`LayerStore::apply`). Nothing becomes visible until verified: the
//! blob by its digest, the layer by its diff id from the (verified) config; manifests and the
//! config are stored only once every layer succeeded. A broken connection resumes with `Range`.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
use crate::content::{sha256_digest, ContentStore};
use crate::image::ImageStore;
use crate::layer::{chain_id, ApplyOptions, Layer, LayerStore};

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
    let mut layers = Vec::new();
    let mut first_err: Option<RegistryError> = None;
    let mut downloaded = 0;
    for task in tasks {
        match task.await.map_err(join_err).and_then(|r| r) {
            Ok((layer, n)) => {
                downloaded += n;
                layers.push(layer);
            }
            Err(e) => {
                if first_err.is_none() || matches!(first_err, Some(RegistryError::Task(_))) {
                    first_err = Some(e);
                }
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }

    // Everything verified and unpacked: the image store checks the config against the manifest
    // once more, stores both and registers the image with its layers and tag.
    let store2 = store.clone();
    let tags: Vec<Reference> = r.tag().map(|_| r.clone()).into_iter().collect();
    let (image_data, image_digest) = (image.data, image.digest);
    tokio::task::spawn_blocking(move || store2.register(&config, &image_data, &tags))
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
        layers: layers.iter().map(|l| l.chain_id.clone()).collect(),
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

    /// Returns the unpacked layer and the bytes downloaded.
    async fn run(self, sem: Arc<Semaphore>) -> Result<(Layer, u64), RegistryError> {
        let id = self.desc.digest.clone();
        let have_layer = self.layers.exists(&self.chain);
        let have_blob = self.content.exists(&id);
        if have_layer && have_blob {
            (self.progress)(Progress::AlreadyExists { id });
            return Ok((self.layers.get(&self.chain)?, 0));
        }
        (self.progress)(Progress::Waiting { id: id.clone() });
        let _permit = sem
            .acquire()
            .await
            .map_err(|e| RegistryError::Task(e.to_string()))?;
        if self.cancel.load(Ordering::Relaxed) {
            return Err(RegistryError::Task("stopped: another layer failed".into()));
        }
        let (layer, n) = if have_blob {
            // Unpack from the local blob: no network.
            (self.progress)(Progress::Extracting { id: id.clone() });
            (self.apply_local().await?, 0)
        } else {
            self.stream(!have_layer).await?
        };
        (self.progress)(Progress::Done { id });
        Ok((layer, n))
    }

    async fn apply_local(&self) -> Result<Layer, RegistryError> {
        let (content, layers) = (self.content.clone(), self.layers.clone());
        let (d, parent, opts) = (self.desc.digest.clone(), self.parent.clone(), self.opts());
        tokio::task::spawn_blocking(move || -> Result<Layer, RegistryError> {
            let f = content.open_blob(&d)?;
            Ok(layers.apply(parent.as_ref(), f, &opts)?)
        })
        .await
        .map_err(join_err)?
    }

    /// Downloads the blob once into the content store, unpacking it on the way when `unpack`.
    async fn stream(&self, unpack: bool) -> Result<(Layer, u64), RegistryError> {
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(64);
        let forwarded = Arc::new(AtomicU64::new(0));
        let (ftx, frx) = if unpack {
            let (a, b) = std::sync::mpsc::sync_channel::<io::Result<Bytes>>(64);
            (Some(a), Some(b))
        } else {
            (None, None)
        };
        let content = self.content.clone();
        let (d, size) = (self.desc.digest.clone(), self.desc.size);
        let tee = TeeReader {
            rx,
            cur: Bytes::new(),
            fwd: ftx,
            forwarded: forwarded.clone(),
        };
        let ingest = tokio::task::spawn_blocking(move || content.ingest(tee, Some(&d), Some(size)));
        let unpacker = frx.map(|frx| {
            let layers = self.layers.clone();
            let (parent, opts) = (self.parent.clone(), self.opts());
            tokio::task::spawn_blocking(move || {
                layers.apply(
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
        let n = fetched?;
        if let Err(e) = ingested {
            // The blob failed verification: a layer unpacked from it must not stay either.
            if let Some(Ok(l)) = &unpacked {
                let _ = self.layers.remove(&l.chain_id);
            }
            return Err(e.into());
        }
        let layer = match unpacked {
            Some(Ok(l)) => l,
            // The blob was stored by a concurrent pull, so the unpacker was fed nothing: unpack
            // from the stored blob.
            Some(Err(_)) if forwarded.load(Ordering::Relaxed) < self.desc.size => {
                self.apply_local().await?
            }
            Some(Err(e)) => return Err(e.into()),
            None => self.layers.get(&self.chain)?,
        };
        Ok((layer, n))
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

/// The reader the content store ingests from: chunks from the network task, each also handed
/// to the unpacker (a cheap `Bytes` clone).
struct TeeReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
    fwd: Option<std::sync::mpsc::SyncSender<io::Result<Bytes>>>,
    forwarded: Arc<AtomicU64>,
}

impl Read for TeeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => {
                    self.fwd = None;
                    return Ok(0);
                }
                Some(Err(e)) => {
                    if let Some(f) = self.fwd.take() {
                        let _ = f.send(Err(io::Error::new(e.kind(), e.to_string())));
                    }
                    return Err(e);
                }
                Some(Ok(b)) => {
                    if let Some(f) = &self.fwd {
                        let n = b.len() as u64;
                        if f.send(Ok(b.clone())).is_ok() {
                            self.forwarded.fetch_add(n, Ordering::Relaxed);
                        } else {
                            // The unpacker finished or failed; keep hashing and storing.
                            self.fwd = None;
                        }
                    }
                    self.cur = b;
                }
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        Ok(n)
    }
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
    fn tee_feeds_both_readers() {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let (ftx, frx) = std::sync::mpsc::sync_channel(4);
        let forwarded = Arc::new(AtomicU64::new(0));
        let t = std::thread::spawn(move || {
            let mut tee = TeeReader {
                rx,
                cur: Bytes::new(),
                fwd: Some(ftx),
                forwarded,
            };
            let mut s = String::new();
            tee.read_to_string(&mut s).unwrap();
            s
        });
        let u = std::thread::spawn(move || {
            let mut r = ChanReader {
                rx: frx,
                cur: Bytes::new(),
            };
            let mut s = String::new();
            r.read_to_string(&mut s).unwrap();
            s
        });
        for c in ["hel", "lo ", "world"] {
            tx.blocking_send(Ok(Bytes::from(c))).unwrap();
        }
        drop(tx);
        assert_eq!(t.join().unwrap(), "hello world");
        assert_eq!(u.join().unwrap(), "hello world");
    }
}
