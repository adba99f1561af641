//! Image operations that need more than the image store: registry access with mirrors and
//! credentials, Docker's rules for removing images that containers use, Docker's names and
//! messages (`No such image: busybox:latest`), the progress lines of pull and push, and the
//! image part of `system df`.
//!
//! HTTP stays in `api::images`; this module speaks in store types and [`EngineError`]s. It must
//! never call the blocking store from an async context: callers go through [`blocking`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use berth_image::archive::ArchiveError;
use berth_image::gc::{DeleteItem, GcError, ImageOps};
use berth_image::image::{Image, ImageError, ImageStore};
use berth_image::index::IndexError;
use berth_image::layer::LayerError;
use berth_image::registry::{Credentials, Progress, Registry, RegistryConfig, RegistryError};
use berth_image::ContentError;
use berth_types::api::AuthConfig;
use berth_types::{Digest, ErrorKind, Reference, ReferenceError};
use serde_json::{json, Value};

use crate::config::Config;
use crate::daemon::Daemon;
use crate::error::EngineError;

/// Who uses an image: `(container id, running)` pairs. The container service installs it.
pub type InUseFn = Box<dyn Fn(&Digest) -> Vec<(String, bool)> + Send + Sync>;

/// Registry access and image rules for the daemon.
pub struct ImageService {
    /// Mirrors, insecure registries; credentials come per request (X-Registry-Auth).
    pub registry: RegistryConfig,
    /// Removal, pruning, history and disk usage over the data root.
    pub ops: ImageOps,
    /// Which containers use an image (id → `(container id, running)`); unset means none do.
    /// Filled once by the container service so that `rmi` refuses what Docker refuses.
    pub in_use: std::sync::RwLock<Option<InUseFn>>,
}

impl ImageService {
    pub fn new(config: &Config) -> Result<Self, EngineError> {
        let certs = if config.data_root == std::path::Path::new("/var/lib/berth") {
            Some(std::path::PathBuf::from("/etc/berth/certs.d"))
        } else {
            Some(config.data_root.join("certs.d"))
        };
        // The ingest area of loads and imports (the store makes it only on some paths).
        let tmp = config.data_root.join("tmp");
        std::fs::create_dir_all(&tmp)
            .map_err(|e| EngineError::internal(format!("create {}: {e}", tmp.display())))?;
        Ok(Self {
            registry: RegistryConfig {
                mirrors: config.registry_mirrors.clone(),
                insecure: config.insecure_registries.clone(),
                certs_dir: certs,
                ..Default::default()
            },
            ops: ImageOps::open(&config.data_root)?,
            in_use: std::sync::RwLock::new(None),
        })
    }

    /// Installs the function that names the containers using an image (berthd: the container
    /// service; tests: a fake).
    pub fn set_in_use(&self, f: InUseFn) {
        if let Ok(mut g) = self.in_use.write() {
            *g = Some(f);
        }
    }

    /// The containers using image `id`, as the container service reports them.
    pub fn users(&self, id: &Digest) -> Vec<(String, bool)> {
        self.in_use
            .read()
            .ok()
            .and_then(|g| g.as_ref().map(|f| f(id)))
            .unwrap_or_default()
    }

    /// A registry client, with `auth` (when it carries a user or token) as the credentials for
    /// `domain`.
    pub fn client(&self, domain: &str, auth: Option<&AuthConfig>) -> Result<Registry, EngineError> {
        let mut cfg = self.registry.clone();
        if let Some(c) = auth.and_then(credentials) {
            cfg.credentials.insert(domain.to_string(), c);
        }
        Ok(Registry::new(cfg)?)
    }
}

/// Runs blocking store work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::internal(format!("a worker thread failed: {e}")))?
}

/// How Docker names an image in messages: `busybox:latest` for names, ids as given.
pub fn display_name(name: &str) -> String {
    if looks_like_id(name) {
        return name.to_string();
    }
    match Reference::parse_normalized(name) {
        Ok(r) if r.digest().is_some() => r.familiar_string(),
        Ok(r) => r.with_default_tag().familiar_string(),
        Err(_) => name.to_string(),
    }
}

