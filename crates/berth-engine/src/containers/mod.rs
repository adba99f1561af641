//! Containers: a container is a record (SQLite, [`store`]), a task is its live process run by
//! one berth-shim ([`shim`]). The lifecycle verbs ([`lifecycle`]) change records and talk to
//! shims; the OCI spec of a run is built from the image config and the create request
//! ([`spec`]). HTTP never reaches this far: the API module turns requests into these calls.

pub mod archive;
pub mod exec;
pub mod health;
pub mod janitor;
pub mod lifecycle;
pub mod prestart;
pub mod shim;
pub mod spec;
pub mod stats;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use berth_types::api::{ContainerConfig, Health, HostConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::config::Config;
use crate::error::EngineError;
use store::Store;

/// Docker's zero time, which it shows for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
    /// Has a live task (a shim and an init).
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// The state part of a record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    pub oom_killed: bool,
    #[serde(default)]
    pub health: Option<Health>,
}

impl Default for RunState {
    fn default() -> Self {
        Self {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.to_string(),
            finished_at: ZERO_TIME.to_string(),
            oom_killed: false,
            health: None,
        }
    }
}

/// A container as stored: what was asked (merged with the image's defaults) and where it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    /// Without Docker's leading slash.
    pub name: String,
    pub created: String,
    /// The image as the user named it.
    pub image: String,
    /// `sha256:…`
    pub image_id: String,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub path: String,
    pub args: Vec<String>,
    pub state: RunState,
    #[serde(default)]
    pub restart_count: i64,
    /// Stopped by a user (stop, kill): restart policies other than `always` leave it stopped.
    #[serde(default)]
    pub manually_stopped: bool,
    #[serde(default)]
    pub has_been_started: bool,
    /// The networks asked for, by network name: IPAM config, aliases, MAC (what `create` and
    /// `network connect` stored; bridge modes only).
    #[serde(default)]
    pub net_config: std::collections::BTreeMap<String, berth_types::api::EndpointSettings>,
    /// While running: each network's live endpoint (address, gateway, MAC, endpoint id).
    #[serde(default)]
    pub net_live: std::collections::BTreeMap<String, berth_types::api::EndpointSettings>,
    /// While running: the published ports as bound ("80/tcp" → host bindings).
    #[serde(default)]
    pub ports_live: std::collections::BTreeMap<String, Vec<berth_types::api::PortBinding>>,
    /// While running in its own network namespace: the namespace file.
    #[serde(default)]
    pub sandbox_key: String,
    /// The volumes (and `--volumes-from` binds) resolved at create, mounted at each start.
    #[serde(default)]
    pub volumes: Vec<crate::volumes::VolumeMount>,
}

impl Record {
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }
    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }
    /// Attributes of this container's events.
    pub fn event_attrs(&self) -> std::collections::BTreeMap<String, String> {
        let mut a = std::collections::BTreeMap::new();
        a.insert("name".to_string(), self.name.clone());
        a.insert("image".to_string(), self.image.clone());
        for (k, v) in self.config.labels.iter().flatten() {
            a.insert(k.clone(), v.clone());
        }
        a
    }
}

/// A container held in memory: its record, a change counter waiters watch, and a lock that
/// serializes lifecycle operations on it.
pub struct Entry {
    rec: Mutex<Record>,
    pub changed: watch::Sender<u64>,
    pub op: tokio::sync::Mutex<()>,
    /// How many exits the monitor has recorded (waiters for "next-exit" compare it).
    pub exits: std::sync::atomic::AtomicU64,
    /// Set once the container is removed (waiters for "removed").
    pub removed: std::sync::atomic::AtomicBool,
    /// Attach requests made before start: each gets the shim's socket path and answers once
    /// it has connected, so that no output is lost.
    pub pending_attach: Mutex<Vec<tokio::sync::oneshot::Sender<PendingStart>>>,
    /// A pre-started container's init pid ([`prestart`]): its shim is up and its init waits in
    /// its namespaces, so the first start only sends the start request (0: none).
    pub warm_pid: std::sync::atomic::AtomicI32,
    /// What makes another container like this one, for a `--rm` container that may be run
    /// again ([`prestart::Seed`]).
    pub seed: Mutex<Option<prestart::Seed>>,
}

