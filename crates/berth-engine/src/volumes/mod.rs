//! Volumes: named and anonymous volumes of the `local` driver — their records, their data
//! directories (`<data root>/volumes/<name>/_data`), which containers use them, and the
//! resolution of a container's `-v`, `--mount type=volume`, `--volumes-from` and image
//! `VOLUME` entries into the mounts it records at create.
//!
//! It never follows a path given by a container or an image outside its root: the copy-up of
//! an image's content into a new volume (`copyup`) resolves every path inside the rootfs.
//! Nothing else writes outside `<data root>/volumes`, except a bind-style `local` volume's own
//! device directory, which its creator named.

pub mod copyup;
pub mod store;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use berth_types::ErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::Config;
use crate::containers::Record;
use crate::daemon::Daemon;
use crate::error::EngineError;

/// The label Docker puts on anonymous volumes.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

/// The options Docker's `local` driver knows.
const LOCAL_OPTS: [&str; 4] = ["type", "device", "o", "size"];

/// Errors of the volume service; messages are Docker's (`OP NAME: why`).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("create {0}: \"{0}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path")]
    BadName(String),
    #[error("create {0}: error looking up volume plugin {1}: plugin \"{1}\" not found")]
    UnknownDriver(String, String),
    #[error("create {0}: invalid option: {1:?}")]
    BadOption(String, String),
    #[error("create {0}: {1}")]
    Unsupported(String, String),
    #[error("create {0}: a volume with the same name already exists with driver {1:?}")]
    DriverConflict(String, String),
    #[error("create {0}: volume name is too short, names should be at least two alphanumeric characters")]
    TooShort(String),
    #[error("invalid mode: {0}")]
    BadMode(String),
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error("remove {0}: volume is in use - [{1}]")]
    InUse(String, String),
    #[error("invalid volume specification: '{0}': {1}")]
    BadSpec(String, String),
    #[error("invalid mount config for type \"volume\": {0}")]
    BadMount(String),
    #[error("Duplicate mount point: {0}")]
    Duplicate(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("volume database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{0}")]
    Internal(String),
}

impl VolumeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::BadName(_)
            | Self::TooShort(_)
            | Self::BadMode(_)
            | Self::BadOption(..)
            | Self::Unsupported(..)
            | Self::BadSpec(..)
            | Self::BadMount(_)
            | Self::Duplicate(_) => ErrorKind::InvalidArgument,
            Self::UnknownDriver(..) | Self::NotFound(_) => ErrorKind::NotFound,
            Self::InUse(..) | Self::DriverConflict(..) => ErrorKind::Conflict,
            Self::Io(..) | Self::Db(_) | Self::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl From<VolumeError> for EngineError {
    fn from(e: VolumeError) -> Self {
        EngineError::new(e.kind(), e.to_string())
    }
}

fn io_err(what: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |e| VolumeError::Io(what.display().to_string(), e)
}

/// A volume as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VolRecord {
    pub name: String,
    pub driver: String,
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl VolRecord {
    pub fn anonymous(&self) -> bool {
        self.labels.contains_key(ANONYMOUS_LABEL)
    }
    /// A `local` volume made with `type=none,o=bind,device=DIR` is that directory.
    pub fn bind_device(&self) -> Option<&str> {
        self.options.get("device").map(String::as_str)
    }
}

/// A volume (or, through `--volumes-from`, a host bind) as a container uses it; kept in the
/// container's record from create on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VolumeMount {
    /// "volume", or "bind" for a host directory inherited with `--volumes-from`.
    pub kind: String,
    /// The volume's name (empty for a bind).
    #[serde(default)]
    pub name: String,
    /// The host directory mounted.
    pub source: String,
    pub destination: String,
    pub rw: bool,
    /// As given (`-v`'s third field), Docker's `Mode`.
    #[serde(default)]
    pub mode: String,
    /// Do not copy the image's content into the volume on first use.
    #[serde(default)]
    pub nocopy: bool,
}

/// Docker's rule for local volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(n: &str) -> bool {
    let mut c = n.chars();
    n.len() >= 2
        && c.next().is_some_and(|f| f.is_ascii_alphanumeric())
        && c.all(|x| x.is_ascii_alphanumeric() || matches!(x, '_' | '.' | '-'))
}

/// Docker's error for a name that breaks the rule.
fn name_error(n: &str) -> VolumeError {
    if n.len() == 1 && n.chars().all(|c| c.is_ascii_alphanumeric()) {
        VolumeError::TooShort(n.to_string())
    } else {
        VolumeError::BadName(n.to_string())
    }
}

/// A random 64-hex name for an anonymous volume.
pub fn anonymous_name() -> String {
    crate::containers::new_id()
}

/// One `-v` entry that is a volume (not a host bind).
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeBind {
    /// None: anonymous.
    pub name: Option<String>,
    pub destination: String,
    pub rw: bool,
    pub nocopy: bool,
    pub mode: String,
}