fn looks_like_id(name: &str) -> bool {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    name.starts_with("sha256:") || (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Finds an image by name or id, with Docker's messages.
pub fn resolve(store: &ImageStore, name: &str) -> Result<Image, EngineError> {
    if name.is_empty() {
        return Err(EngineError::invalid("invalid reference format"));
    }
    match store.get(name) {
        Ok(img) => Ok(img),
        Err(ImageError::Index(IndexError::NotFound(_))) => Err(no_such_image(name)),
        Err(e) => Err(e.into()),
    }
}

/// Docker's 404 for an unknown image.
pub fn no_such_image(name: &str) -> EngineError {
    EngineError::not_found(format!("No such image: {}", display_name(name)))
}

/// Parses a reference given by a user, with Docker's 400.
pub fn parse_reference(s: &str) -> Result<Reference, EngineError> {
    Reference::parse_normalized(s).map_err(EngineError::from)
}

/// Removes an image or one of its names as `DELETE /images/{name}` does: by a name of an image
/// with several names, only that name; else the image, unless containers use it (running ones
/// always block, stopped ones unless `force`).
pub fn remove(d: &Daemon, name: &str, force: bool) -> Result<Vec<DeleteItem>, EngineError> {
    let img = resolve(&d.images, name)?;
    let svc = &d.image_service;
    let short = img.id().short().to_string();
    let named = (!looks_like_id(name))
        .then(|| Reference::parse_normalized(name).ok())
        .flatten()
        .filter(|r| r.digest().is_none())
        .map(|r| r.with_default_tag())
        .filter(|r| img.tags.contains(r));
    let users = svc.users(img.id());
    let running = users.iter().find(|(_, run)| *run);
    let stopped = users.iter().find(|(_, run)| !*run);
    let cshort = |c: &str| c.get(..12).unwrap_or(c).to_string();
    let mut ix = d.images.index()?;
    if let Some(r) = &named {
        if img.tags.len() > 1 {
            return Ok(svc.ops.rmi(&mut ix, name, force)?);
        }
        if let Some((c, _)) = users.first() {
            if !force {
                return Err(EngineError::conflict(format!(
                    "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {short}",
                    cshort(c)
                )));
            }
            if running.is_some() {
                // Forced: the name goes, the image a running container needs stays.
                ix.untag(r)?;
                return Ok(vec![DeleteItem::Untagged(r.familiar_string())]);
            }
        }
    } else {
        if let Some((c, _)) = running {
            return Err(EngineError::conflict(format!(
                "conflict: unable to delete {short} (cannot be forced) - image is being used by running container {}",
                cshort(c)
            )));
        }
        if let (Some((c, _)), false) = (stopped, force) {
            return Err(EngineError::conflict(format!(
                "conflict: unable to delete {short} (must be forced) - image is being used by stopped container {}",
                cshort(c)
            )));
        }
    }
    let mut parent = ix.parent_of(img.id())?;
    let mut items = svc.ops.rmi(&mut ix, name, force)?;
    if !items
        .iter()
        .any(|i| matches!(i, DeleteItem::Deleted(id) if id == img.id()))
    {
        return Ok(items);
    }
    // As Docker: the build steps' images under a deleted image go with it, down to the first one
    // that has a name, another child, or a container.
    while let Some(p) = parent.take() {
        if !ix.tags_of(&p)?.is_empty() || ix.has_children(&p)? || !svc.users(&p).is_empty() {
            break;
        }
        parent = ix.parent_of(&p)?;
        match svc.ops.rmi(&mut ix, &p.to_string(), false) {
            Ok(more) => items.extend(more),
            Err(e) => {
                tracing::warn!("remove the parent image {p}: {e}");
                break;
            }
        }
    }
    Ok(items)
}

// ------------------------------------------------------------------ registry auth

/// Decodes an `X-Registry-Auth` header: base64 (URL-safe or standard, padded or not) JSON of an
/// `AuthConfig`. An empty or `{}` header means anonymous.
pub fn parse_auth_header(h: &str) -> Result<Option<AuthConfig>, EngineError> {
    let h = h.trim();
    if h.is_empty() {
        return Ok(None);
    }
    let bytes = [
        base64::engine::general_purpose::URL_SAFE,
        base64::engine::general_purpose::STANDARD,
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ]
    .iter()
    .find_map(|e| e.decode(h).ok())
    .ok_or_else(|| EngineError::invalid("X-Registry-Auth: not base64"))?;
    let auth: AuthConfig = serde_json::from_slice(&bytes)
        .map_err(|e| EngineError::invalid(format!("X-Registry-Auth: not an auth config: {e}")))?;
    Ok(Some(auth))
}

/// The credentials an auth config carries, if any.
pub fn credentials(a: &AuthConfig) -> Option<Credentials> {
    let user = a.username.clone().unwrap_or_default();
    let pass = a.password.clone().unwrap_or_default();
    if !user.is_empty() || !pass.is_empty() {
        return Some(Credentials {
            username: user,
            password: pass,
        });
    }
    None
}

/// The registry domain of a login's server address: `https://index.docker.io/v1/` and empty
/// mean `docker.io`; a scheme and a path are dropped.
pub fn server_domain(addr: &str) -> String {
    let a = addr.trim();
    let a = a
        .strip_prefix("https://")
        .or_else(|| a.strip_prefix("http://"))
        .unwrap_or(a);
    let host = a.split('/').next().unwrap_or("");
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_string(),
        h => h.to_string(),
    }
}

// ------------------------------------------------------------------ progress lines

/// Docker's progress bar text (`[=====>     ]  1.2MB/3.4MB`), as its daemon renders it.
pub fn progress_bar(current: u64, total: u64) -> String {
    use berth_image::gc::human_size;
    if total == 0 {
        return format!("{:>8}", human_size(current));
    }
    let pct = ((current as f64 / total as f64 * 100.0) as usize / 2).min(50);
    let bar = format!("[{}>{}] ", "=".repeat(pct), " ".repeat(50 - pct));
    if current > total {
        return format!("{bar}{:>8}", human_size(current));
    }
    format!("{bar}{:>8}/{}", human_size(current), human_size(total))
}

/// A status line with a layer id (`{"status":"Pull complete","progressDetail":{},"id":"…"}`).
pub fn layer_status(status: &str, id: &str) -> Value {
    json!({"status": status, "progressDetail": {}, "id": id})
}

/// A progress line (`Downloading`, `Pushing`, `Extracting`).
pub fn layer_progress(status: &str, id: &str, current: u64, total: u64) -> Value {
    json!({
        "status": status,
        "progressDetail": {"current": current, "total": total},
        "progress": progress_bar(current, total),
        "id": id,
    })
}

/// An error line of a stream (`{"errorDetail":{"message":…},"error":…}`).
pub fn error_line(message: &str) -> Value {
    json!({"errorDetail": {"message": message}, "error": message})
}

// ------------------------------------------------------------------ system df

/// The image part of `GET /system/df`: `LayersSize` and `Images` (Docker's `ImageSummary` with
/// `SharedSize` and `Containers` filled). Blocking: call through [`blocking`].
pub fn df_images(d: &Daemon) -> Result<DfImages, EngineError> {
    // The index lock is not re-entrant: measure and read records under it, load images after.
    let (usage, records) = {
        let ix = d.images.index()?;
        let usage = d.image_service.ops.df(&ix, &[])?;
        let mut records = HashMap::new();
        for u in &usage.images {
            if let Some(r) = ix.image(&u.id)? {
                records.insert(u.id.clone(), r.size);
            }
        }
        (usage, records)
    };
    let mut images = Vec::with_capacity(usage.images.len());
    for u in &usage.images {
        let containers = match d.image_service.in_use.read().ok().as_deref() {
            Some(Some(f)) => f(&u.id).len(),
            _ => u.containers,
        };
        let (labels, digests) = match d.images.get_by_id(&u.id) {
            Ok(img) => (labels_of(&img), repo_digests(&img)),
            Err(_) => (Value::Null, Vec::new()),
        };
        images.push(json!({
            "Id": u.id.to_string(),
            "ParentId": "",
            "RepoTags": u.tags,
            "RepoDigests": digests,
            "Created": u.created.as_deref().and_then(berth_image::gc::parse_rfc3339).unwrap_or(0),
            "Size": records.get(&u.id).copied().unwrap_or(u.size),
            "SharedSize": u.shared_size,
            "Labels": labels,
            "Containers": containers,
        }));
    }
    Ok(DfImages {
        layers_size: usage.layers_size + usage.blobs_size,
        images,
    })
}

/// What [`df_images`] measured.
#[derive(Debug, Clone)]
pub struct DfImages {
    /// Bytes on disk of every layer and blob (Docker's `LayersSize`).
    pub layers_size: u64,
    /// One `ImageSummary`-shaped object per image.
    pub images: Vec<Value>,
}

/// The image's labels, `null` when it has none (as Docker sends them).
pub fn labels_of(img: &Image) -> Value {
    match img.config.config.as_ref().and_then(|c| c.labels.as_ref()) {
        Some(l) if !l.is_empty() => json!(l),
        _ => Value::Null,
    }
}

/// Docker's RepoDigests: `repo@sha256:…` for each repository the image was pulled from or
/// pushed to (a local tag adds none).
pub fn repo_digests(img: &Image) -> Vec<String> {
    img.repo_digests
        .iter()
        .map(|(repo, d)| {
            let name = Reference::parse_normalized(repo)
                .map(|r| r.familiar_name())
                .unwrap_or_else(|_| repo.clone());
            format!("{name}@{d}")
        })
        .collect()
}

/// Turns the registry client's progress into Docker's pull lines.
#[derive(Default)]
pub struct PullLines {
    announced: HashSet<Digest>,
    last_pct: HashMap<Digest, u64>,
}

impl PullLines {
    fn announce(&mut self, id: &Digest, out: &mut Vec<Value>) {
        if self.announced.insert(id.clone()) {
            out.push(layer_status("Pulling fs layer", id.short()));
        }
    }

    pub fn lines(&mut self, p: Progress, from: &str, tag: &str) -> Vec<Value> {
        let mut out = Vec::new();
        match p {
            Progress::Resolved { .. } => {
                out.push(json!({"status": format!("Pulling from {from}"), "id": tag}));
            }
            Progress::Waiting { id } => {
                self.announce(&id, &mut out);
                out.push(layer_status("Waiting", id.short()));
            }
            Progress::Downloading { id, current, total } => {
                self.announce(&id, &mut out);
                // At most one line per percent.
                let pct = (current * 100).checked_div(total).unwrap_or(0);
                if self.last_pct.insert(id.clone(), pct) != Some(pct) || current == total {
                    out.push(layer_progress("Downloading", id.short(), current, total));
                }
            }
            Progress::Retrying { id, attempt, .. } => {
                out.push(layer_status(
                    &format!("Retrying (attempt {attempt})"),
                    id.short(),
                ));
            }
            Progress::Extracting { id } => {
                self.announce(&id, &mut out);
                out.push(layer_status("Verifying Checksum", id.short()));
                out.push(layer_status("Download complete", id.short()));
                out.push(layer_status("Extracting", id.short()));
            }
            Progress::Done { id } => {
                self.announce(&id, &mut out);
                out.push(layer_status("Pull complete", id.short()));
            }
            Progress::AlreadyExists { id } => {
                self.announced.insert(id.clone());
                out.push(layer_status("Already exists", id.short()));
            }
            _ => {}
        }
        out
    }
}

/// Event attributes with just a name.
pub fn name_attr(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("name".to_string(), name.to_string())])
}