/// What a start hands to an attach that waited for it.
pub struct PendingStart {
    pub socket: PathBuf,
    pub connected: tokio::sync::oneshot::Sender<()>,
}

impl Entry {
    pub(crate) fn new(r: Record) -> Arc<Self> {
        Arc::new(Self {
            rec: Mutex::new(r),
            changed: watch::channel(0).0,
            op: tokio::sync::Mutex::new(()),
            exits: std::sync::atomic::AtomicU64::new(0),
            removed: std::sync::atomic::AtomicBool::new(false),
            pending_attach: Mutex::new(Vec::new()),
            warm_pid: std::sync::atomic::AtomicI32::new(0),
            seed: Mutex::new(None),
        })
    }
    /// The record (a short lock: never held across an await).
    pub fn rec(&self) -> MutexGuard<'_, Record> {
        self.rec.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn snapshot(&self) -> Record {
        self.rec().clone()
    }
    /// Tells waiters that something changed.
    pub fn notify(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
}

/// The container service: records and the paths of their parts.
pub struct Containers {
    pub store: Store,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// `<data root>/containers`: per container the snapshot, config.json, log, hosts files.
    pub root: PathBuf,
    /// The OCI runtime's state root (`<exec root>/runtime`).
    pub state_root: PathBuf,
    /// Shim directories (`<exec root>/s/<short id>`).
    pub shims_root: PathBuf,
    pub snapshotter: berth_image::Snapshotter,
    /// Exec instances by id.
    pub execs: Mutex<HashMap<String, Arc<exec::Exec>>>,
    /// The default seccomp profile converted per capability set (conversion costs ms).
    seccomp_cache: Mutex<HashMap<Vec<String>, Option<serde_json::Value>>>,
    /// Compiled filters (`seccomp.bpf` files) by the fingerprint of their seccomp section.
    bpf_cache: Mutex<HashMap<[u8; 32], Arc<Vec<u8>>>>,
    /// Pre-started containers for `run --rm` done again and again.
    pub prestart: prestart::Pool,
    /// Removed containers' teardown, at the lowest priority.
    pub janitor: janitor::Janitor,
}

/// Docker's default seccomp profile (policy is data: see profiles/README.md).
const DEFAULT_SECCOMP: &[u8] = include_bytes!("../../profiles/seccomp.json");

impl Containers {
    pub fn open(config: &Config) -> Result<Self, EngineError> {
        let root = config.data_root.join("containers");
        let state_root = config.exec_root.join("runtime");
        let shims_root = config.exec_root.join("s");
        for d in [&root, &state_root, &shims_root] {
            std::fs::create_dir_all(d)
                .map_err(|e| EngineError::internal(format!("create {}: {e}", d.display())))?;
        }
        let snapshotter = berth_image::Snapshotter::open(&config.data_root)
            .map_err(|e| EngineError::internal(e.to_string()))?;
        let store = Store::open(&config.data_root.join("containers.db"))?;
        // Directories that berth versions before moved aside at removal and a crash left.
        let trash = root.join(".trash");
        if trash.is_dir() {
            for ent in std::fs::read_dir(&trash).into_iter().flatten().flatten() {
                purge(&ent.path());
            }
            let _ = std::fs::remove_dir(&trash);
        }
        let mut entries = HashMap::new();
        for r in store.all()? {
            entries.insert(r.id.clone(), Entry::new(r));
        }
        // Containers that never reached the store: pre-started ones of a daemon that died, or
        // a create cut short by a crash. Their init, cgroups, mounts and files go, in the
        // background (a killed init leaves its cgroup only once its shim reaped it).
        let orphans: Vec<String> = std::fs::read_dir(&root)
            .into_iter()
            .flatten()
            .flatten()
            .map(|ent| ent.file_name().to_string_lossy().into_owned())
            .filter(|name| {
                name.len() == 64
                    && name.bytes().all(|b| b.is_ascii_hexdigit())
                    && !entries.contains_key(name)
            })
            .collect();
        if !orphans.is_empty() {
            let (root, state_root, shims_root) =
                (root.clone(), state_root.clone(), shims_root.clone());
            std::thread::spawn(move || {
                for name in orphans {
                    if let Ok(c) = berth_runtime::Container::load(&state_root, &name) {
                        // A pre-started one runs at nice 19: its shim would wait for the CPU.
                        if c.state.pid > 1 && c.init_alive() {
                            lifecycle::unnice(c.state.pid);
                        }
                        let _ = c.delete(true);
                    }
                    let _ = std::fs::remove_dir_all(shims_root.join(&name[..12]));
                    purge(&root.join(&name));
                }
            });
        }
        Ok(Self {
            store,
            entries: Mutex::new(entries),
            root,
            state_root,
            shims_root,
            snapshotter,
            execs: Mutex::new(HashMap::new()),
            seccomp_cache: Mutex::new(HashMap::new()),
            bpf_cache: Mutex::new(HashMap::new()),
            prestart: prestart::Pool::new(config.prestart),
            janitor: janitor::Janitor::default(),
        })
    }

