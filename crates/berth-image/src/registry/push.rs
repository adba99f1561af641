//! Push: a local image's exact manifest, config and layer blobs to a registry, so that digests
//! stay identical on round trips. Each blob is first asked for (`HEAD`), then mounted from
//! another repository of the same registry when we know it is there, else uploaded (one `POST`
//! for a session, one streaming `PUT` with the digest). The manifest goes last, under the tag.
//!
//! Push never rewrites a manifest: what was pulled (or saved by berth) is what is sent.

use std::io::Read;
use std::sync::Arc;

use berth_types::{Digest, Reference};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{Method, StatusCode};
use tokio::sync::Semaphore;

use super::http::{status_error, with_query, Endpoint, Req, ReqBody, Transport};
use super::manifest::{parse_manifest, select_platform, Descriptor, Parsed, MANIFEST_LIMIT};
use super::{sources, Progress, ProgressFn, RegistryError};
use crate::image::ImageStore;

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The digest of the manifest pushed (identical to the local one).
    pub manifest_digest: Digest,
    /// Blobs sent.
    pub uploaded: Vec<Digest>,
    /// Blobs mounted from another repository, with that repository's path.
    pub mounted: Vec<(Digest, String)>,
    /// Blobs the repository already had.
    pub existed: Vec<Digest>,
}

enum BlobOutcome {
    Existed,
    Mounted(String),
    Uploaded,
}

fn join_err(e: tokio::task::JoinError) -> RegistryError {
    RegistryError::Task(e.to_string())
}