/// Reads a `-v` entry as Docker's linux parser: `DEST` (anonymous), `SRC:DEST[:MODE]`. Returns
/// None for a host bind (an absolute SRC), which `containers::spec` handles.
pub fn parse_bind(spec: &str) -> Result<Option<VolumeBind>, VolumeError> {
    let bad = |why: &str| VolumeError::BadSpec(spec.to_string(), why.to_string());
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] if valid_mode(d) => {
            let _ = s;
            return Err(bad("a mode needs a source and a destination"));
        }
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(bad("too many colons")),
    };
    if src.starts_with('/') {
        return Ok(None);
    }
    if dst.is_empty() {
        return Err(bad("destination can't be empty"));
    }
    if !dst.starts_with('/') {
        return Err(VolumeError::BadSpec(
            spec.to_string(),
            format!("invalid mount config for type \"volume\": invalid mount path: '{dst}' mount path must be absolute"),
        ));
    }
    if clean(dst) == "/" {
        return Err(VolumeError::BadSpec(
            spec.to_string(),
            "invalid mount config for type \"volume\": invalid specification: destination can't be '/'".into(),
        ));
    }
    if !valid_mode(mode) {
        return Err(VolumeError::BadMode(mode.to_string()));
    }
    let name = if src.is_empty() {
        None
    } else if !valid_name(src) {
        return Err(name_error(src));
    } else {
        Some(src.to_string())
    };
    let opts: Vec<&str> = mode.split(',').filter(|s| !s.is_empty()).collect();
    Ok(Some(VolumeBind {
        name,
        destination: clean(dst),
        rw: !opts.contains(&"ro"),
        nocopy: opts.contains(&"nocopy"),
        mode: if mode.is_empty() && !src.is_empty() {
            "z".into()
        } else {
            mode.into()
        },
    }))
}

/// Docker's ValidMountMode for volumes: at most one of rw/ro, of z/Z, of the propagations,
/// and nocopy.
fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let (mut rw, mut label, mut prop, mut copy) = (0, 0, 0, 0);
    for m in mode.split(',') {
        match m {
            "rw" | "ro" => rw += 1,
            "z" | "Z" => label += 1,
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" => prop += 1,
            "nocopy" => copy += 1,
            _ => return false,
        }
    }
    rw <= 1 && label <= 1 && prop <= 1 && copy <= 1
}

/// A lexically cleaned absolute path (no `.`, `..` or double slashes), as Go's filepath.Clean.
pub fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// Checks the `local` driver's options as Docker does; only the bind form of `type`/`device`/`o`
/// is supported (berth mounts no filesystems for volumes).
fn check_local_opts(name: &str, opts: &BTreeMap<String, String>) -> Result<(), VolumeError> {
    for k in opts.keys() {
        if !LOCAL_OPTS.contains(&k.as_str()) {
            return Err(VolumeError::BadOption(name.into(), k.clone()));
        }
    }
    let unsupported = |why: String| VolumeError::Unsupported(name.into(), why);
    let (t, dev, o) = (opts.get("type"), opts.get("device"), opts.get("o"));
    if t.is_some() || dev.is_some() || o.is_some() {
        let Some(t) = t else {
            return Err(unsupported("missing required option: \"type\"".into()));
        };
        let Some(dev) = dev else {
            return Err(unsupported("missing required option: \"device\"".into()));
        };
        let o = o.map(String::as_str).unwrap_or("");
        let bind = o.split(',').any(|x| x == "bind" || x == "rbind");
        if t != "none" || !bind {
            return Err(unsupported(format!(
                "berth's local driver mounts no filesystems: only type=none with o=bind (got type={t:?}, o={o:?}); use a bind mount or mount it on the host"
            )));
        }
        if let Some(bad) = o
            .split(',')
            .find(|x| !matches!(*x, "bind" | "rbind" | "ro" | "rw" | ""))
        {
            return Err(unsupported(format!(
                "unsupported mount option {bad:?} for a bind volume"
            )));
        }
        if !dev.starts_with('/') {
            return Err(unsupported(format!(
                "device {dev:?} must be an absolute path for a bind volume"
            )));
        }
        match std::fs::metadata(dev) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(unsupported(format!(
                    "failed to mount local volume: {dev} is not a directory"
                )))
            }
            Err(e) => {
                return Err(unsupported(format!(
                    "failed to mount local volume: mount {dev}: {e}"
                )))
            }
        }
    }
    if let Some(size) = opts.get("size") {
        if crate::containers::lifecycle::parse_bytes(size).is_none() {
            return Err(unsupported(format!("invalid size: {size:?}")));
        }
    }
    Ok(())
}

/// The quota hook: limits `dir` (a new volume's `_data`, `<data root>/volumes/<name>/_data`)
/// to `size` (`size=` option, as `docker volume create -o size=10G`): a filesystem of that
/// size is mounted there (see `crate::quota`).
pub fn apply_size(name: &str, dir: &Path, size: &str) -> Result<(), VolumeError> {
    let data_root = dir.ancestors().nth(3).unwrap_or(Path::new("/nonexistent"));
    crate::quota::volume_size(data_root, name, dir, size)
        .map_err(|e| VolumeError::Unsupported(name.into(), e.to_string()))
}

