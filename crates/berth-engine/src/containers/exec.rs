//! Exec instances (`docker exec`): created by `POST /containers/{id}/exec`, run by
//! `POST /exec/{id}/start` through a short-lived berth-shim in exec mode, inspected by
//! `GET /exec/{id}/json`. berthd writes the OCI `process`, the exec shim runs it in the
//! container's namespaces and records its exit.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use berth_runtime::shim::{ExitRecord, Request};
use berth_types::api::ExecConfig;
use serde_json::json;

use super::{new_id, shim, spec, Entry};
use crate::daemon::Daemon;
use crate::error::EngineError;

/// The state of one exec instance.
#[derive(Debug, Clone, Default)]
pub struct ExecState {
    pub running: bool,
    pub started: bool,
    pub exit_code: Option<i64>,
    pub pid: i64,
}

/// One exec instance.
pub struct Exec {
    pub id: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub state: Mutex<ExecState>,
    pub changed: tokio::sync::watch::Sender<u64>,
}

impl Exec {
    pub fn state(&self) -> ExecState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    fn set(&self, f: impl FnOnce(&mut ExecState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.send_modify(|n| *n += 1);
    }
    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }
}

impl Daemon {
    /// `POST /containers/{id}/exec`.
    pub fn exec_create(&self, key: &str, config: ExecConfig) -> Result<String, EngineError> {
        let e = self.containers.get(key)?;
        let rec = e.snapshot();
        if !rec.state.status.is_live() {
            return Err(EngineError::conflict(format!(
                "container {} is not running",
                rec.id
            )));
        }
        if rec.state.status == super::Status::Paused {
            return Err(EngineError::conflict(format!(
                "container {} is paused, unpause the container before exec",
                rec.id
            )));
        }
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(EngineError::invalid("No exec command specified"));
        }
        let id = new_id();
        let ex = Arc::new(Exec {
            id: id.clone(),
            container_id: rec.id.clone(),
            config,
            state: Mutex::new(ExecState::default()),
            changed: tokio::sync::watch::channel(0).0,
        });
        self.containers
            .execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), ex);
        let mut attrs = rec.event_attrs();
        attrs.insert("execID".into(), id.clone());
        self.events.emit("container", "exec_create", &rec.id, attrs);
        Ok(id)
    }

    pub fn exec_get(&self, id: &str) -> Result<Arc<Exec>, EngineError> {
        self.containers
            .execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::not_found(format!("No such exec instance: {id}")))
    }

    /// Starts the exec's shim (process not yet started); returns its directory.
    pub async fn exec_prepare(self: &Arc<Self>, ex: &Arc<Exec>) -> Result<PathBuf, EngineError> {
        {
            let mut st = ex.state.lock().unwrap_or_else(|p| p.into_inner());
            if st.started {
                return Err(EngineError::conflict(format!(
                    "Error: Exec command {} has already run",
                    ex.id
                )));
            }
            st.started = true;
        }
        let e = self.containers.get(&ex.container_id)?;
        let rec = e.snapshot();
        if rec.state.status != super::Status::Running {
            return Err(EngineError::conflict(format!(
                "container {} is not running",
                rec.id
            )));
        }
        let dir = self.config.exec_root.join("x").join(&ex.id[..12]);
        let process = self.exec_process(&e, ex)?;
        let d = self.clone();
        let ex2 = ex.clone();
        let dir2 = dir.clone();
        tokio::task::spawn_blocking(move || -> Result<(), EngineError> {
            let _ = std::fs::remove_dir_all(&dir2);
            std::fs::create_dir_all(&dir2)
                .map_err(|e| EngineError::internal(format!("create {}: {e}", dir2.display())))?;
            let pfile = dir2.join("process.json");
            std::fs::write(&pfile, serde_json::to_vec(&process).unwrap_or_default())
                .map_err(|e| EngineError::internal(format!("write {}: {e}", pfile.display())))?;
            let mut cmd = Command::new(&d.config.shim);
            cmd.arg("--exec")
                .arg("--id")
                .arg(&ex2.container_id)
                .arg("--state-root")
                .arg(&d.containers.state_root)
                .arg("--dir")
                .arg(&dir2)
                .arg("--process")
                .arg(&pfile)
                .arg("--no-start");
            if ex2.tty() {
                cmd.arg("--tty");
            }
            if ex2.config.attach_stdin.unwrap_or(false) {
                cmd.arg("--stdin");
            }
            shim::run_ready(cmd, &d.config.shim)
                .map(drop)
                .map_err(EngineError::from)
        })
        .await
        .map_err(|e| EngineError::internal(e.to_string()))??;
        Ok(dir)
    }

    /// Sends start to a prepared exec shim and follows it to its exit in the background.
    pub async fn exec_run(
        self: &Arc<Self>,
        ex: &Arc<Exec>,
        dir: PathBuf,
    ) -> Result<(), EngineError> {
        let watcher = shim::request(
            &dir,
            &Request::Attach {
                stdin: false,
                stdout: false,
                stderr: false,
            },
        )
        .await
        .ok();
        let started = shim::request(&dir, &Request::Start).await;
        if let Err(err) = started {
            let m = err.to_string();
            let code = if m.contains("permission denied") || m.contains("is a directory") {
                126
            } else {
                127
            };
            ex.set(|s| {
                s.exit_code = Some(code);
                s.running = false;
            });
            let _ = std::fs::remove_dir_all(&dir);
            return Err(EngineError::new(
                berth_types::ErrorKind::InvalidArgument,
                format!("OCI runtime exec failed: exec failed: {m}: unknown"),
            ));
        }
        ex.set(|s| s.running = true);
        let ex = ex.clone();
        let d = self.clone();
        tokio::spawn(async move {
            if let Some(mut w) = watcher {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 64];
                while let Ok(n) = w.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                }
            }
            let exit = ExitRecord::read(&dir).ok().flatten();
            ex.set(|s| {
                s.running = false;
                s.exit_code = Some(exit.as_ref().map_or(255, |x| x.exit_code as i64));
                s.pid = exit.as_ref().map_or(0, |x| x.pid as i64);
            });
            let _ = std::fs::remove_dir_all(&dir);
            if let Ok(e) = d.containers.get(&ex.container_id) {
                let mut attrs = e.rec().event_attrs();
                attrs.insert("execID".into(), ex.id.clone());
                attrs.insert(
                    "exitCode".into(),
                    ex.state().exit_code.unwrap_or(0).to_string(),
                );
                d.events
                    .emit("container", "exec_die", &ex.container_id, attrs);
            }
        });
        Ok(())
    }

    /// The OCI process of an exec: the container's environment and user unless overridden.
    fn exec_process(&self, e: &Arc<Entry>, ex: &Exec) -> Result<serde_json::Value, EngineError> {
        let rec = e.snapshot();
        let cid = berth_types::ContainerId::new(&rec.id)
            .map_err(|e| EngineError::internal(e.to_string()))?;
        let rootfs = self.containers.snapshotter.paths(&cid).rootfs;
        let user_s = ex
            .config
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .or(rec.config.user.clone())
            .unwrap_or_default();
        let user = spec::resolve_user(&rootfs, &user_s)?;
        let host = spec::hostname(&rec);
        let mut env = spec::environment(&rec, &host, &user.home);
        spec::merge_env(&mut env, ex.config.env.iter().flatten());
        if ex.tty() && !env.iter().any(|x| x.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        let privileged =
            ex.config.privileged.unwrap_or(false) || rec.host_config.privileged.unwrap_or(false);
        let caps = spec::capabilities(
            rec.host_config.cap_add.as_deref().unwrap_or(&[]),
            rec.host_config.cap_drop.as_deref().unwrap_or(&[]),
            privileged,
        )?;
        let (eff, perm) = if user.uid == 0 {
            (caps.clone(), caps.clone())
        } else {
            (Vec::new(), Vec::new())
        };
        let (nnp, _) = spec::security_opts(rec.host_config.security_opt.as_deref().unwrap_or(&[]))?;
        let cwd = ex
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .or(rec.config.working_dir.clone().filter(|w| !w.is_empty()))
            .unwrap_or_else(|| "/".into());
        Ok(json!({
            "terminal": ex.tty(),
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
            "args": ex.config.cmd.clone().unwrap_or_default(),
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": eff, "permitted": perm},
            "noNewPrivileges": nnp,
        }))
    }
}