    /// Writes `<bundle>/seccomp.bpf` for the spec's seccomp section (compiled once per section
    /// and cached), or removes a stale one; the runtime then skips compiling.
    pub fn write_bpf(
        &self,
        bundle: &std::path::Path,
        spec: &serde_json::Value,
    ) -> Result<(), EngineError> {
        use berth_runtime::seccomp::cache;
        let path = bundle.join(cache::FILE);
        let Some(section) = spec.get("linux").and_then(|l| l.get("seccomp")) else {
            let _ = std::fs::remove_file(&path);
            return Ok(());
        };
        let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(section.clone())
            .map_err(|e| EngineError::invalid(format!("seccomp profile: {e}")))?;
        let fp = cache::fingerprint(&s);
        let cached = self
            .bpf_cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fp)
            .cloned();
        let bytes = match cached {
            Some(b) => b,
            None => {
                let p = berth_runtime::seccomp::compile(&s)
                    .map_err(|e| EngineError::invalid(format!("seccomp profile: {e}")))?;
                let b = Arc::new(cache::encode(&s, &p));
                let mut c = self.bpf_cache.lock().unwrap_or_else(|p| p.into_inner());
                if c.len() > 64 {
                    c.clear();
                }
                c.insert(fp, b.clone());
                b
            }
        };
        std::fs::write(&path, bytes.as_slice())
            .map_err(|e| EngineError::internal(format!("write {}: {e}", path.display())))
    }

    /// The `linux.seccomp` of a run: the default profile for these capabilities (cached), a
    /// given profile, or none.
    pub fn seccomp_for(
        &self,
        choice: &spec::Seccomp,
        caps: &[String],
    ) -> Result<Option<serde_json::Value>, EngineError> {
        let convert = |json: &[u8]| -> Result<Option<serde_json::Value>, EngineError> {
            let s = berth_runtime::seccomp::from_docker_profile(
                json,
                caps,
                berth_runtime::seccomp::native_arch(),
            )
            .map_err(|e| EngineError::invalid(format!("seccomp profile: {e}")))?;
            serde_json::to_value(s)
                .map(Some)
                .map_err(|e| EngineError::internal(format!("seccomp profile: {e}")))
        };
        match choice {
            spec::Seccomp::Unconfined => Ok(None),
            spec::Seccomp::Profile(p) => convert(p.as_bytes()),
            spec::Seccomp::Default => {
                let mut key = caps.to_vec();
                key.sort();
                if let Some(v) = self
                    .seccomp_cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&key)
                {
                    return Ok(v.clone());
                }
                let v = convert(DEFAULT_SECCOMP)?;
                self.seccomp_cache
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, v.clone());
                Ok(v)
            }
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a new record (names unique) and holds it.
    pub fn insert(&self, r: Record) -> Result<Arc<Entry>, EngineError> {
        self.store.insert(&r)?;
        let id = r.id.clone();
        let e = Entry::new(r);
        self.map().insert(id, e.clone());
        Ok(e)
    }

    /// Stores a record held by an entry made before (a pre-started container being claimed).
    pub fn insert_entry(&self, e: &Arc<Entry>) -> Result<(), EngineError> {
        let r = e.snapshot();
        self.store.insert(&r)?;
        self.map().insert(r.id.clone(), e.clone());
        Ok(())
    }

    /// Saves an entry's record.
    pub fn save(&self, e: &Entry) -> Result<(), EngineError> {
        let r = e.snapshot();
        self.store.update(&r)?;
        e.notify();
        Ok(())
    }