/// The volume service.
pub struct Volumes {
    store: store::Store,
    root: PathBuf,
    /// Serializes creates, removals and container creates that resolve volumes, so that a
    /// volume is never removed between being resolved and being recorded as used.
    pub op: tokio::sync::Mutex<()>,
}

impl Volumes {
    pub fn open(config: &Config) -> Result<Self, EngineError> {
        let root = config.data_root.join("volumes");
        std::fs::create_dir_all(&root).map_err(io_err(&root))?;
        let store = store::Store::open(&config.data_root.join("volumes.db"))?;
        let v = Self {
            store,
            root,
            op: tokio::sync::Mutex::new(()),
        };
        v.repair();
        Ok(v)
    }

    /// A crash between making a volume's directory and storing its record leaves a directory
    /// without a record: removed when its `_data` is empty and not a mount point (anything
    /// else is left for a human to look at).
    fn repair(&self) {
        let known: std::collections::HashSet<String> = match self.store.all() {
            Ok(all) => all.into_iter().map(|r| r.name).collect(),
            Err(_) => return,
        };
        for ent in std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = ent.file_name().to_string_lossy().into_owned();
            if known.contains(&name) || !valid_name(&name) {
                continue;
            }
            let data = ent.path().join("_data");
            let empty = std::fs::read_dir(&data).map_or(true, |mut d| d.next().is_none());
            if empty && !berth_image::snapshot::is_mount_point(&data) {
                tracing::info!(
                    "removing {}: a volume directory without a record",
                    ent.path().display()
                );
                let _ = std::fs::remove_dir_all(ent.path());
            }
        }
    }

    /// `<data root>/volumes/<name>/_data` (Docker's `Mountpoint`).
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.root.join(name).join("_data")
    }

    /// The host directory a container mounts for this volume.
    pub fn source(&self, r: &VolRecord) -> PathBuf {
        match r.bind_device() {
            Some(d) => PathBuf::from(d),
            None => self.mountpoint(&r.name),
        }
    }

    pub fn list(&self) -> Result<Vec<VolRecord>, VolumeError> {
        self.store.all()
    }

    pub fn get(&self, name: &str) -> Result<VolRecord, VolumeError> {
        self.store
            .get(name)?
            .ok_or_else(|| VolumeError::NotFound(name.to_string()))
    }

    /// Creates a volume (a generated name when None) or, as Docker, returns the existing one
    /// of that name when its driver matches. The bool says whether it was made now.
    pub fn create(
        &self,
        name: Option<&str>,
        driver: &str,
        opts: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Result<(VolRecord, bool), VolumeError> {
        let anonymous = name.is_none_or(str::is_empty);
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => n.to_string(),
            None => anonymous_name(),
        };
        let driver = if driver.is_empty() { "local" } else { driver };
        if !valid_name(&name) {
            return Err(name_error(&name));
        }
        if driver != "local" {
            return Err(VolumeError::UnknownDriver(name, driver.to_string()));
        }
        if let Some(v) = self.store.get(&name)? {
            if v.driver != driver {
                return Err(VolumeError::DriverConflict(name, v.driver));
            }
            return Ok((v, false));
        }
        check_local_opts(&name, opts)?;
        let mut labels = labels.clone();
        if anonymous {
            labels.insert(ANONYMOUS_LABEL.into(), String::new());
        }
        let rec = VolRecord {
            name: name.clone(),
            driver: driver.to_string(),
            created_at: now_seconds(),
            labels,
            options: opts.clone(),
        };
        let data = self.mountpoint(&name);
        let top = self.root.join(&name);
        let made = (|| {
            std::fs::create_dir(&top).map_err(io_err(&top))?;
            std::fs::create_dir(&data).map_err(io_err(&data))?;
            if let Some(size) = opts.get("size") {
                apply_size(&name, &data, size)?;
            }
            if !self.store.insert(&rec)? {
                // Lost a race with another create of the same name.
                return Err(VolumeError::Internal(format!(
                    "create {name}: volume name is in use"
                )));
            }
            Ok(())
        })();
        if let Err(e) = made {
            if let Some(root) = self.root.parent() {
                let _ = crate::quota::volume_remove(root, &name);
            }
            let _ = std::fs::remove_dir_all(&top);
            return Err(e);
        }
        Ok((rec, true))
    }

    /// Deletes the record, then the data (never a bind volume's device).
    pub fn delete(&self, name: &str) -> Result<(), VolumeError> {
        self.store.delete(name)?;
        let top = self.root.join(name);
        if top.starts_with(&self.root) && valid_name(name) {
            // A `size=` volume's filesystem is mounted on its _data: unmount and delete it.
            if let Some(root) = self.root.parent() {
                let _ = crate::quota::volume_remove(root, name);
            }
            let _ = std::fs::remove_dir_all(&top);
        }
        Ok(())
    }
}

