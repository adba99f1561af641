//! berthd's [`Backend`]: what the executor's steps become in the engine. It runs on the build's
//! blocking thread and reaches the async engine through the runtime's handle (`block_on`), never
//! from inside async code.
//!
//! - images are resolved in the image store, or pulled through the registry client with the
//!   daemon's mirrors and the request's credentials;
//! - new images are made by the image store (`create_image`): the parent's layers, plus a layer
//!   tar for COPY/ADD or the container's upper dir for RUN, with the parent's config where
//!   `config` is the step's and a history entry appended. They get no names: the final image is
//!   tagged by the API once the build succeeded;
//! - RUN steps are ordinary containers of the engine (its mounts, seccomp, capabilities,
//!   cgroups, networks), labelled `berth.build=<build id>`, attached before they start so no
//!   output is lost, always removed;
//! - when the client goes away, a running step's container is killed and removed, and every
//!   view is unmounted by the build directory's drop.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_build::ast::RunNetwork;
use berth_build::backend::RunMountSpec;
use berth_build::{Backend, BackendError, Commit, ImageId, ImageInfo, RunConfig, RunRequest};
use berth_image::image::config::{now_rfc3339, History};
use berth_image::image::{CreateOptions, Image, ImageConfig, NewLayer};
use berth_image::registry::{ProgressFn, RegistryError};
use berth_types::api::{
    AuthConfig, ContainerCreateBody, HealthConfig, HostConfig, Mount, MountTmpfsOptions, MountType,
};
use berth_types::{Digest, Reference};
use bytes::Bytes;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use serde_json::{json, Value};

use super::output::Sink;
use super::{rootfs, BuildDir};
use crate::daemon::Daemon;
use crate::error::EngineError;

/// The label every container of a build carries, with the build's id.
pub const BUILD_LABEL: &str = "berth.build";

/// What the engine mounts in every container (procfs, sysfs, the /dev tmpfs, the hosts files):
/// made empty in the upper dir when the image lacks them, they are not part of what a RUN step
/// changed (Docker keeps them in an init layer that commits leave out).
const MOUNT_POINTS: &[&str] = &[
    "/etc/hostname",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
    "/dev",
];

/// What a build was given besides its Dockerfile.
pub struct BackendOptions {
    /// Registry credentials by registry domain (`X-Registry-Config`).
    pub auth: HashMap<String, AuthConfig>,
    /// Secrets by id (`X-Berth-Build-Secrets`).
    pub secrets: BTreeMap<String, Vec<u8>>,
    /// `networkmode` of the request: the network of RUN steps that do not say.
    pub network: Option<String>,
}

/// The engine as one build sees it.
pub struct EngineBackend<'a> {
    d: Arc<Daemon>,
    sink: &'a Sink,
    dir: &'a BuildDir,
    opts: BackendOptions,
    /// Views made by [`Backend::rootfs`], by image id (`""` = scratch).
    views: HashMap<String, PathBuf>,
    /// How many `rw` bind views this build made (their names).
    scratch: usize,
    /// References pulled in this build (`--pull` pulls each once).
    pulled: HashSet<String>,
    /// Secret files written so far.
    secret_files: HashMap<String, PathBuf>,
}

fn other(e: impl std::fmt::Display) -> BackendError {
    BackendError::Other(e.to_string())
}

fn engine(e: EngineError) -> BackendError {
    BackendError::Other(e.message)
}