/// Shares the store with a task.
pub fn store(d: &Arc<Daemon>) -> Arc<ImageStore> {
    d.images.clone()
}

// ------------------------------------------------------------------ errors

/// The kind of a store error: what the user did wrong (400/404/409) or what broke (500).
fn kind(e: &(dyn std::error::Error + 'static)) -> ErrorKind {
    if let Some(e) = e.downcast_ref::<IndexError>() {
        return match e {
            IndexError::NotFound(_) => ErrorKind::NotFound,
            IndexError::Ambiguous { .. } | IndexError::Reference(_) => ErrorKind::InvalidArgument,
            IndexError::InUse { .. } | IndexError::LayerInUse { .. } => ErrorKind::Conflict,
            _ => ErrorKind::Internal,
        };
    }
    if e.downcast_ref::<ReferenceError>().is_some() {
        return ErrorKind::InvalidArgument;
    }
    if let Some(e) = e.downcast_ref::<ContentError>() {
        return match e {
            ContentError::NotFound(_) => ErrorKind::NotFound,
            ContentError::Io { .. } | ContentError::StrayFile(_) => ErrorKind::Internal,
            _ => ErrorKind::InvalidArgument,
        };
    }
    if let Some(e) = e.downcast_ref::<LayerError>() {
        return match e {
            LayerError::Io { .. } => ErrorKind::Internal,
            _ => ErrorKind::InvalidArgument,
        };
    }
    if let Some(e) = e.downcast_ref::<ImageError>() {
        return match e {
            ImageError::Index(i) => kind(i),
            ImageError::Content(c) => kind(c),
            ImageError::Layer(l) => kind(l),
            ImageError::Io { .. } | ImageError::Poisoned | ImageError::Encode { .. } => {
                ErrorKind::Internal
            }
            ImageError::Diff(_) => ErrorKind::Internal,
            _ => ErrorKind::InvalidArgument,
        };
    }
    if let Some(e) = e.downcast_ref::<GcError>() {
        return match e {
            GcError::TagWithDigest(_) | GcError::AmbiguousTag(_) | GcError::Reference(_) => {
                ErrorKind::InvalidArgument
            }
            GcError::MultipleRepositories { .. }
            | GcError::ReferenceInUse { .. }
            | GcError::ImageInUse { .. } => ErrorKind::Conflict,
            GcError::Index(i) => kind(i),
            GcError::Content(c) => kind(c),
            _ => ErrorKind::Internal,
        };
    }
    if let Some(e) = e.downcast_ref::<ArchiveError>() {
        return match e {
            ArchiveError::Io { .. } | ArchiveError::Write(_) => ErrorKind::Internal,
            ArchiveError::Image(i) => kind(i),
            ArchiveError::Content(c) => kind(c),
            ArchiveError::Layer(l) => kind(l),
            _ => ErrorKind::InvalidArgument,
        };
    }
    if let Some(e) = e.downcast_ref::<RegistryError>() {
        return match e {
            RegistryError::ManifestUnknown { .. } => ErrorKind::NotFound,
            RegistryError::Unauthorized { .. } => ErrorKind::Unauthorized,
            RegistryError::Denied { .. } => ErrorKind::PermissionDenied,
            RegistryError::Status { status: 404, .. } => ErrorKind::NotFound,
            RegistryError::Status { status: 401, .. } => ErrorKind::Unauthorized,
            RegistryError::Status { status: 403, .. } => ErrorKind::PermissionDenied,
            RegistryError::BadUrl(_) | RegistryError::NotPushable(..) => ErrorKind::InvalidArgument,
            RegistryError::Index(i) => kind(i),
            RegistryError::Image(i) => kind(i),
            RegistryError::Content(c) => kind(c),
            RegistryError::Layer(l) => kind(l),
            _ => ErrorKind::Internal,
        };
    }
    ErrorKind::Internal
}

/// Every error of the image store, the archive code and the registry client becomes an
/// [`EngineError`] here, with its kind from [`kind`] and its own message.
macro_rules! from_store_error {
    ($($t:ty),*) => {$(
        impl From<$t> for EngineError {
            fn from(e: $t) -> Self {
                EngineError::new(kind(&e), e.to_string())
            }
        }
    )*};
}
from_store_error!(
    ImageError,
    IndexError,
    GcError,
    ArchiveError,
    RegistryError,
    ReferenceError
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_docker_shows_them() {
        assert_eq!(display_name("busybox"), "busybox:latest");
        assert_eq!(display_name("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(
            display_name("localhost:5000/a/b"),
            "localhost:5000/a/b:latest"
        );
        assert_eq!(display_name("sha256:abc"), "sha256:abc");
        assert_eq!(display_name("BAD"), "BAD");
        assert_eq!(display_name("abc123"), "abc123:latest");
    }

    #[test]
    fn auth_headers_decode_in_every_base64_flavour() {
        let json = r#"{"username":"u","password":"p?>","serveraddress":"127.0.0.1:5000"}"#;
        for e in [
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::STANDARD,
        ] {
            let a = parse_auth_header(&e.encode(json)).unwrap().unwrap();
            let c = credentials(&a).unwrap();
            assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p?>"));
        }
        let anon = parse_auth_header("e30=").unwrap().unwrap();
        assert!(credentials(&anon).is_none());
        assert!(parse_auth_header("").unwrap().is_none());
        assert!(parse_auth_header("!!!").is_err());
        assert!(parse_auth_header("bm90IGpzb24=").is_err());
    }

    #[test]
    fn login_addresses_become_domains() {
        assert_eq!(server_domain("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(server_domain(""), "docker.io");
        assert_eq!(server_domain("http://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
        assert_eq!(server_domain("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn progress_bars_look_like_dockers() {
        assert_eq!(
            progress_bar(50, 100),
            format!("[{}>{}]      50B/100B", "=".repeat(25), " ".repeat(25))
        );
        assert!(progress_bar(100, 100).starts_with(&format!("[{}>]", "=".repeat(50))));
        assert_eq!(progress_bar(5, 0), "      5B");
        let over = progress_bar(200, 100);
        assert!(over.ends_with("    200B"), "{over}");
        let l = layer_progress("Downloading", "abc", 1, 2);
        assert_eq!(l["progressDetail"]["total"], 2);
        assert_eq!(error_line("x")["errorDetail"]["message"], "x");
    }

    #[test]
    fn store_errors_get_their_kinds() {
        let e: EngineError = IndexError::NotFound("x".into()).into();
        assert_eq!(e.kind, ErrorKind::NotFound);
        let e: EngineError = GcError::TagWithDigest("x".into()).into();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        let e: EngineError = ArchiveError::UnknownFormat.into();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        let e: EngineError = RegistryError::Unauthorized {
            registry: "r".into(),
            what: "w".into(),
        }
        .into();
        assert_eq!(e.kind, ErrorKind::Unauthorized);
        let e: EngineError = ImageError::Index(IndexError::NotFound("y".into())).into();
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert!(parse_reference("UPPER").is_err());
    }

    /// A ustar archive of one regular file (no tar crate in this crate).
    fn one_file_tar(name: &str, data: &[u8]) -> Vec<u8> {
        let mut h = [0u8; 512];
        let put = |h: &mut [u8; 512], at: usize, v: &[u8]| {
            h[at..at + v.len()].copy_from_slice(v);
        };
        put(&mut h, 0, name.as_bytes());
        put(&mut h, 100, b"0000644\0");
        put(&mut h, 108, b"0000000\0");
        put(&mut h, 116, b"0000000\0");
        put(&mut h, 124, format!("{:011o}\0", data.len()).as_bytes());
        put(&mut h, 136, b"00000000000\0");
        put(&mut h, 148, b"        ");
        h[156] = b'0';
        put(&mut h, 257, b"ustar\0");
        put(&mut h, 263, b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
        let mut out = h.to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512 + 1024, 0);
        out
    }

    fn daemon_with_image() -> (tempfile::TempDir, Arc<Daemon>, Digest) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::for_data_root(&dir.path().join("data"));
        // A given --bip: opening the daemon picks no subnet and makes no bridge on the host
        // (only a daemon's start brings its networks up).
        config.bip = Some("10.254.253.1/24".into());
        let d = Daemon::open(config).unwrap();
        let layer = one_file_tar("a", b"1");
        let img = d
            .images
            .create_image(
                vec![berth_image::image::NewLayer::Tar(Box::new(&layer[..]))],
                berth_image::image::ImageConfig::for_host(),
                &berth_image::image::CreateOptions {
                    tags: vec![Reference::parse_normalized("busybox").unwrap()],
                    ..Default::default()
                },
            )
            .unwrap();
        let id = img.id().clone();
        (dir, d, id)
    }

    #[test]
    fn remove_refuses_what_containers_use_as_docker_does() {
        let (_dir, d, id) = daemon_with_image();
        let short = id.short().to_string();
        let state = Arc::new(std::sync::Mutex::new(vec![("c".repeat(64), true)]));
        let s2 = state.clone();
        let hook: InUseFn = Box::new(move |_| s2.lock().unwrap().clone());
        d.image_service.set_in_use(hook);
        let e = remove(&d, &id.to_string(), true).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Conflict);
        assert_eq!(
            e.message,
            format!("conflict: unable to delete {short} (cannot be forced) - image is being used by running container cccccccccccc")
        );
        let e = remove(&d, "busybox", false).unwrap_err();
        assert!(e.message.starts_with("conflict: unable to remove repository reference \"busybox\" (must force) - container cccccccccccc"), "{}", e.message);
        *state.lock().unwrap() = vec![("d".repeat(64), false)];
        let e = remove(&d, &id.to_string(), false).unwrap_err();
        assert_eq!(
            e.message,
            format!("conflict: unable to delete {short} (must be forced) - image is being used by stopped container dddddddddddd")
        );
        // Forced past a stopped container: untagged and deleted.
        let items = remove(&d, &id.to_string(), true).unwrap();
        assert!(items.contains(&DeleteItem::Untagged("busybox:latest".into())));
        assert!(items.contains(&DeleteItem::Deleted(id.clone())));
        let e = remove(&d, "busybox", false).unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::NotFound, "No such image: busybox:latest")
        );
    }

    #[test]
    fn forced_removal_by_name_of_a_running_image_only_untags() {
        let (_dir, d, id) = daemon_with_image();
        let hook: InUseFn = Box::new(|_| vec![("e".repeat(64), true)]);
        d.image_service.set_in_use(hook);
        let items = remove(&d, "busybox", true).unwrap();
        assert_eq!(items, vec![DeleteItem::Untagged("busybox:latest".into())]);
        assert!(d.images.get_by_id(&id).is_ok(), "the image stays, dangling");
        let df = df_images(&d).unwrap();
        assert_eq!(df.images.len(), 1);
        assert_eq!(df.images[0]["Containers"], 1);
        assert_eq!(df.images[0]["RepoTags"], json!([]));
    }
}