/// Volumes made for a container being created: removed again when dropped before
/// [`MadeVolumes::keep`] (the create failed after resolving them).
pub struct MadeVolumes<'a> {
    volumes: &'a Volumes,
    names: Vec<String>,
}

impl<'a> MadeVolumes<'a> {
    pub fn new(volumes: &'a Volumes, names: Vec<String>) -> Self {
        Self { volumes, names }
    }
    /// The create succeeded: the volumes stay.
    pub fn keep(&mut self) {
        self.names.clear();
    }
}

impl Drop for MadeVolumes<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.volumes.delete(n);
        }
    }
}

/// RFC 3339 to the second, as Docker's `CreatedAt`.
fn now_seconds() -> String {
    let t = berth_runtime::container::rfc3339_now();
    match t.split_once('.') {
        Some((s, _)) => format!("{s}Z"),
        None => t,
    }
}

/// The bytes under `dir` (files' apparent sizes, each inode once), not following links.
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for ent in rd.flatten() {
            let Ok(m) = ent.metadata() else { continue };
            use std::os::unix::fs::MetadataExt;
            if m.is_dir() {
                stack.push(ent.path());
            } else if m.nlink() <= 1 || seen.insert(m.ino()) {
                total += m.len();
            }
        }
    }
    total
}

/// Docker's volume JSON (`GET /volumes/{name}`).
pub fn volume_json(v: &Volumes, r: &VolRecord) -> Value {
    json!({
        "CreatedAt": r.created_at,
        "Driver": r.driver,
        "Labels": (!r.labels.is_empty()).then_some(&r.labels),
        "Mountpoint": v.mountpoint(&r.name),
        "Name": r.name,
        "Options": (!r.options.is_empty()).then_some(&r.options),
        "Scope": "local",
    })
}

/// A `HostConfig.Mounts` entry of type volume, checked.
fn api_volume(m: &berth_types::api::Mount) -> Result<VolumeBind, VolumeError> {
    let target = m.target.clone().unwrap_or_default();
    if !target.starts_with('/') {
        return Err(VolumeError::BadMount(format!(
            "invalid mount path: '{target}' mount path must be absolute"
        )));
    }
    if clean(&target) == "/" {
        return Err(VolumeError::BadMount(
            "invalid specification: destination can't be '/'".into(),
        ));
    }
    if m.bind_options.is_some() {
        return Err(VolumeError::BadMount(
            "field BindOptions must not be specified".into(),
        ));
    }
    if m.tmpfs_options.is_some() {
        return Err(VolumeError::BadMount(
            "field TmpfsOptions must not be specified".into(),
        ));
    }
    let src = m.source.clone().unwrap_or_default();
    if !src.is_empty() && !valid_name(&src) {
        return Err(name_error(&src));
    }
    let vo = m.volume_options.clone().unwrap_or_default();
    if vo.subpath.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(VolumeError::BadMount(
            "volume subpaths are not supported by berth".into(),
        ));
    }
    let driver = vo
        .driver_config
        .as_ref()
        .and_then(|d| d.name.clone())
        .unwrap_or_default();
    if !driver.is_empty() && driver != "local" {
        // 400, not Docker's 404 of `volume create`: a 404 from container create makes the
        // docker CLI try to pull the image.
        return Err(VolumeError::BadMount(format!(
            "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
        )));
    }
    Ok(VolumeBind {
        name: (!src.is_empty()).then_some(src),
        destination: clean(&target),
        rw: m.read_only != Some(true),
        nocopy: vo.no_copy == Some(true),
        mode: "z".into(),
    })
}

/// Checks the volume parts of a create request before anything is made (the pure checks).
pub fn check_host_config(hc: &berth_types::api::HostConfig) -> Result<(), VolumeError> {
    for b in hc.binds.iter().flatten() {
        parse_bind(b)?;
    }
    for m in hc.mounts.iter().flatten() {
        if m.typ == Some(berth_types::api::MountType::VOLUME) {
            let vb = api_volume(m)?;
            let opts = m
                .volume_options
                .as_ref()
                .and_then(|v| v.driver_config.as_ref())
                .and_then(|d| d.options.clone())
                .unwrap_or_default();
            let opts: BTreeMap<String, String> = opts.into_iter().collect();
            check_local_opts(vb.name.as_deref().unwrap_or("anonymous"), &opts)?;
        }
    }
    for f in hc.volumes_from.iter().flatten() {
        let (_, mode) = f.split_once(':').unwrap_or((f, ""));
        if !matches!(
            mode,
            "" | "ro" | "rw" | "z" | "Z" | "ro,z" | "rw,z" | "ro,Z" | "rw,Z"
        ) {
            return Err(VolumeError::BadMode(mode.to_string()));
        }
    }
    Ok(())
}