/// The image config's `config` as the executor's type, and back (same field names).
fn to_run_config(c: Option<&berth_image::image::ContainerConfig>) -> RunConfig {
    c.and_then(|c| serde_json::to_value(c).ok())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

fn from_run_config(c: &RunConfig) -> Result<berth_image::image::ContainerConfig, BackendError> {
    serde_json::to_value(c)
        .and_then(serde_json::from_value)
        .map_err(|e| other(format!("the image config of the step: {e}")))
}

/// The executor's view of an image.
pub fn info_of(img: &Image) -> ImageInfo {
    let c = &img.config;
    let mut platform = format!("{}/{}", c.os, c.architecture);
    if let Some(v) = c.variant.as_deref().filter(|v| !v.is_empty()) {
        platform.push('/');
        platform.push_str(v);
    }
    ImageInfo {
        id: img.id().to_string(),
        config: to_run_config(c.config.as_ref()),
        platform,
        author: c.author.clone().filter(|a| !a.is_empty()),
    }
}

/// Whether an image of `have` (`os/arch[/variant]`) satisfies `--platform=want`; a `want`
/// without variant accepts any variant.
fn platform_matches(want: &str, have: &str) -> bool {
    let want = want.to_ascii_lowercase();
    let w: Vec<&str> = want.split('/').collect();
    let h: Vec<&str> = have.split('/').collect();
    match w.as_slice() {
        [os, arch] => h.first() == Some(os) && h.get(1) == Some(arch),
        [os, arch, variant] => {
            h.first() == Some(os) && h.get(1) == Some(arch) && h.get(2) == Some(variant)
        }
        _ => false,
    }
}

/// Where a new image's layer comes from.
enum NewLayerFrom<'p> {
    None,
    Tar(&'p Path),
    Dir(&'p Path),
}

impl<'a> EngineBackend<'a> {
    pub fn new(d: Arc<Daemon>, sink: &'a Sink, dir: &'a BuildDir, opts: BackendOptions) -> Self {
        Self {
            d,
            sink,
            dir,
            opts,
            views: HashMap::new(),
            scratch: 0,
            pulled: HashSet::new(),
            secret_files: HashMap::new(),
        }
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.sink.handle().clone()
    }

    fn image_by_id(&self, id: &str) -> Result<Image, BackendError> {
        let dg = Digest::parse(id).map_err(|_| other(format!("bad image id {id:?}")))?;
        self.d
            .images
            .get_by_id(&dg)
            .map_err(|_| BackendError::ImageNotFound(format!("No such image: {id}")))
    }

    /// Runs a future on the runtime unless the client goes away first.
    fn or_cancel<T>(&self, f: impl std::future::Future<Output = T>) -> Result<T, BackendError> {
        let sink = self.sink;
        self.handle().block_on(async move {
            tokio::select! {
                r = f => Ok(r),
                () = sink.closed() => Err(BackendError::Cancelled),
            }
        })
    }

    /// Pulls `r` with Docker's progress lines in the build's stream.
    fn pull(&mut self, r: &Reference) -> Result<Image, BackendError> {
        let auth = self.opts.auth.get(r.domain()).cloned().or_else(|| {
            // The CLI names Docker Hub by its old index URL.
            (r.domain() == "docker.io")
                .then(|| self.opts.auth.get("https://index.docker.io/v1/").cloned())
                .flatten()
        });
        let client = self
            .d
            .image_service
            .client(r.domain(), auth.as_ref())
            .map_err(engine)?;
        let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<Value>();
        let shown_tag = r
            .tag()
            .map(str::to_string)
            .or_else(|| r.digest().map(|g| g.to_string()))
            .unwrap_or_default();
        let from = r.path().to_string();
        let lines = std::sync::Mutex::new(crate::images::PullLines::default());
        let progress: ProgressFn = Arc::new(move |p| {
            if let Ok(mut s) = lines.lock() {
                for v in s.lines(p, &from, &shown_tag) {
                    let _ = ptx.send(v);
                }
            }
        });
        let store = self.d.images.clone();
        let sink = self.sink;
        let r2 = r.clone();
        let res = self.or_cancel(async move {
            let task = tokio::spawn(async move { client.pull(&store, &r2, progress).await });
            // The progress channel ends when the pull drops its callback: when it is done.
            while let Some(v) = prx.recv().await {
                let _ = sink.send(&v).await;
            }
            task.await
        })?;
        let pulled = res
            .map_err(|e| other(format!("the pull failed: {e}")))?
            .map_err(|e| pull_error(r, e))?;
        let _ = self
            .sink
            .send_blocking(&json!({"status": format!("Digest: {}", pulled.manifest_digest)}));
        let _ = self.sink.send_blocking(&json!({
            "status": format!("Status: Downloaded newer image for {}", r.familiar_string())
        }));
        self.d.events.emit(
            "image",
            "pull",
            &r.familiar_string(),
            crate::images::name_attr(&r.familiar_name()),
        );
        self.d
            .images
            .get_by_id(&pulled.id)
            .map_err(|e| other(e.to_string()))
    }

    /// Makes a new image: the parent's layers (+ one), `commit.config`, one more history entry.
    fn new_image(&self, commit: &Commit, layer: NewLayerFrom<'_>) -> Result<ImageId, BackendError> {
        let parent = commit
            .parent
            .as_deref()
            .map(|p| self.image_by_id(p))
            .transpose()?;
        let mut config = parent
            .as_ref()
            .map(|p| p.config.clone())
            .unwrap_or_else(ImageConfig::for_host);
        config.config = Some(from_run_config(&commit.config)?);
        let now = now_rfc3339();
        config.created = Some(now.clone());
        if let Some(a) = commit.author.as_ref().filter(|a| !a.is_empty()) {
            config.author = Some(a.clone());
        }
        // Per-image notes of the parent are not the child's.
        for k in ["comment", "container", "container_config"] {
            config.extra.remove(k);
        }
        config.history.push(History {
            created: Some(now),
            created_by: Some(commit.created_by.clone()),
            author: None,
            comment: None,
            empty_layer: matches!(layer, NewLayerFrom::None),
        });
        let mut layers: Vec<NewLayer<'_>> = match &parent {
            Some(p) => p
                .manifest
                .layers
                .iter()
                .zip(&p.config.rootfs.diff_ids)
                .map(|(d, id)| NewLayer::Stored {
                    descriptor: d.clone(),
                    diff_id: id.clone(),
                })
                .collect(),
            None => Vec::new(),
        };
        // The diff of a RUN step is written to a file first: the store reads a tar.
        let diff_file;
        match layer {
            NewLayerFrom::None => {}
            NewLayerFrom::Tar(p) => {
                let f = std::fs::File::open(p)
                    .map_err(|e| other(format!("open the layer {}: {e}", p.display())))?;
                layers.push(NewLayer::Tar(Box::new(io::BufReader::with_capacity(
                    256 << 10,
                    f,
                ))));
            }
            NewLayerFrom::Dir(upper) => {
                let mut tmp = tempfile_in(&self.dir.tmp())?;
                berth_image::write_diff(upper, io::BufWriter::with_capacity(256 << 10, &mut tmp.1))
                    .map_err(|e| other(format!("the changes of the step: {e}")))?
                    .0
                    .into_inner()
                    .map_err(|e| other(format!("write the layer: {}", e.error())))?;
                diff_file = tmp;
                let f = std::fs::File::open(&diff_file.0)
                    .map_err(|e| other(format!("open the layer: {e}")))?;
                layers.push(NewLayer::Tar(Box::new(io::BufReader::with_capacity(
                    256 << 10,
                    f,
                ))));
            }
        }
        let img = self
            .d
            .images
            .create_image(layers, config, &CreateOptions::default())
            .map_err(|e| other(format!("create the image of the step: {e}")))?;
        if let Some(p) = &parent {
            // Docker's Parent: `docker history` shows each step's image through it.
            self.d
                .images
                .index()
                .and_then(|mut ix| Ok(ix.set_parent(img.id(), p.id())?))
                .map_err(|e| other(format!("record the parent of the step: {e}")))?;
        }
        Ok(img.id().to_string())
    }

    /// The network mode of a RUN step.
    fn network_mode(&self, n: RunNetwork) -> String {
        match n {
            RunNetwork::None => "none".into(),
            RunNetwork::Host => "host".into(),
            RunNetwork::Default => match self.opts.network.as_deref() {
                None | Some("" | "default") => "bridge".into(),
                Some(m) => m.to_string(),
            },
        }
    }

    fn run_inner(
        &mut self,
        commit: &Commit,
        req: &RunRequest,
        out: &mut dyn Write,
        id: &str,
    ) -> Result<ImageId, BackendError> {
        let d = self.d.clone();
        let short = &id[..12.min(id.len())];
        writeln!(out, " ---> Running in {short}").map_err(|_| BackendError::Cancelled)?;
        let e = d.containers.get(id).map_err(engine)?;
        // Attached before the start: the first bytes are not lost.
        let (ptx, prx) = tokio::sync::oneshot::channel::<crate::containers::PendingStart>();
        e.pending_attach
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(ptx);
        let (otx, mut orx) = tokio::sync::mpsc::channel::<Bytes>(64);
        self.handle().spawn(async move {
            let Ok(p) = prx.await else { return };
            let conn = crate::containers::shim::request(
                &p.socket,
                &berth_runtime::shim::Request::Attach {
                    stdin: false,
                    stdout: true,
                    stderr: true,
                },
            )
            .await;
            let _ = p.connected.send(());
            if let Ok(conn) = conn {
                forward_frames(conn, otx).await;
            }
        });
        let started = self.or_cancel(d.container_start(id))?;
        if let Err(err) = started {
            return Err(BackendError::Other(err.message));
        }
        loop {
            let sink = self.sink;
            let next = self.handle().block_on(async {
                tokio::select! {
                    c = orx.recv() => Some(c),
                    () = sink.closed() => None,
                }
            });
            match next {
                Some(Some(chunk)) => out.write_all(&chunk).map_err(|_| BackendError::Cancelled)?,
                Some(None) => break,
                None => return Err(BackendError::Cancelled),
            }
        }
        let (code, _) = self
            .or_cancel(d.container_wait(id, "not-running"))?
            .map_err(engine)?;
        if code != 0 {
            return Err(BackendError::RunFailed {
                command: req.argv.join(" "),
                code,
            });
        }
        let cid = berth_types::ContainerId::new(id).map_err(other)?;
        let upper = d.containers.snapshotter.paths(&cid).upper;
        let parent = commit
            .parent
            .as_deref()
            .map(|p| self.image_by_id(p))
            .transpose()?;
        let lowers = parent
            .as_ref()
            .map(|p| d.images.layer_dirs(p))
            .unwrap_or_default();
        let mut targets: Vec<&str> = MOUNT_POINTS.to_vec();
        for m in &req.mounts {
            match m {
                RunMountSpec::Bind { target, .. }
                | RunMountSpec::Tmpfs { target, .. }
                | RunMountSpec::Scratch { target, .. } => targets.push(target),
            }
        }
        if upper.is_dir() {
            drop_mount_points(&upper, &lowers, &targets);
            self.new_image(commit, NewLayerFrom::Dir(&upper))
        } else {
            // Never mounted: it changed nothing (Docker still adds an empty layer).
            let empty = self.dir.tmp().join(format!("empty-{short}"));
            std::fs::create_dir_all(&empty).map_err(other)?;
            let r = self.new_image(commit, NewLayerFrom::Dir(&empty));
            let _ = std::fs::remove_dir(&empty);
            r
        }
    }

    /// A writable view of `source` for `RUN --mount=type=bind,rw`: an overlay (a directory) or
    /// a copy (a file) under the build's directory, so the step's writes never reach the source
    /// and go when the build ends.
    fn scratch_view(&mut self, source: &Path) -> Result<PathBuf, BackendError> {
        self.scratch += 1;
        let n = self.scratch;
        let tmp = self.dir.tmp();
        if !source.is_dir() {
            let copy = tmp.join(format!("scratch-{n}"));
            std::fs::copy(source, &copy)
                .map_err(|e| other(format!("copy {} for a rw bind: {e}", source.display())))?;
            return Ok(copy);
        }
        let (upper, work) = (
            tmp.join(format!("scratch-{n}-upper")),
            tmp.join(format!("scratch-{n}-work")),
        );
        let view = self.dir.views().join(format!("scratch-{n}"));
        for d in [&upper, &work, &view] {
            std::fs::create_dir_all(d)
                .map_err(|e| other(format!("create {}: {e}", d.display())))?;
        }
        rootfs::mount_scratch_overlay(source, &upper, &work, &view).map_err(other)?;
        Ok(view)
    }

    /// Resolves (pulling when missing or asked) an image for FROM / --from, whatever its platform.
    fn image_any_platform(
        &mut self,
        reference: &str,
        pull: bool,
        out: &mut dyn Write,
    ) -> Result<ImageInfo, BackendError> {
        // Progress lines go straight into the stream: what the executor wrote goes first.
        out.flush().map_err(|_| BackendError::Cancelled)?;
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        let is_id = reference.starts_with("sha256:")
            || (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        // An id names one image: there is nothing newer to pull.
        let must_pull = pull && !is_id && !self.pulled.contains(reference);
        if !must_pull {
            match self.d.images.get(reference) {
                Ok(img) => return Ok(info_of(&img)),
                Err(berth_image::image::ImageError::Index(berth_image::IndexError::NotFound(
                    _,
                ))) => {}
                Err(e) => return Err(other(e)),
            }
        }
        if is_id {
            return Err(BackendError::ImageNotFound(format!(
                "No such image: {reference}"
            )));
        }
        let r = Reference::parse_normalized(reference)
            .map_err(|e| BackendError::ImageNotFound(e.to_string()))?
            .docker_ref();
        let img = self.pull(&r)?;
        self.pulled.insert(reference.to_string());
        Ok(info_of(&img))
    }
}

/// Reads a shim's framed attach stream (8-byte headers: stream, 0, 0, 0, big-endian length)
/// and forwards the payloads, stdout and stderr alike.
async fn forward_frames(conn: tokio::net::UnixStream, tx: tokio::sync::mpsc::Sender<Bytes>) {
    use tokio::io::AsyncReadExt;
    let mut r = tokio::io::BufReader::with_capacity(64 << 10, conn);
    let mut head = [0u8; 8];
    loop {
        if r.read_exact(&mut head).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let mut buf = vec![0u8; len];
        if r.read_exact(&mut buf).await.is_err() {
            return;
        }
        if tx.send(Bytes::from(buf)).await.is_err() {
            return;
        }
    }
}

/// A temporary file that is removed on drop.
struct TempFile(PathBuf, std::fs::File);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tempfile_in(dir: &Path) -> Result<TempFile, BackendError> {
    for _ in 0..16 {
        let p = dir.join(format!("layer-{}.tar", &crate::containers::new_id()[..16]));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok(TempFile(p, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(other(format!("create {}: {e}", p.display()))),
        }
    }
    Err(other(format!("cannot create a file in {}", dir.display())))
}

/// Removes from a stopped container's upper dir what only its mounts made: empty files and
/// directories at (and above) mount targets that none of the image's layers has. Walks without
/// following symlinks (the step may have made any), so nothing outside the upper dir is touched.
fn drop_mount_points(upper: &Path, lowers: &[PathBuf], targets: &[&str]) {
    let Ok(root) = rustix::fs::open(
        upper,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return;
    };
    for t in targets {
        let comps: Vec<&str> = t
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if comps.contains(&"..") {
            continue;
        }
        // Deepest first: a target, then its parents while they are left empty.
        for n in (1..=comps.len()).rev() {
            let rel: PathBuf = comps[..n].iter().collect();
            if lowers
                .iter()
                .any(|l| std::fs::symlink_metadata(l.join(&rel)).is_ok())
            {
                break;
            }
            if !remove_if_empty(&root, &comps[..n]) {
                break;
            }
        }
    }
}

/// Removes `comps` under `root` if it is an empty file or an empty directory reached through
/// real directories only. Returns whether it removed it.
fn remove_if_empty(root: &OwnedFd, comps: &[&str]) -> bool {
    let Some((last, dirs)) = comps.split_last() else {
        return false;
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let Ok(mut cur) = rustix::fs::openat(root.as_fd(), ".", flags, Mode::empty()) else {
        return false;
    };
    for c in dirs {
        match rustix::fs::openat(cur.as_fd(), *c, flags, Mode::empty()) {
            Ok(fd) => cur = fd,
            Err(_) => return false,
        }
    }
    let Ok(st) = rustix::fs::statat(cur.as_fd(), *last, AtFlags::SYMLINK_NOFOLLOW) else {
        return false;
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile if st.st_size == 0 => {
            rustix::fs::unlinkat(cur.as_fd(), *last, AtFlags::empty()).is_ok()
        }
        // Fails (ENOTEMPTY) unless empty.
        FileType::Directory => rustix::fs::unlinkat(cur.as_fd(), *last, AtFlags::REMOVEDIR).is_ok(),
        _ => false,
    }
}

/// A pull's failure as Docker's builder words it.
fn pull_error(r: &Reference, e: RegistryError) -> BackendError {
    match &e {
        RegistryError::Unauthorized { .. } | RegistryError::Denied { .. } => {
            BackendError::ImageNotFound(format!(
                "pull access denied for {}, repository does not exist or may require 'docker login'",
                r.familiar_name()
            ))
        }
        RegistryError::ManifestUnknown { .. } | RegistryError::Status { status: 404, .. } => {
            BackendError::ImageNotFound(format!(
                "manifest for {} not found: manifest unknown: manifest unknown",
                r.familiar_string()
            ))
        }
        _ => BackendError::Other(e.to_string()),
    }
}

impl Backend for EngineBackend<'_> {
    fn image(
        &mut self,
        reference: &str,
        platform: Option<&str>,
        pull: bool,
        out: &mut dyn Write,
    ) -> Result<ImageInfo, BackendError> {
        let info = self.image_any_platform(reference, pull, out)?;
        match platform.map(str::trim).filter(|p| !p.is_empty()) {
            Some(want) if !platform_matches(want, &info.platform) => {
                Err(BackendError::ImageNotFound(format!(
                    "image with reference {reference} was found but its platform ({}) does not match the specified platform ({want}): this host runs {} images",
                    info.platform,
                    info.platform
                )))
            }
            _ => Ok(info),
        }
    }

    fn rootfs(&mut self, image: Option<&ImageId>) -> Result<PathBuf, BackendError> {
        let key = image.cloned().unwrap_or_default();
        if let Some(p) = self.views.get(&key) {
            return Ok(p.clone());
        }
        let layers = match image {
            Some(id) => {
                let img = self.image_by_id(id)?;
                self.d.images.lower_dirs(&img)
            }
            None => Vec::new(),
        };
        let path = match layers.len() {
            // One layer: its directory is the root filesystem (the executor only reads it).
            1 => layers[0].clone(),
            n => {
                let name = if key.is_empty() {
                    "scratch".to_string()
                } else {
                    Digest::parse(&key)
                        .map(|d| d.hex().to_string())
                        .unwrap_or_else(|_| super::safe_name(&key))
                };
                let p = self.dir.views().join(name);
                std::fs::create_dir_all(&p)
                    .map_err(|e| other(format!("create {}: {e}", p.display())))?;
                if n > 1 {
                    rootfs::mount_ro_overlay(&layers, &p).map_err(other)?;
                }
                p
            }
        };
        self.views.insert(key, path.clone());
        Ok(path)
    }

    fn commit_config(&mut self, commit: &Commit) -> Result<ImageId, BackendError> {
        self.new_image(commit, NewLayerFrom::None)
    }

    fn commit_layer(&mut self, commit: &Commit, layer: &Path) -> Result<ImageId, BackendError> {
        let r = self.new_image(commit, NewLayerFrom::Tar(layer));
        let _ = std::fs::remove_file(layer);
        r
    }

    fn run(
        &mut self,
        commit: &Commit,
        req: &RunRequest,
        out: &mut dyn Write,
    ) -> Result<ImageId, BackendError> {
        let Some(parent) = commit.parent.clone() else {
            return Err(BackendError::Other(
                "a RUN step needs a base image with something to run: FROM scratch has no shell"
                    .into(),
            ));
        };
        let mut mounts = Vec::new();
        for m in &req.mounts {
            mounts.push(match m {
                RunMountSpec::Bind {
                    source,
                    target,
                    readonly,
                } => Mount {
                    typ: Some(MountType::BIND),
                    source: Some(source.display().to_string()),
                    target: Some(target.clone()),
                    read_only: Some(*readonly),
                    ..Default::default()
                },
                RunMountSpec::Scratch { source, target } => Mount {
                    typ: Some(MountType::BIND),
                    source: Some(self.scratch_view(source)?.display().to_string()),
                    target: Some(target.clone()),
                    read_only: Some(false),
                    ..Default::default()
                },
                RunMountSpec::Tmpfs { target, size } => Mount {
                    typ: Some(MountType::TMPFS),
                    target: Some(target.clone()),
                    tmpfs_options: size.map(|s| MountTmpfsOptions {
                        size_bytes: Some(s.min(i64::MAX as u64) as i64),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            });
        }
        let body = ContainerCreateBody {
            image: Some(parent),
            cmd: Some(req.argv.clone()),
            // The image's entrypoint does not wrap a RUN command.
            entrypoint: Some(vec![String::new()]),
            env: Some(req.env.clone()),
            user: req.user.clone(),
            working_dir: req.workdir.clone(),
            labels: Some(HashMap::from([(
                BUILD_LABEL.to_string(),
                self.dir.id.clone(),
            )])),
            // No health probes while a step runs.
            healthcheck: Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                network_mode: Some(self.network_mode(req.network)),
                mounts: (!mounts.is_empty()).then_some(mounts),
                ..Default::default()
            }),
            ..Default::default()
        };
        if req.argv.is_empty() {
            return Err(BackendError::Other("no command specified".into()));
        }
        let d = self.d.clone();
        let (id, _) = self
            .or_cancel(d.container_create(None, body))?
            .map_err(engine)?;
        let r = self.run_inner(commit, req, out, &id);
        // Removed in every case (Docker's --rm and --force-rm together), killed if running.
        let removed = self
            .handle()
            .block_on(d.container_remove_opts(&id, true, true));
        if let Err(e) = removed {
            tracing::warn!("remove the build container {id}: {}", e.message);
        }
        if r.is_ok() {
            let short = &id[..12.min(id.len())];
            writeln!(out, " ---> Removed intermediate container {short}")
                .map_err(|_| BackendError::Cancelled)?;
        }
        r
    }

    fn cache_mount_dir(&mut self, id: &str) -> Result<PathBuf, BackendError> {
        self.d.builds.cache_mount_dir(id).map_err(engine)
    }

    fn secret(&mut self, id: &str) -> Result<Option<PathBuf>, BackendError> {
        if let Some(p) = self.secret_files.get(id) {
            return Ok(Some(p.clone()));
        }
        let Some(data) = self.opts.secrets.get(id) else {
            return Ok(None);
        };
        let p = self.dir.secrets().join(super::safe_name(id));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_0600()
            .open(&p)
            .map_err(|e| other(format!("write the secret {id}: {e}")))?;
        f.write_all(data)
            .map_err(|e| other(format!("write the secret {id}: {e}")))?;
        self.secret_files.insert(id.to_string(), p.clone());
        Ok(Some(p))
    }

    fn fetch(&mut self, url: &str, dest: &Path) -> Result<String, BackendError> {
        let fetcher = self.d.builds.fetcher();
        self.or_cancel(fetcher.fetch(url, dest))?
            .map_err(|e| BackendError::Fetch(e.to_string()))
    }

    fn tmp_dir(&self) -> PathBuf {
        self.dir.tmp()
    }

    fn cache_get(&mut self, key: &str) -> Result<Option<ImageInfo>, BackendError> {
        berth_runtime::timing::mark("build: cache lookup");
        let Some(id) = self.d.builds.cache.get(key).map_err(other)? else {
            return Ok(None);
        };
        match Digest::parse(&id)
            .ok()
            .map(|dg| self.d.images.get_by_id(&dg))
        {
            Some(Ok(img)) => Ok(Some(info_of(&img))),
            // The image is gone (rmi, prune): a miss, and the entry goes.
            _ => {
                let _ = self.d.builds.cache.forget(&[key.to_string()]);
                Ok(None)
            }
        }
    }

    fn cache_put(&mut self, key: &str, image: &ImageId) -> Result<(), BackendError> {
        self.d.builds.cache.put(key, image).map_err(other)
    }
}

/// `OpenOptions` with mode 0600.
trait Mode0600 {
    fn mode_0600(&mut self) -> &mut Self;
}

impl Mode0600 for std::fs::OpenOptions {
    fn mode_0600(&mut self) -> &mut Self {
        std::os::unix::fs::OpenOptionsExt::mode(self, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_match_as_docker_compares_them() {
        assert!(platform_matches("linux/amd64", "linux/amd64"));
        assert!(platform_matches("Linux/AMD64", "linux/amd64"));
        assert!(platform_matches("linux/arm64", "linux/arm64/v8"));
        assert!(!platform_matches("linux/arm64/v7", "linux/arm64/v8"));
        assert!(!platform_matches("linux/arm64", "linux/amd64"));
        assert!(!platform_matches("amd64", "linux/amd64"));
        assert!(!platform_matches("linux/amd64/x/y", "linux/amd64"));
    }

    #[test]
    fn run_configs_convert_both_ways_with_unknown_fields() {
        let c: berth_image::image::ContainerConfig = serde_json::from_value(json!({
            "Env": ["A=b"], "Cmd": ["sh"], "WorkingDir": "/w", "Shell": ["/bin/bash", "-c"],
            "OnBuild": ["RUN x"], "ArgsEscaped": true, "Labels": {"l": "v"}
        }))
        .unwrap();
        let r = to_run_config(Some(&c));
        assert_eq!(r.env.as_deref(), Some(&["A=b".to_string()][..]));
        assert_eq!(r.working_dir.as_deref(), Some("/w"));
        assert_eq!(
            r.shell.as_deref(),
            Some(&["/bin/bash".to_string(), "-c".into()][..])
        );
        assert_eq!(r.on_build.as_deref(), Some(&["RUN x".to_string()][..]));
        let back = from_run_config(&r).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn mount_points_go_from_the_upper_dir_but_nothing_else() {
        let t = tempfile::tempdir().unwrap();
        let (upper, lower, host) = (t.path().join("u"), t.path().join("l"), t.path().join("h"));
        for d in [&upper, &lower, &host] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        // Made by the engine's mounts: empty, not in the image.
        std::fs::write(upper.join("etc/hosts"), b"").unwrap();
        std::fs::create_dir_all(upper.join("run/secrets/tok")).unwrap();
        // Written by the step: kept.
        std::fs::write(upper.join("etc/hostname"), b"mine").unwrap();
        // A symlink the step made towards the host, with an empty file behind it.
        std::fs::write(host.join("victim"), b"").unwrap();
        std::os::unix::fs::symlink(&host, upper.join("cache")).unwrap();
        drop_mount_points(
            &upper,
            std::slice::from_ref(&lower),
            &[
                "/etc/hosts",
                "/etc/hostname",
                "/run/secrets/tok",
                "/cache/victim",
            ],
        );
        assert!(!upper.join("etc/hosts").exists());
        assert!(upper.join("etc").is_dir(), "/etc is in the image");
        assert_eq!(std::fs::read(upper.join("etc/hostname")).unwrap(), b"mine");
        assert!(!upper.join("run").exists(), "emptied parents go too");
        assert!(
            host.join("victim").exists(),
            "nothing behind a symlink is touched"
        );
    }

    #[test]
    fn pull_errors_read_as_dockers() {
        let r = Reference::parse_normalized("nosuch")
            .unwrap()
            .with_default_tag();
        let e = pull_error(
            &r,
            RegistryError::Unauthorized {
                registry: "docker.io".into(),
                what: "x".into(),
            },
        );
        assert_eq!(
            e.to_string(),
            "pull access denied for nosuch, repository does not exist or may require 'docker login'"
        );
        let e = pull_error(
            &r,
            RegistryError::ManifestUnknown {
                reference: "x".into(),
            },
        );
        assert!(matches!(e, BackendError::ImageNotFound(_)));
        assert_eq!(
            e.to_string(),
            "manifest for nosuch:latest not found: manifest unknown: manifest unknown"
        );
    }
}