/// The local manifest of an image: its bytes, media type and parsed form.
struct LocalImage {
    data: Vec<u8>,
    media_type: String,
    digest: Digest,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

fn load_local(store: &ImageStore, source: &str) -> Result<LocalImage, RegistryError> {
    let rec = store.index()?.resolve(source)?;
    let not_pushable = |why: String| RegistryError::NotPushable(source.to_string(), why);
    let Some(md) = rec.manifest_digest.clone() else {
        return Err(not_pushable(
            "it has no manifest in the store (images built or imported here get one when saved or committed)".into(),
        ));
    };
    if (store.content().size(&md)?) > MANIFEST_LIMIT {
        return Err(not_pushable(format!("its manifest {md} is over 4 MiB")));
    }
    let mut data = store.content().read(&md)?;
    let mut digest = md.clone();
    let what = format!("stored manifest {md}");
    let mut parsed = parse_manifest(&data, None, &what)?;
    if let Parsed::Index(i) = &parsed {
        let child = select_platform(i, source)?.digest.clone();
        data = store.content().read(&child)?;
        parsed = parse_manifest(&data, None, &format!("stored manifest {child}"))?;
        digest = child;
    }
    let Parsed::Image(m, media_type) = parsed else {
        return Err(not_pushable(format!(
            "manifest {digest} is a list inside a list"
        )));
    };
    if m.config.digest != rec.id {
        return Err(not_pushable(format!(
            "manifest {digest} names config {}, not the image id {}",
            m.config.digest, rec.id
        )));
    }
    for d in m.layers.iter().chain([&m.config]) {
        if !store.content().exists(&d.digest) {
            return Err(not_pushable(format!(
                "blob {} is not in the content store (pull the image again)",
                d.digest
            )));
        }
    }
    Ok(LocalImage {
        data,
        media_type,
        digest,
        config: m.config,
        layers: m.layers,
    })
}

/// Pushes the local image `source` (a name or id) as `target`.
pub(crate) async fn push(
    t: &Arc<Transport>,
    store: &Arc<ImageStore>,
    source: &str,
    target: &Reference,
    progress: ProgressFn,
) -> Result<PushReport, RegistryError> {
    let target = target.clone().with_default_tag();
    let (s2, src) = (store.clone(), source.to_string());
    let img = tokio::task::spawn_blocking(move || load_local(&s2, &src))
        .await
        .map_err(join_err)??;
    if let Some(d) = target.digest() {
        if *d != img.digest {
            return Err(RegistryError::NotPushable(
                source.to_string(),
                format!("its manifest digest is {}, not {d}", img.digest),
            ));
        }
    }
    let ep = t.endpoint(target.domain())?;
    let path = target.path().to_string();
    let mut report = PushReport {
        manifest_digest: img.digest.clone(),
        uploaded: Vec::new(),
        mounted: Vec::new(),
        existed: Vec::new(),
    };

    // Layers in parallel, then the config.
    let sem = Arc::new(Semaphore::new(t.config.max_concurrent.max(1)));
    let mut tasks = Vec::new();
    for desc in &img.layers {
        let job = BlobJob {
            t: t.clone(),
            ep: ep.clone(),
            path: path.clone(),
            domain: target.domain().to_string(),
            root: store.root().to_path_buf(),
            content: store.content().clone(),
            desc: desc.clone(),
            progress: progress.clone(),
        };
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem
                .acquire()
                .await
                .map_err(|e| RegistryError::Task(e.to_string()))?;
            job.run().await
        }));
    }
    let mut outcomes = Vec::new();
    let mut first_err = None;
    for (task, desc) in tasks.into_iter().zip(&img.layers) {
        match task.await.map_err(join_err).and_then(|r| r) {
            Ok(o) => outcomes.push((desc.digest.clone(), o)),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let config_job = BlobJob {
        t: t.clone(),
        ep: ep.clone(),
        path: path.clone(),
        domain: target.domain().to_string(),
        root: store.root().to_path_buf(),
        content: store.content().clone(),
        desc: img.config.clone(),
        progress: progress.clone(),
    };
    outcomes.push((img.config.digest.clone(), config_job.run().await?));
    for (d, o) in outcomes {
        match o {
            BlobOutcome::Existed => report.existed.push(d),
            BlobOutcome::Mounted(from) => report.mounted.push((d, from)),
            BlobOutcome::Uploaded => report.uploaded.push(d),
        }
    }

    // The manifest, byte for byte.
    let reference = match (target.tag(), target.digest()) {
        (Some(tag), _) => tag.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) => "latest".to_string(),
    };
    let what = format!("manifest of {}", target.familiar_string());
    let scopes = vec![format!("repository:{path}:pull,push")];
    let data = Bytes::from(img.data);
    let body = move || ReqBody::Bytes(Some(data.clone()));
    let req = Req {
        method: Method::PUT,
        url: format!("/v2/{path}/manifests/{reference}"),
        headers: Vec::new(),
        body: &body,
        scopes: &scopes,
        what: &what,
        retry: true,
    }
    .header(CONTENT_TYPE, &img.media_type);
    let resp = t.send(&ep, &req).await?;
    if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
        return Err(status_error(resp, &what, &ep.authority).await);
    }
    if let Some(claimed) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| Digest::parse(s).ok())
    {
        if claimed != img.digest {
            return Err(RegistryError::DigestMismatch {
                what,
                expected: img.digest,
                actual: claimed,
            });
        }
    }
    let repo = target.name();
    for d in img.layers.iter().chain([&img.config]) {
        let _ = sources::record(store.root(), &d.digest, &repo);
    }
    Ok(report)
}

/// One blob of a push.
struct BlobJob {
    t: Arc<Transport>,
    ep: Endpoint,
    path: String,
    domain: String,
    root: std::path::PathBuf,
    content: crate::content::ContentStore,
    desc: Descriptor,
    progress: ProgressFn,
}