/// What a volume asked for at create will be: made now or already there.
struct Want {
    bind: VolumeBind,
    opts: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

impl Daemon {
    /// The ids of the containers (any state) that use volume `name`.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.containers
            .list()
            .iter()
            .filter_map(|e| {
                let r = e.rec();
                r.volumes
                    .iter()
                    .any(|v| v.kind == "volume" && v.name == name)
                    .then(|| r.id.clone())
            })
            .collect()
    }

    /// The volumes of a new container, from (in Docker's order) `--volumes-from`, `-v`,
    /// `--mount type=volume` and the config's `Volumes` (the image's VOLUME and `-v /path`)
    /// not covered by another mount. Volumes that do not exist are made; on error, those made
    /// here are removed again. The caller holds `volumes.op` until the record is stored.
    pub fn volumes_for_create(
        &self,
        hc: &berth_types::api::HostConfig,
        config_volumes: &[String],
    ) -> Result<(Vec<VolumeMount>, Vec<String>), EngineError> {
        let mut out: Vec<VolumeMount> = Vec::new();
        let mut made: Vec<String> = Vec::new();
        let r = self.volumes_for_create_inner(hc, config_volumes, &mut out, &mut made);
        match r {
            Ok(()) => Ok((out, made)),
            Err(e) => {
                for n in &made {
                    let _ = self.volumes.delete(n);
                }
                Err(e)
            }
        }
    }

    fn volumes_for_create_inner(
        &self,
        hc: &berth_types::api::HostConfig,
        config_volumes: &[String],
        out: &mut Vec<VolumeMount>,
        made: &mut Vec<String>,
    ) -> Result<(), EngineError> {
        // --volumes-from: the other container's volumes and host binds, at their places.
        for f in hc.volumes_from.iter().flatten() {
            let (id, mode) = f.split_once(':').unwrap_or((f, ""));
            // 400 rather than 404: a 404 from create makes the docker CLI pull the image.
            let src = self
                .containers
                .get(id)
                .map_err(|e| EngineError::invalid(e.message))?
                .snapshot();
            let force_ro = mode.split(',').any(|m| m == "ro");
            let force_rw = mode.split(',').any(|m| m == "rw");
            for v in &src.volumes {
                let mut v = v.clone();
                if force_ro {
                    v.rw = false;
                } else if force_rw {
                    v.rw = true;
                }
                out.retain(|o| o.destination != v.destination);
                out.push(v);
            }
            for b in src.host_config.binds.iter().flatten() {
                let parts: Vec<&str> = b.split(':').collect();
                if parts.len() >= 2 && parts[0].starts_with('/') {
                    let mode = parts.get(2).copied().unwrap_or("");
                    let ro = mode.split(',').any(|m| m == "ro");
                    let dest = clean(parts[1]);
                    out.retain(|o| o.destination != dest);
                    out.push(VolumeMount {
                        kind: "bind".into(),
                        name: String::new(),
                        source: parts[0].to_string(),
                        destination: dest,
                        rw: if force_ro { false } else { force_rw || !ro },
                        mode: mode.to_string(),
                        nocopy: true,
                    });
                }
            }
        }
        // Explicit mounts: -v volumes and --mount type=volume; destinations of every explicit
        // mount (host binds and tmpfs too) may appear once.
        let mut wants: Vec<Want> = Vec::new();
        let mut explicit: Vec<String> = Vec::new();
        for b in hc.binds.iter().flatten() {
            match parse_bind(b)? {
                Some(vb) => {
                    explicit.push(vb.destination.clone());
                    wants.push(Want {
                        bind: vb,
                        opts: BTreeMap::new(),
                        labels: BTreeMap::new(),
                    });
                }
                None => {
                    if let Some(d) = b.split(':').nth(1) {
                        explicit.push(clean(d));
                    }
                }
            }
        }
        for m in hc.mounts.iter().flatten() {
            if m.typ == Some(berth_types::api::MountType::VOLUME) {
                let vb = api_volume(m)?;
                let vo = m.volume_options.clone().unwrap_or_default();
                explicit.push(vb.destination.clone());
                wants.push(Want {
                    bind: vb,
                    opts: vo
                        .driver_config
                        .and_then(|d| d.options)
                        .unwrap_or_default()
                        .into_iter()
                        .collect(),
                    labels: vo.labels.unwrap_or_default().into_iter().collect(),
                });
            } else if let Some(t) = m.target.as_deref() {
                explicit.push(clean(t));
            }
        }
        for t in hc.tmpfs.iter().flatten().map(|(k, _)| clean(k)) {
            explicit.push(t);
        }
        let mut seen = std::collections::HashSet::new();
        for d in &explicit {
            if !seen.insert(d.clone()) {
                return Err(VolumeError::Duplicate(d.clone()).into());
            }
        }
        // The config's volumes (image VOLUME, `-v /path`) that nothing else covers.
        for p in config_volumes {
            let d = clean(p);
            if !explicit.contains(&d) && !out.iter().any(|o| o.destination == d) {
                explicit.push(d.clone());
                wants.push(Want {
                    bind: VolumeBind {
                        name: None,
                        destination: d,
                        rw: true,
                        nocopy: false,
                        mode: String::new(),
                    },
                    opts: BTreeMap::new(),
                    labels: BTreeMap::new(),
                });
            }
        }
        for w in wants {
            let (rec, new) =
                self.volumes
                    .create(w.bind.name.as_deref(), "local", &w.opts, &w.labels)?;
            if new {
                made.push(rec.name.clone());
                self.events.emit(
                    "volume",
                    "create",
                    &rec.name,
                    BTreeMap::from([("driver".to_string(), rec.driver.clone())]),
                );
            }
            out.retain(|o| o.destination != w.bind.destination);
            out.push(VolumeMount {
                kind: "volume".into(),
                source: self.volumes.source(&rec).display().to_string(),
                name: rec.name,
                destination: w.bind.destination,
                rw: w.bind.rw,
                mode: w.bind.mode,
                nocopy: w.bind.nocopy,
            });
        }
        Ok(())
    }

