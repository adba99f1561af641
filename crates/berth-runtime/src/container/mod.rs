//! A container as the OCI lifecycle sees it: a record in the state directory
//! (`<root>/<id>/state.json` plus a copy of its config.json) and a live init process. One
//! lifecycle verb per file; `Status` says which verbs are allowed when.

mod create;
mod delete;
mod exec;
mod kill;
mod pause;
mod ps;
mod start;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

pub use create::CreateOpts;
pub use exec::ExecOpts;
pub use kill::parse_signal;

use crate::cgroups::Cgroup;
use crate::error::{Result, RuntimeError};
use crate::plan::NsPlan;
use crate::sys;

/// Where a container is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
    pub fn can_start(self) -> bool {
        self == Status::Created
    }
    pub fn can_kill(self) -> bool {
        matches!(self, Status::Created | Status::Running | Status::Paused)
    }
    pub fn can_delete(self) -> bool {
        matches!(self, Status::Created | Status::Stopped)
    }
    pub fn can_exec(self) -> bool {
        matches!(self, Status::Created | Status::Running)
    }
    pub fn can_pause(self) -> bool {
        self == Status::Running
    }
    pub fn can_resume(self) -> bool {
        self == Status::Paused
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the runtime persists about a container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    /// The init process's pid on the host, and its start time (to detect pid reuse).
    pub pid: i32,
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time.
    pub created: String,
    /// True once `start` has let the user process run.
    pub started: bool,
    /// Whether the spec has poststart/poststop hooks (so start/delete read it only then).
    #[serde(default)]
    pub has_poststart: bool,
    #[serde(default)]
    pub has_poststop: bool,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup: Option<Cgroup>,
    pub ns: NsPlan,
    #[serde(default)]
    pub owner: String,
}

/// A container loaded from the state directory.
#[derive(Debug, Clone)]
pub struct Container {
    /// `<root>/<id>`.
    pub dir: PathBuf,
    pub state: ContainerState,
}

impl Container {
    /// The state directory of container `id` under the runtime root.
    pub fn dir_of(root: &Path, id: &str) -> Result<PathBuf> {
        let id = berth_types::ContainerId::new(id)?;
        Ok(root.join(id.as_str()))
    }

    /// Loads container `id`.
    pub fn load(root: &Path, id: &str) -> Result<Self> {
        let dir = Self::dir_of(root, id)?;
        let text = match std::fs::read(dir.join("state.json")) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.to_string()))
            }
            Err(e) => return Err(RuntimeError::io("cannot read state of", dir, e)),
        };
        let state = serde_json::from_slice(&text).map_err(|e| {
            RuntimeError::Init(format!(
                "state of container {id} is corrupt ({e}): delete it with `delete --force {id}`"
            ))
        })?;
        Ok(Self { dir, state })
    }

    /// Lists the ids of all containers under `root`.
    pub fn list(root: &Path) -> Result<Vec<String>> {
        let rd = match std::fs::read_dir(root) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RuntimeError::io("cannot list", root, e)),
        };
        let mut ids: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("state.json").exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Writes state.json atomically (temp file, rename). No fsync: run state lives on tmpfs and
    /// does not outlive a reboot, exactly like the processes it describes.
    pub fn save(&self) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        let data = serde_json::to_vec(&self.state)
            .map_err(|e| RuntimeError::Init(format!("cannot encode state: {e}")))?;
        let mut f =
            std::fs::File::create(&tmp).map_err(|e| RuntimeError::io("cannot write", &tmp, e))?;
        f.write_all(&data)
            .map_err(|e| RuntimeError::io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, self.dir.join("state.json"))
            .map_err(|e| RuntimeError::io("cannot write", self.dir.join("state.json"), e))
    }

    /// The spec the container was created with (a copy kept in the state directory).
    pub fn spec(&self) -> Result<Spec> {
        crate::spec::load_spec(&self.dir.join("config.json"))
    }

    /// Whether the init process is still the one we started (not exited, not reaped and reused).
    pub fn init_alive(&self) -> bool {
        self.state.pid > 0
            && sys::pid_start_time(self.state.pid) == Some(self.state.pid_start)
            && !matches!(sys::pid_state(self.state.pid), Some('Z' | 'X') | None)
    }

    /// The current status, from the init process and the cgroup freezer.
    pub fn status(&self) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if !self.state.started {
            return Status::Created;
        }
        if let Some(cg) = &self.state.cgroup {
            if cg.is_frozen().unwrap_or(false) {
                return Status::Paused;
            }
        }
        Status::Running
    }

    pub(crate) fn bad_state(&self, status: Status, what: &str) -> RuntimeError {
        RuntimeError::BadState {
            id: self.state.id.clone(),
            status: status.to_string(),
            what: what.to_string(),
        }
    }

    /// The state as the OCI runtime spec and runc print it.
    pub fn oci_state(&self) -> serde_json::Value {
        let status = self.status();
        let pid = if status == Status::Stopped {
            0
        } else {
            self.state.pid
        };
        let mut v = serde_json::json!({
            "ociVersion": "1.2.0",
            "id": self.state.id,
            "pid": pid,
            "status": status.as_str(),
            "bundle": self.state.bundle,
            "rootfs": self.state.rootfs,
            "created": self.state.created,
            "owner": self.state.owner,
        });
        if !self.state.annotations.is_empty() {
            v["annotations"] = serde_json::json!(self.state.annotations);
        }
        v
    }

    /// The state handed to hooks on stdin.
    pub(crate) fn hook_state(&self, status: Status) -> serde_json::Value {
        serde_json::json!({
            "ociVersion": "1.2.0",
            "id": self.state.id,
            "pid": self.state.pid,
            "status": status.as_str(),
            "bundle": self.state.bundle,
            "annotations": self.state.annotations,
        })
    }
}

/// The current time as RFC 3339 UTC with nanoseconds, e.g. `2026-11-21T23:55:52.123456789Z`.
pub fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_nanos())
}

fn rfc3339(secs: i64, nanos: u32) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_795_305_352, 5), "2026-11-21T23:55:52.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn status_predicates_follow_the_oci_lifecycle() {
        assert!(Status::Created.can_start() && !Status::Running.can_start());
        assert!(Status::Stopped.can_delete() && !Status::Running.can_delete());
        assert!(Status::Paused.can_resume() && Status::Running.can_pause());
        assert!(!Status::Stopped.can_kill() && Status::Created.can_kill());
    }

    #[test]
    fn unknown_and_bad_ids() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            Container::load(d.path(), "nope"),
            Err(RuntimeError::NotFound(_))
        ));
        assert!(matches!(
            Container::load(d.path(), "../x"),
            Err(RuntimeError::BadId(_))
        ));
        assert!(Container::list(&d.path().join("none")).unwrap().is_empty());
    }
}