impl BlobJob {
    async fn run(self) -> Result<BlobOutcome, RegistryError> {
        let t = &self.t;
        let d = &self.desc.digest;
        let path = &self.path;
        let what = format!("blob {d} for {}/{path}", self.domain);
        let push_scope = format!("repository:{path}:pull,push");
        let scopes = vec![push_scope.clone()];

        // Already there?
        let mut head = Req::get(format!("/v2/{path}/blobs/{d}"), &scopes, &what);
        head.method = Method::HEAD;
        let resp = t.send(&self.ep, &head).await?;
        match resp.status() {
            s if s.is_success() => {
                (self.progress)(Progress::AlreadyExists { id: d.clone() });
                return Ok(BlobOutcome::Existed);
            }
            StatusCode::NOT_FOUND => {}
            _ => return Err(status_error(resp, &what, &self.ep.authority).await),
        }

        // Mount from a repository of the same registry that has it, else start an upload.
        let prefix = format!("{}/", self.domain);
        let from = sources::repos(&self.root, d)
            .into_iter()
            .filter_map(|r| r.strip_prefix(&prefix).map(str::to_string))
            .find(|p| p != path);
        let mut location = None;
        if let Some(from) = from {
            let mount_scopes = vec![push_scope.clone(), format!("repository:{from}:pull")];
            let req = Req {
                method: Method::POST,
                url: format!(
                    "/v2/{path}/blobs/uploads/?mount={d}&from={}",
                    super::auth::query_escape(&from)
                ),
                headers: Vec::new(),
                body: &|| ReqBody::Empty,
                scopes: &mount_scopes,
                what: &what,
                retry: true,
            }
            .header(CONTENT_LENGTH, "0");
            let resp = t.send(&self.ep, &req).await?;
            match resp.status() {
                StatusCode::CREATED => {
                    (self.progress)(Progress::Mounted {
                        id: d.clone(),
                        from: from.clone(),
                    });
                    return Ok(BlobOutcome::Mounted(from));
                }
                // The registry could not mount and opened an upload session instead.
                StatusCode::ACCEPTED => location = location_of(&resp),
                _ => {}
            }
        }
        let location = match location {
            Some(l) => l,
            None => {
                let req = Req {
                    method: Method::POST,
                    url: format!("/v2/{path}/blobs/uploads/"),
                    headers: Vec::new(),
                    body: &|| ReqBody::Empty,
                    scopes: &scopes,
                    what: &what,
                    retry: true,
                }
                .header(CONTENT_LENGTH, "0");
                let resp = t.send(&self.ep, &req).await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(status_error(resp, &what, &self.ep.authority).await);
                }
                location_of(&resp).ok_or_else(|| RegistryError::Status {
                    what: what.clone(),
                    status: 202,
                    detail: ": no Location for the upload".into(),
                })?
            }
        };

        // One streaming PUT of the whole blob.
        let file = self.content.path(d)?;
        let size = self.desc.size;
        let (id, progress) = (d.clone(), self.progress.clone());
        let body = move || {
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let (file, id, progress) = (file.clone(), id.clone(), progress.clone());
            tokio::task::spawn_blocking(move || {
                let mut f = match std::fs::File::open(&file) {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                let mut sent = 0u64;
                loop {
                    let mut buf = vec![0u8; 1 << 20];
                    match f.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            buf.truncate(n);
                            sent += n as u64;
                            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                                return;
                            }
                            progress(Progress::Pushing {
                                id: id.clone(),
                                current: sent,
                                total: size,
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e));
                            return;
                        }
                    }
                }
            });
            ReqBody::Stream { rx, len: size }
        };
        let req = Req {
            method: Method::PUT,
            url: with_query(&location, &format!("digest={d}")),
            headers: Vec::new(),
            body: &body,
            scopes: &scopes,
            what: &what,
            retry: true,
        }
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, &size.to_string());
        let resp = t.send(&self.ep, &req).await?;
        if !resp.status().is_success() {
            return Err(status_error(resp, &what, &self.ep.authority).await);
        }
        (self.progress)(Progress::Pushed { id: d.clone() });
        Ok(BlobOutcome::Uploaded)
    }
}

fn location_of(resp: &http::Response<hyper::body::Incoming>) -> Option<String> {
    let loc = resp.headers().get(LOCATION)?.to_str().ok()?;
    Some(loc.to_string())
}