    /// After a container's removal: its anonymous volumes go (`rm -v`, `--rm`) unless another
    /// container uses them too. Named volumes stay.
    pub async fn volumes_release(&self, rec: &Record) {
        if !rec.volumes.iter().any(|v| v.kind == "volume") {
            return;
        }
        let _op = self.volumes.op.lock().await;
        for v in rec.volumes.iter().filter(|v| v.kind == "volume") {
            let Ok(vr) = self.volumes.get(&v.name) else {
                continue;
            };
            if !vr.anonymous() || !self.volume_users(&v.name).is_empty() {
                continue;
            }
            if self.volumes.delete(&v.name).is_ok() {
                self.events
                    .emit("volume", "destroy", &v.name, BTreeMap::new());
            }
        }
    }

    /// `POST /volumes/create`.
    pub async fn volume_create(
        &self,
        name: &str,
        driver: &str,
        opts: &BTreeMap<String, String>,
        labels: &BTreeMap<String, String>,
    ) -> Result<VolRecord, EngineError> {
        let _op = self.volumes.op.lock().await;
        let (rec, new) =
            self.volumes
                .create(Some(name).filter(|n| !n.is_empty()), driver, opts, labels)?;
        if new {
            self.events.emit(
                "volume",
                "create",
                &rec.name,
                BTreeMap::from([("driver".to_string(), rec.driver.clone())]),
            );
        }
        Ok(rec)
    }

    /// `DELETE /volumes/{name}`: refused while any container uses it; `force` ignores only a
    /// missing volume (as Docker).
    pub async fn volume_remove(&self, name: &str, force: bool) -> Result<(), EngineError> {
        let _op = self.volumes.op.lock().await;
        if let Err(e) = self.volumes.get(name) {
            if force && matches!(e, VolumeError::NotFound(_)) {
                return Ok(());
            }
            return Err(e.into());
        }
        let users = self.volume_users(name);
        if !users.is_empty() {
            return Err(VolumeError::InUse(name.to_string(), users.join(" ")).into());
        }
        self.volumes.delete(name)?;
        self.events.emit("volume", "destroy", name, BTreeMap::new());
        Ok(())
    }

    /// `POST /volumes/prune`: unused volumes matching the label filters; only anonymous
    /// ones unless `all` (Docker ≥ 23). Returns the names and the bytes freed.
    pub async fn volume_prune(
        &self,
        all: bool,
        f: &HashMap<String, Vec<String>>,
    ) -> Result<(Vec<String>, u64), EngineError> {
        for k in f.keys() {
            if !matches!(k.as_str(), "label" | "label!" | "all") {
                return Err(EngineError::invalid(format!("invalid filter '{k}'")));
            }
        }
        let _op = self.volumes.op.lock().await;
        let mut gone = Vec::new();
        let mut space = 0u64;
        for v in self.volumes.list()? {
            if (!all && !v.anonymous())
                || !labels_match(&v.labels, f.get("label").map(Vec::as_slice).unwrap_or(&[]))
                || f.get("label!").is_some_and(|ls| {
                    ls.iter()
                        .any(|l| labels_match(&v.labels, std::slice::from_ref(l)))
                })
                || !self.volume_users(&v.name).is_empty()
            {
                continue;
            }
            let size = if v.bind_device().is_some() {
                0
            } else {
                dir_size(&self.volumes.mountpoint(&v.name))
            };
            if self.volumes.delete(&v.name).is_ok() {
                space += size;
                self.events
                    .emit("volume", "destroy", &v.name, BTreeMap::new());
                gone.push(v.name);
            }
        }
        Ok((gone, space))
    }

    /// The `Volumes` of `GET /system/df`: each with `UsageData` (Size, RefCount). Blocking.
    pub fn df_volumes(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for v in self.volumes.list().unwrap_or_default() {
            let mut j = volume_json(&self.volumes, &v);
            let size = dir_size(&self.volumes.source(&v));
            j["UsageData"] = json!({
                "Size": size,
                "RefCount": self.volume_users(&v.name).len(),
            });
            out.push(j);
        }
        out
    }