    /// Forgets a container (its files are the caller's).
    pub fn forget(&self, id: &str) -> Result<(), EngineError> {
        self.store.delete(id)?;
        if let Some(e) = self.map().remove(id) {
            e.notify();
        }
        Ok(())
    }

    /// All containers, oldest first.
    pub fn list(&self) -> Vec<Arc<Entry>> {
        let mut v: Vec<_> = self.map().values().cloned().collect();
        v.sort_by(|a, b| a.rec().created.cmp(&b.rec().created));
        v
    }

    /// Finds a container by full id, name (with or without the slash) or unique id prefix.
    pub fn get(&self, key: &str) -> Result<Arc<Entry>, EngineError> {
        let not_found = || EngineError::not_found(format!("No such container: {key}"));
        if key.is_empty() {
            return Err(not_found());
        }
        let map = self.map();
        if let Some(e) = map.get(key) {
            return Ok(e.clone());
        }
        let name = key.strip_prefix('/').unwrap_or(key);
        if let Some(e) = map.values().find(|e| e.rec().name == name) {
            return Ok(e.clone());
        }
        let mut found = map.iter().filter(|(id, _)| id.starts_with(key));
        match (found.next(), found.next()) {
            (Some((_, e)), None) => Ok(e.clone()),
            (Some(_), Some(_)) => Err(EngineError::invalid(format!(
                "multiple IDs found with provided prefix: {key}"
            ))),
            _ => Err(not_found()),
        }
    }

    /// Containers made from an image: (id, running).
    pub fn using_image(&self, image_id: &str) -> Vec<(String, bool)> {
        self.map()
            .values()
            .filter_map(|e| {
                let r = e.rec();
                (r.image_id == image_id).then(|| (r.id.clone(), r.state.status.is_live()))
            })
            .collect()
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }
    pub fn shim_dir(&self, id: &str) -> PathBuf {
        self.shims_root.join(&id[..12.min(id.len())])
    }
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(format!("{id}-json.log"))
    }
}

/// Deletes a removed container's directory: unmounts its rootfs first (lazily), and deletes
/// nothing while anything is still mounted there.
pub fn purge(dir: &std::path::Path) {
    let rootfs = dir.join("rootfs");
    if berth_image::snapshot::is_mount_point(&rootfs) {
        let _ = rustix::mount::unmount(&rootfs, rustix::mount::UnmountFlags::DETACH);
        if berth_image::snapshot::is_mount_point(&rootfs) {
            return;
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A new random 64-hex id.
pub fn new_id() -> String {
    let mut b = [0u8; 32];
    if rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).is_err() {
        // No entropy source: the time and pid still make a unique id here.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b[..16].copy_from_slice(&t.to_le_bytes());
        b[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Docker's random names: adjective_surname.
pub fn random_name(id: &str) -> String {
    const LEFT: &[&str] = &[
        "admiring",
        "brave",
        "clever",
        "dazzling",
        "eager",
        "focused",
        "gallant",
        "happy",
        "jolly",
        "keen",
        "loving",
        "modest",
        "nifty",
        "optimistic",
        "peaceful",
        "quirky",
        "relaxed",
        "serene",
        "tender",
        "upbeat",
        "vibrant",
        "wizardly",
        "youthful",
        "zealous",
    ];
    const RIGHT: &[&str] = &[
        "albattani",
        "babbage",
        "curie",
        "darwin",
        "euclid",
        "fermat",
        "galileo",
        "hopper",
        "johnson",
        "kepler",
        "lovelace",
        "mayer",
        "newton",
        "noether",
        "pascal",
        "ritchie",
        "shannon",
        "tesla",
        "turing",
        "volta",
        "wilson",
        "yalow",
        "zhukovsky",
        "lamport",
    ];
    let n = u64::from_str_radix(&id[..12.min(id.len())], 16).unwrap_or(0);
    format!(
        "{}_{}",
        LEFT[(n % LEFT.len() as u64) as usize],
        RIGHT[((n / 97) % RIGHT.len() as u64) as usize]
    )
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_docker_rules() {
        assert!(valid_name("web"));
        assert!(valid_name("a.b-c_d"));
        assert!(!valid_name("a"));
        assert!(!valid_name("-x"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("../etc"));
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert!(valid_name(&random_name(&id)));
    }
}