    /// Copies the image's content at each volume's destination into volumes still empty
    /// (Docker's copy-up), with the container's rootfs mounted at `rootfs`. Blocking.
    pub fn volumes_copy_up(&self, rec: &Record, rootfs: &Path) -> Result<(), EngineError> {
        for v in rec
            .volumes
            .iter()
            .filter(|v| v.kind == "volume" && !v.nocopy)
        {
            copyup::copy_up(rootfs, &v.destination, Path::new(&v.source)).map_err(|e| {
                EngineError::internal(format!(
                    "copy the image's content of {} into volume {}: {e}",
                    v.destination, v.name
                ))
            })?;
        }
        Ok(())
    }
}

/// Docker's `label` filter: every `key` or `key=value` holds.
pub fn labels_match(have: &BTreeMap<String, String>, want: &[String]) -> bool {
    want.iter().all(|l| match l.split_once('=') {
        Some((k, v)) => have.get(k).is_some_and(|x| x == v),
        None => have.contains_key(l.as_str()),
    })
}

/// Docker's inspect `Mounts` (and the list's): the container's volumes, then its host binds
/// (`-v /host:/ctr`, `--mount type=bind`).
pub fn mounts_json(r: &Record) -> Vec<Value> {
    let mut out = volume_mounts_json(r);
    for b in r.host_config.binds.iter().flatten() {
        let parts: Vec<&str> = b.split(':').collect();
        if parts.len() < 2 || !parts[0].starts_with('/') {
            continue;
        }
        let mode = parts.get(2).copied().unwrap_or("");
        let prop = mode
            .split(',')
            .find(|m| m.ends_with("private") || m.ends_with("shared") || m.ends_with("slave"))
            .unwrap_or("rprivate");
        out.push(json!({
            "Type": "bind",
            "Source": parts[0],
            "Destination": parts[1],
            "Mode": mode,
            "RW": !mode.split(',').any(|m| m == "ro"),
            "Propagation": prop,
        }));
    }
    for m in r.host_config.mounts.iter().flatten() {
        if m.typ != Some(berth_types::api::MountType::BIND) {
            continue;
        }
        let prop = m
            .bind_options
            .as_ref()
            .and_then(|b| b.propagation)
            .map(|p| p.to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "rprivate".into());
        out.push(json!({
            "Type": "bind",
            "Source": m.source.clone().unwrap_or_default(),
            "Destination": m.target.clone().unwrap_or_default(),
            "Mode": "",
            "RW": m.read_only != Some(true),
            "Propagation": prop,
        }));
    }
    out
}

fn volume_mounts_json(r: &Record) -> Vec<Value> {
    r.volumes
        .iter()
        .map(|v| {
            if v.kind == "volume" {
                json!({
                    "Type": "volume",
                    "Name": v.name,
                    "Source": v.source,
                    "Destination": v.destination,
                    "Driver": "local",
                    "Mode": v.mode,
                    "RW": v.rw,
                    "Propagation": "",
                })
            } else {
                json!({
                    "Type": "bind",
                    "Source": v.source,
                    "Destination": v.destination,
                    "Mode": v.mode,
                    "RW": v.rw,
                    "Propagation": "rprivate",
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shapes_are_dockers() {
        let dir = tempfile::tempdir().unwrap();
        let v = Volumes::open(&Config::for_data_root(dir.path())).unwrap();
        let none = BTreeMap::new();
        let (r, _) = v.create(Some("data"), "", &none, &none).unwrap();
        let j = volume_json(&v, &r);
        let keys: Vec<&str> = j.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "CreatedAt",
                "Driver",
                "Labels",
                "Mountpoint",
                "Name",
                "Options",
                "Scope"
            ]
        );
        assert!(j["Labels"].is_null() && j["Options"].is_null());
        assert_eq!(j["Scope"], "local");
        assert_eq!(
            j["CreatedAt"].as_str().unwrap().len(),
            "2026-11-22T06:29:21Z".len()
        );
        let mut rec: Record = serde_json::from_value(json!({
            "id": "c", "name": "n", "created": "", "image": "", "image_id": "",
            "config": {}, "host_config": {"Binds": ["/tmp:/h:ro", "data:/data"]},
            "path": "true", "args": [], "state": {
                "status": "created", "pid": 0, "exit_code": 0, "error": "",
                "started_at": "", "finished_at": "", "oom_killed": false
            }
        }))
        .unwrap();
        rec.volumes.push(VolumeMount {
            kind: "volume".into(),
            name: "data".into(),
            source: "/s".into(),
            destination: "/data".into(),
            rw: true,
            mode: "z".into(),
            nocopy: false,
        });
        let m = mounts_json(&rec);
        assert_eq!(
            m[0],
            json!({"Type": "volume", "Name": "data", "Source": "/s", "Destination": "/data",
                   "Driver": "local", "Mode": "z", "RW": true, "Propagation": ""})
        );
        assert_eq!(
            m[1],
            json!({"Type": "bind", "Source": "/tmp", "Destination": "/h", "Mode": "ro",
                   "RW": false, "Propagation": "rprivate"})
        );
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn names_follow_docker_rules() {
        assert!(valid_name("data"));
        assert!(valid_name("a1_b.c-d"));
        assert!(!valid_name("a"));
        assert!(!valid_name("_a"));
        assert!(!valid_name("../x"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
        assert_eq!(anonymous_name().len(), 64);
    }

    #[test]
    fn bind_specs_parse_like_docker() {
        assert_eq!(parse_bind("/host:/ctr").unwrap(), None);
        let v = parse_bind("/data").unwrap().unwrap();
        assert_eq!(
            (v.name, v.destination.as_str(), v.rw),
            (None, "/data", true)
        );
        let v = parse_bind("vol:/x/../y:ro,nocopy").unwrap().unwrap();
        assert_eq!(v.name.as_deref(), Some("vol"));
        assert_eq!(v.destination, "/y");
        assert!(!v.rw && v.nocopy);
        assert_eq!(parse_bind("vol:/y").unwrap().unwrap().mode, "z");
        assert!(matches!(
            parse_bind("rel/path:/x"),
            Err(VolumeError::BadName(_))
        ));
        assert!(matches!(
            parse_bind("../x:/y"),
            Err(VolumeError::BadName(_))
        ));
        assert!(parse_bind("vol:rel").is_err());
        assert!(parse_bind("vol:/").is_err());
        assert!(parse_bind("vol:/x:ro,rw").is_err());
        assert!(parse_bind("vol:/x:bogus").is_err());
        assert!(parse_bind("a:b:c:d").is_err());
        assert!(parse_bind("/x:ro").is_err());
        assert_eq!(clean("/a//b/./c/../d"), "/a/b/d");
        assert_eq!(clean("/../.."), "/");
    }

    #[test]
    fn local_options_are_checked() {
        let o = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(check_local_opts("v", &o(&[])).is_ok());
        let e = check_local_opts("v", &o(&[("foo", "1")])).unwrap_err();
        assert_eq!(e.to_string(), "create v: invalid option: \"foo\"");
        assert!(check_local_opts(
            "v",
            &o(&[("type", "none"), ("o", "bind"), ("device", "/tmp")])
        )
        .is_ok());
        assert!(check_local_opts(
            "v",
            &o(&[("type", "nfs"), ("o", "addr=1"), ("device", ":/x")])
        )
        .is_err());
        assert!(check_local_opts(
            "v",
            &o(&[("type", "none"), ("o", "bind"), ("device", "rel")])
        )
        .is_err());
        assert!(check_local_opts("v", &o(&[("type", "none"), ("o", "bind")])).is_err());
        assert!(check_local_opts(
            "v",
            &o(&[
                ("type", "none"),
                ("o", "bind"),
                ("device", "/nonexistent-berth")
            ])
        )
        .is_err());
        assert!(check_local_opts("v", &o(&[("size", "x")])).is_err());
    }

    #[test]
    fn volumes_are_made_reused_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::for_data_root(dir.path());
        let v = Volumes::open(&cfg).unwrap();
        let none = BTreeMap::new();
        let (a, new) = v.create(Some("data"), "", &none, &none).unwrap();
        assert!(new && a.driver == "local" && !a.anonymous());
        assert!(v.mountpoint("data").is_dir());
        let (b, new) = v.create(Some("data"), "local", &none, &none).unwrap();
        assert!(!new && a == b);
        let (anon, _) = v.create(None, "", &none, &none).unwrap();
        assert!(anon.anonymous() && anon.name.len() == 64);
        assert!(matches!(
            v.create(Some("x/y"), "", &none, &none),
            Err(VolumeError::BadName(_))
        ));
        assert!(matches!(
            v.create(Some("zz"), "nfs", &none, &none),
            Err(VolumeError::UnknownDriver(..))
        ));
        let bad = BTreeMap::from([("o".to_string(), "bind".to_string())]);
        assert!(v.create(Some("zz"), "", &bad, &none).is_err());
        assert!(!dir.path().join("volumes/zz").exists());
        v.delete("data").unwrap();
        assert!(!dir.path().join("volumes/data").exists());
        // A directory left by a crash before its record: gone at the next open.
        std::fs::create_dir_all(dir.path().join("volumes/orphan/_data")).unwrap();
        std::fs::create_dir_all(dir.path().join("volumes/kept/_data/x")).unwrap();
        drop(v);
        let v = Volumes::open(&cfg).unwrap();
        assert!(!dir.path().join("volumes/orphan").exists());
        assert!(dir.path().join("volumes/kept/_data/x").exists());
        assert!(v.get(&anon.name).is_ok());
        assert!(matches!(v.get("data"), Err(VolumeError::NotFound(_))));
    }
}
