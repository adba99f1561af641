//! The lifecycle verbs of containers: create, start, stop, kill, restart, pause, unpause,
//! rename, remove, wait; the monitor that learns each exit from the shim and applies restart
//! policies and auto-remove; and the restore that re-attaches to shims after a daemon restart.
//!
//! Locking: `Entry::op` serializes verbs on one container; the record's own lock is short and
//! never held across an await. The monitor never takes `op` (a stop holding it waits for the
//! monitor to record the exit).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_runtime::shim::{ExitRecord, Request};
use berth_types::api::{ContainerConfig, ContainerCreateBody, HostConfig, RestartPolicyNameEnum};
use berth_types::{ContainerId, ErrorKind};
use serde_json::Value;
use tokio::io::AsyncReadExt;

use super::spec::{self, SpecError};
use super::{new_id, random_name, shim, valid_name, Entry, Record, RunState, Status};
use crate::daemon::Daemon;
use crate::error::EngineError;

/// Default json-file rotation: 10 MB per file, 3 files.
const LOG_MAX_SIZE: u64 = 10 * 1000 * 1000;
const LOG_MAX_FILES: u32 = 3;

impl From<SpecError> for EngineError {
    fn from(e: SpecError) -> Self {
        EngineError::invalid(e.to_string())
    }
}

fn now() -> String {
    berth_runtime::container::rfc3339_now()
}

fn blocking_err(e: tokio::task::JoinError) -> EngineError {
    EngineError::internal(format!("background task failed: {e}"))
}

/// Docker's "not found" message for an image name: the familiar form with its default tag.
fn image_not_found(name: &str) -> EngineError {
    let shown = berth_types::Reference::parse_normalized(name)
        .map(|r| r.with_default_tag().familiar_string())
        .unwrap_or_else(|_| name.to_string());
    EngineError::not_found(format!("No such image: {shown}"))
}

/// Merges the create request with the image's config, as Docker does: the request wins field
/// by field; an entrypoint given in the request drops the image's cmd; env and labels merge.
pub fn merge_config(
    body: &ContainerCreateBody,
    image: Option<&berth_image::image::ContainerConfig>,
) -> ContainerConfig {
    let empty = berth_image::image::ContainerConfig::default();
    let img = image.unwrap_or(&empty);
    let mut env: Vec<String> = img.env.clone().unwrap_or_default();
    spec::merge_env(&mut env, body.env.iter().flatten());
    let entrypoint_given = body.entrypoint.is_some();
    let entrypoint = match &body.entrypoint {
        // `--entrypoint ""` resets the image's entrypoint.
        Some(e) if e.len() == 1 && e[0].is_empty() => None,
        Some(e) => Some(e.clone()),
        None => img.entrypoint.clone(),
    };
    let cmd = match &body.cmd {
        Some(c) if !c.is_empty() => Some(c.clone()),
        _ if entrypoint_given => None,
        _ => img.cmd.clone(),
    };
    let mut labels: std::collections::HashMap<String, String> = img
        .labels
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.extend(body.labels.clone().unwrap_or_default());
    let pick = |a: &Option<String>, b: &Option<String>| match a {
        Some(s) if !s.is_empty() => Some(s.clone()),
        _ => b.clone(),
    };
    // Docker fills what the request's healthcheck leaves out (`--health-interval` alone) from
    // the image's HEALTHCHECK.
    let img_health: Option<berth_types::api::HealthConfig> = img
        .healthcheck
        .as_ref()
        .and_then(|h| serde_json::from_value(h.clone()).ok());
    let healthcheck = match (body.healthcheck.clone(), img_health) {
        (Some(mut b), Some(i)) => {
            if b.test.as_ref().is_none_or(|t| t.is_empty()) {
                b.test = i.test;
            }
            let zero = |v: Option<i64>| v.is_none_or(|x| x == 0);
            if zero(b.interval) {
                b.interval = i.interval;
            }
            if zero(b.timeout) {
                b.timeout = i.timeout;
            }
            if zero(b.start_period) {
                b.start_period = i.start_period;
            }
            if zero(b.retries) {
                b.retries = i.retries;
            }
            Some(b)
        }
        (b, i) => b.or(i),
    };
    let exposed: Option<Vec<String>> = {
        let mut v: Vec<String> = img
            .exposed_ports
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect();
        for p in body.exposed_ports.iter().flatten() {
            if !v.contains(p) {
                v.push(p.clone());
            }
        }
        (!v.is_empty()).then_some(v)
    };
    ContainerConfig {
        hostname: body.hostname.clone(),
        domainname: body.domainname.clone(),
        user: pick(&body.user, &img.user),
        attach_stdin: body.attach_stdin,
        attach_stdout: body.attach_stdout,
        attach_stderr: body.attach_stderr,
        exposed_ports: exposed,
        tty: body.tty,
        open_stdin: body.open_stdin,
        stdin_once: body.stdin_once,
        env: Some(env),
        cmd,
        healthcheck,
        image: body.image.clone(),
        volumes: {
            // The image's VOLUMEs and the request's, each once.
            let mut v: Vec<String> = img
                .volumes
                .iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .collect();
            for p in body.volumes.iter().flatten() {
                if !v.contains(p) {
                    v.push(p.clone());
                }
            }
            (!v.is_empty()).then_some(v)
        },
        working_dir: pick(&body.working_dir, &img.working_dir),
        entrypoint,
        labels: Some(labels),
        stop_signal: pick(&body.stop_signal, &img.stop_signal),
        stop_timeout: body.stop_timeout,
        ..Default::default()
    }
}

/// The restart policy of a record: (name, max retries).
fn restart_policy(hc: &HostConfig) -> (RestartPolicyNameEnum, i64) {
    let p = hc.restart_policy.clone().unwrap_or_default();
    (
        p.name.unwrap_or(RestartPolicyNameEnum::EMPTY),
        p.maximum_retry_count.unwrap_or(0),
    )
}

/// Parses a signal name or number (`SIGTERM`, `TERM`, `15`).
pub fn parse_signal(s: &str) -> Result<i32, EngineError> {
    berth_runtime::container::parse_signal(s)
        .map_err(|_| EngineError::invalid(format!("Invalid signal: {s}")))
}

impl Daemon {
    /// `POST /containers/create`.
    pub async fn container_create(
        self: &Arc<Self>,
        name: Option<String>,
        body: ContainerCreateBody,
    ) -> Result<(String, Vec<String>), EngineError> {
        berth_runtime::timing::mark("create: begin");
        let image_name = body.image.clone().unwrap_or_default();
        if image_name.is_empty() {
            return Err(EngineError::invalid(
                "config cannot be empty in order to create a container",
            ));
        }
        if let Some(n) = name.as_deref().filter(|n| !n.is_empty()) {
            let n = n.strip_prefix('/').unwrap_or(n);
            if !valid_name(n) {
                return Err(EngineError::invalid(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
        }
        // The name resolved first (one index lookup): a pre-started container needs no more.
        let d = self.clone();
        let image_id = {
            let n = image_name.clone();
            tokio::task::spawn_blocking(move || d.images.index().ok()?.resolve(&n).ok())
                .await
                .map_err(blocking_err)?
        }
        .ok_or_else(|| image_not_found(&image_name))?
        .id;
        berth_runtime::timing::mark("create: image resolved");
        let hc = body.host_config.clone().unwrap_or_default();
        // Refuse what cannot run before anything is written.
        spec::security_opts(hc.security_opt.as_deref().unwrap_or(&[]))?;
        spec::capabilities(
            hc.cap_add.as_deref().unwrap_or(&[]),
            hc.cap_drop.as_deref().unwrap_or(&[]),
            false,
        )?;
        let (policy, _) = restart_policy(&hc);
        if hc.auto_remove == Some(true)
            && !matches!(
                policy,
                RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO
            )
        {
            return Err(EngineError::invalid(
                "conflicting options: cannot specify both --restart and --rm",
            ));
        }
        if let Some(m) = hc.memory.filter(|m| *m > 0 && *m < 6 * 1024 * 1024) {
            return Err(EngineError::invalid(format!(
                "Minimum memory limit allowed is 6MB (asked {m} bytes)"
            )));
        }
        if let Some(n) = hc.nano_cpus.filter(|n| *n < 0) {
            return Err(EngineError::invalid(format!("invalid --cpus: {n}")));
        }
        if let Some(target) = hc
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("container:"))
        {
            self.containers.get(target)?;
        }
        crate::volumes::check_host_config(&hc)?;
        spec::check_host_config(&hc)?;
        let storage_size = crate::quota::storage_opt_size(hc.storage_opt.as_ref())
            .map_err(EngineError::invalid)?;
        // The same `run --rm` again: take its pre-started container if there is one.
        let seed = if self.containers.prestart.enabled() {
            let id = image_id.to_string();
            super::prestart::key_of(&body, &id).map(|key| super::prestart::Seed {
                key,
                body: Arc::new(body.clone()),
                image_id: id,
            })
        } else {
            None
        };
        if let Some(seed) = &seed {
            if let Some(warm) = self.containers.prestart.take(seed.key).await {
                return self.claim_warm(warm, name).await.map(|id| (id, Vec::new()));
            }
        }
        let d = self.clone();
        let image = tokio::task::spawn_blocking(move || d.images.get_by_id(&image_id))
            .await
            .map_err(blocking_err)?
            .map_err(|_| image_not_found(&image_name))?;
        let generated_name = name.as_deref().is_none_or(str::is_empty);
        let mut rec = self.new_record(name, &body, &image)?;
        let id = rec.id.clone();
        // Volumes: resolved (and made when missing) under the volume lock, held until the
        // record is stored; those made here go again if the create fails.
        let hc = &rec.host_config;
        let wants_volumes = [&hc.binds, &hc.volumes_from, &rec.config.volumes]
            .iter()
            .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()))
            || hc.mounts.as_ref().is_some_and(|m| !m.is_empty());
        // (No lock and no work on the run path of containers without any.)
        let _volumes_op = if wants_volumes {
            Some(self.volumes.op.lock().await)
        } else {
            None
        };
        let (vols, made) = if wants_volumes {
            self.volumes_for_create(hc, rec.config.volumes.as_deref().unwrap_or(&[]))?
        } else {
            Default::default()
        };
        rec.volumes = vols;
        let mut made_volumes = crate::volumes::MadeVolumes::new(&self.volumes, made);
        let dir = self.containers.dir(&id);
        let prepared = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&dir)?;
            write_etc_files(&dir, &rec)
        })();
        if let Err(e) = prepared {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(EngineError::internal(format!(
                "prepare {}: {e}",
                dir.display()
            )));
        }
        // `--storage-opt size=`: the writable layer goes into a quota filesystem.
        if let Some(bytes) = storage_size {
            let d = self.clone();
            let id2 = id.clone();
            let placed = tokio::task::spawn_blocking(move || {
                crate::quota::place_container_rw(&d.quotas, &d.containers.snapshotter, &id2, bytes)
            })
            .await
            .map_err(blocking_err)?;
            if let Err(e) = placed {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e.into());
            }
        }
        // A generated name can collide with an existing one (Docker then adds a digit).
        let mut attempt = 0u32;
        let entry = loop {
            match self.containers.insert(rec.clone()) {
                Ok(e) => break e,
                Err(e) if generated_name && e.kind == ErrorKind::Conflict && attempt < 100 => {
                    attempt += 1;
                    rec.name = format!("{}{attempt}", random_name(&id));
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    if storage_size.is_some() {
                        let _ = self.quotas.remove(&crate::quota::container_key(&id));
                    }
                    return Err(e);
                }
            }
        };
        made_volumes.keep();
        *entry.seed.lock().unwrap_or_else(|p| p.into_inner()) = seed;
        let attrs = entry.rec().event_attrs();
        self.events.emit("container", "create", &id, attrs);
        berth_runtime::timing::mark("create: done");
        Ok((id, Vec::new()))
    }

    /// A new record for a create request: the image's config merged with the request's, a new
    /// id, the name (or a generated one), the networks asked for (checked).
    fn new_record(
        &self,
        name: Option<String>,
        body: &ContainerCreateBody,
        image: &berth_image::image::Image,
    ) -> Result<Record, EngineError> {
        let config = merge_config(body, image.config.config.as_ref());
        let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
        argv.extend(config.cmd.clone().unwrap_or_default());
        if argv.is_empty() || argv[0].is_empty() {
            return Err(EngineError::invalid("no command specified"));
        }
        let id = new_id();
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => n.trim_start_matches('/').to_string(),
            None => random_name(&id),
        };
        let mut rec = Record {
            id,
            name,
            created: now(),
            image: body.image.clone().unwrap_or_default(),
            image_id: image.id().to_string(),
            config,
            host_config: body.host_config.clone().unwrap_or_default(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            state: RunState::default(),
            restart_count: 0,
            manually_stopped: false,
            has_been_started: false,
            net_config: Default::default(),
            net_live: Default::default(),
            ports_live: Default::default(),
            sandbox_key: String::new(),
            volumes: Vec::new(),
        };
        let asked = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.clone())
            .unwrap_or_default();
        rec.net_config = self.networks.check_create(&rec, &asked)?;
        Ok(rec)
    }

    /// `POST /containers/{id}/start`.
    pub async fn container_start(self: &Arc<Self>, key: &str) -> Result<(), EngineError> {
        let e = self.containers.get(key)?;
        let op = e.op.lock().await;
        let r = self.start_locked(&e).await;
        drop(op);
        // Docker removes an auto-remove container whose start failed (its client waits for
        // the removal).
        if let Err(err) = &r {
            if !matches!(err.kind, ErrorKind::NotModified | ErrorKind::Conflict)
                && e.rec().host_config.auto_remove == Some(true)
            {
                let id = e.rec().id.clone();
                let _ = self.container_remove_opts(&id, true, true).await;
            }
        }
        r
    }

    async fn start_locked(self: &Arc<Self>, e: &Arc<Entry>) -> Result<(), EngineError> {
        let rec = e.snapshot();
        match rec.state.status {
            Status::Running => return Err(EngineError::not_modified()),
            Status::Paused => {
                return Err(EngineError::conflict(
                    "cannot start a paused container, try unpause instead",
                ))
            }
            Status::Removing | Status::Dead => {
                return Err(EngineError::conflict(format!(
                    "container {} is marked for removal and cannot be started",
                    rec.id
                )))
            }
            _ => {}
        }
        berth_runtime::timing::mark("start: begin");
        let shim_dir = self.containers.shim_dir(&rec.id);
        // A pre-started container: its shim is up, its init waits for the start request.
        let warm = e.warm_pid.swap(0, std::sync::atomic::Ordering::SeqCst);
        let pid = if warm > 0 {
            unnice(warm);
            Ok(warm)
        } else {
            let d = self.clone();
            let r = rec.clone();
            let e2 = e.clone();
            let dir = shim_dir.clone();
            tokio::task::spawn_blocking(move || {
                d.prepare_run(&e2)?;
                berth_runtime::timing::mark("start: prepared (rootfs, config.json)");
                d.spawn_shim(&r, &dir)
            })
            .await
            .map_err(blocking_err)?
        };
        let pid = match pid {
            Ok(pid) => pid,
            Err(err) => {
                self.start_failed(e, &err);
                return Err(err);
            }
        };
        berth_runtime::timing::mark("start: shim ready");
        // Attaches that came before the start connect now, then the init runs.
        let pending: Vec<_> =
            std::mem::take(&mut *e.pending_attach.lock().unwrap_or_else(|p| p.into_inner()));
        let mut waits = Vec::new();
        for p in pending {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if p.send(super::PendingStart {
                socket: shim_dir.clone(),
                connected: tx,
            })
            .is_ok()
            {
                waits.push(rx);
            }
        }
        // The monitor connects before the init runs, so no exit goes unseen (side by side
        // with the attaches).
        let watch = shim::request(
            &shim_dir,
            &Request::Attach {
                stdin: false,
                stdout: false,
                stderr: false,
            },
        );
        let attached = async {
            for w in waits {
                let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
            }
        };
        let (watcher, ()) = tokio::join!(watch, attached);
        berth_runtime::timing::mark("start: watcher and attaches connected");
        if let Err(err) = shim::call(&shim_dir, &Request::Start).await {
            let err: EngineError = err.into();
            // The shim records the failed start as an exit; wait for it to go.
            if let Ok(mut w) = watcher {
                let mut sink = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(5), w.read_to_end(&mut sink)).await;
            }
            self.start_failed(e, &err);
            return Err(err);
        }
        {
            let mut r = e.rec();
            r.state = RunState {
                status: Status::Running,
                pid: pid as i64,
                started_at: now(),
                health: r.state.health.clone(),
                ..RunState::default()
            };
            r.has_been_started = true;
            r.manually_stopped = false;
        }
        berth_runtime::timing::mark("start: started");
        self.containers.save(e)?;
        let attrs = e.rec().event_attrs();
        self.events.emit("container", "start", &rec.id, attrs);
        self.health_start(e);
        berth_runtime::timing::mark("start: saved");
        let d = self.clone();
        let e2 = e.clone();
        tokio::spawn(async move { d.monitor(e2, shim_dir, watcher.ok()).await });
        Ok(())
    }

    /// Records a start that failed: Docker keeps the container, with the error and the exit
    /// code the CLI would show (127 not found, 126 cannot invoke).
    fn start_failed(&self, e: &Arc<Entry>, err: &EngineError) {
        let id = e.rec().id.clone();
        self.net_down(e);
        // Attaches that waited for this start end now (their senders drop).
        e.pending_attach
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let _ = self.containers.snapshotter.unmount(
            &ContainerId::new(&id).unwrap_or_else(|_| unreachable_id()),
            true,
        );
        let _ = std::fs::remove_dir_all(self.containers.shim_dir(&id));
        {
            let mut r = e.rec();
            let m = err.message.to_ascii_lowercase();
            r.state.error = err.message.clone();
            r.state.exit_code = if m.contains("permission denied") || m.contains("is a directory") {
                126
            } else if m.contains("no such file") || m.contains("not found") {
                127
            } else {
                128
            };
            if r.has_been_started {
                r.state.status = Status::Exited;
            }
        }
        let _ = self.containers.save(e);
    }

    /// Mounts the rootfs and writes the bundle's config.json. Blocking.
    fn prepare_run(&self, e: &Arc<Entry>) -> Result<(), EngineError> {
        let rec = e.snapshot();
        let id = rec.id.as_str();
        let cid = ContainerId::new(id).map_err(|e| EngineError::internal(e.to_string()))?;
        let image = self
            .images
            .get_by_id(
                &rec.image_id
                    .parse()
                    .map_err(|_| EngineError::internal(format!("bad image id {}", rec.image_id)))?,
            )
            .map_err(|_| image_not_found(&rec.image))?;
        let lowers = self.images.lower_dirs(&image);
        let snap = self.containers.snapshotter.paths(&cid);
        if !berth_image::snapshot::is_mount_point(&snap.rootfs) {
            self.containers
                .snapshotter
                .prepare(&cid, &lowers)
                .map_err(|e| EngineError::internal(format!("mount the container's rootfs: {e}")))?;
        }
        // Docker's copy-up into volumes still empty, from the mounted rootfs.
        if let Err(err) = self.volumes_copy_up(&rec, &snap.rootfs) {
            let _ = self.containers.snapshotter.unmount(&cid, true);
            return Err(err);
        }
        // Docker creates a missing host directory of `-v /host:/ctr` at start (not for
        // `--mount type=bind`, which create refuses).
        for b in rec.host_config.binds.iter().flatten() {
            if let Some(src) = b.split(':').next().filter(|s| s.starts_with('/')) {
                let p = Path::new(src);
                if p.symlink_metadata().is_err() {
                    if let Err(err) = std::fs::create_dir_all(p) {
                        let _ = self.containers.snapshotter.unmount(&cid, true);
                        return Err(EngineError::internal(format!(
                            "error while creating mount source path '{src}': {err}"
                        )));
                    }
                }
            }
        }
        let netns = match self.net_up(e, &rec) {
            Ok(n) => n,
            Err(err) => {
                let _ = self.containers.snapshotter.unmount(&cid, true);
                return Err(err);
            }
        };
        let rec = e.snapshot();
        let built = (|| -> Result<Value, EngineError> {
            let user = spec::resolve_user(&snap.rootfs, rec.config.user.as_deref().unwrap_or(""))?;
            let hc = &rec.host_config;
            let (_, sc) = spec::security_opts(hc.security_opt.as_deref().unwrap_or(&[]))?;
            let caps = spec::capabilities(
                hc.cap_add.as_deref().unwrap_or(&[]),
                hc.cap_drop.as_deref().unwrap_or(&[]),
                hc.privileged.unwrap_or(false),
            )?;
            let seccomp = self.containers.seccomp_for(&sc, &caps)?;
            // Looked up only for `--init`: nothing on the start path of other containers.
            let init = if hc.init == Some(true) {
                let i = crate::config::find_helper("tini-static", "BERTH_INIT");
                if i.is_absolute() {
                    i
                } else {
                    PathBuf::from("/usr/bin/tini-static")
                }
            } else {
                PathBuf::new()
            };
            let dir = self.containers.dir(id);
            spec::build(&spec::Inputs {
                rec: &rec,
                rootfs: &snap.rootfs,
                dir: &dir,
                user,
                seccomp,
                init_binary: (hc.init == Some(true) && init.exists()).then_some(init.as_path()),
                cgroup_v2: Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
                netns: netns.as_deref(),
            })
            .map_err(EngineError::from)
        })();
        let spec = match built {
            Ok(s) => s,
            Err(err) => {
                let _ = self.containers.snapshotter.unmount(&cid, true);
                return Err(err);
            }
        };
        let dir = self.containers.dir(id);
        if let Err(err) = self.containers.write_bpf(&dir, &spec) {
            let _ = self.containers.snapshotter.unmount(&cid, true);
            return Err(err);
        }
        let tmp = dir.join(".config.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&spec).unwrap_or_default())
            .and_then(|_| std::fs::rename(&tmp, dir.join("config.json")))
            .map_err(|e| EngineError::internal(format!("write {}: {e}", dir.display())))?;
        Ok(())
    }

    /// Starts the container's shim (container created, init not yet running). Blocking.
    fn spawn_shim(&self, rec: &Record, shim_dir: &Path) -> Result<i32, EngineError> {
        let _ = std::fs::remove_dir_all(shim_dir);
        std::fs::create_dir_all(shim_dir)
            .map_err(|e| EngineError::internal(format!("create {}: {e}", shim_dir.display())))?;
        let (max_size, max_files) = log_options(&rec.host_config)?;
        let dir = self.containers.dir(&rec.id);
        let log = self.containers.log_path(&rec.id);
        shim::spawn(&shim::ShimArgs {
            binary: &self.config.shim,
            id: &rec.id,
            bundle: &dir,
            state_root: &self.containers.state_root,
            dir: shim_dir,
            log: &log,
            log_max_size: max_size,
            log_max_files: max_files,
            tty: rec.tty(),
            stdin: rec.config.open_stdin.unwrap_or(false),
            no_start: true,
            // An --rm container is never started again: its shim may tear down (runtime state,
            // cgroups) after telling berthd of the exit instead of before.
            late_teardown: rec.host_config.auto_remove.unwrap_or(false),
        })
        .map_err(EngineError::from)
    }

    /// Waits for the shim to go (EOF on the watcher), then records the exit.
    async fn monitor(
        self: Arc<Self>,
        e: Arc<Entry>,
        shim_dir: PathBuf,
        watcher: Option<tokio::net::UnixStream>,
    ) {
        if let Some(mut w) = watcher {
            let mut buf = [0u8; 64];
            loop {
                match w.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        berth_runtime::timing::mark("monitor: shim gone");
        let exit = ExitRecord::read(&shim_dir).ok().flatten();
        self.on_exit(&e, exit).await;
    }

    /// Records an exit; then auto-remove or the restart policy.
    async fn on_exit(self: &Arc<Self>, e: &Arc<Entry>, exit: Option<ExitRecord>) {
        let id = e.rec().id.clone();
        // Unmount the rootfs (unless the container is about to be removed, which unmounts in
        // the background) and drop the shim's directory, off the async workers.
        let d = self.clone();
        let id2 = id.clone();
        let auto_remove = e.rec().host_config.auto_remove == Some(true);
        let e2 = e.clone();
        let teardown = tokio::task::spawn_blocking(move || {
            berth_runtime::timing::mark("exit: teardown begins");
            d.net_down(&e2);
            berth_runtime::timing::mark("exit: network down");
            if !auto_remove {
                if let Ok(cid) = ContainerId::new(&id2) {
                    let _ = d.containers.snapshotter.unmount(&cid, true);
                }
            }
            let _ = std::fs::remove_dir_all(d.containers.shim_dir(&id2));
        });
        // A container about to be removed is never started again: its client need not wait
        // for the teardown (the removal finishes it in the background).
        if !auto_remove {
            let _ = teardown.await;
        }
        let (code, oom) = {
            let mut r = e.rec();
            match &exit {
                Some(x) => {
                    r.state.exit_code = x.exit_code as i64;
                    r.state.finished_at = x.exited_at.clone();
                    r.state.oom_killed = x.oom_killed;
                }
                None => {
                    r.state.exit_code = 255;
                    r.state.finished_at = now();
                    r.state.error =
                        "the container's shim died without recording an exit status".into();
                }
            }
            r.state.status = Status::Exited;
            r.state.pid = 0;
            if let Some(h) = r.state.health.as_mut() {
                h.status = Some(berth_types::api::HealthStatusEnum::UNHEALTHY);
            }
            (r.state.exit_code, r.state.oom_killed)
        };
        // (An auto-remove container's record is deleted next: no need to write it.)
        if !auto_remove {
            let _ = self.containers.save(e);
        } else {
            e.notify();
        }
        berth_runtime::timing::mark("exit: recorded");
        let mut attrs = e.rec().event_attrs();
        if oom {
            self.events.emit("container", "oom", &id, attrs.clone());
        }
        attrs.insert("exitCode".to_string(), code.to_string());
        self.events.emit("container", "die", &id, attrs);
        e.exits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        e.notify();

        let r = e.snapshot();
        if r.host_config.auto_remove == Some(true) {
            let _ = self.container_remove_opts(&id, true, true).await;
            return;
        }
        let (policy, max) = restart_policy(&r.host_config);
        let restart = !r.manually_stopped
            && match policy {
                RestartPolicyNameEnum::ALWAYS | RestartPolicyNameEnum::UNLESS_STOPPED => true,
                RestartPolicyNameEnum::ON_FAILURE => {
                    code != 0 && (max == 0 || r.restart_count < max)
                }
                _ => false,
            };
        if restart {
            // "restarting" from the exit on, as Docker shows it during the back-off.
            e.rec().state.status = Status::Restarting;
            let _ = self.containers.save(e);
            let d = self.clone();
            let e = e.clone();
            tokio::spawn(async move { d.restart_after_backoff(e).await });
        }
    }

    /// Docker's back-off: 100 ms doubling per restart, at most a minute; a run of 10 s or more
    /// resets it.
    fn restart_after_backoff(
        self: Arc<Self>,
        e: Arc<Entry>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move { self.restart_after_backoff_inner(e).await })
    }

    async fn restart_after_backoff_inner(self: Arc<Self>, e: Arc<Entry>) {
        let delay = {
            let mut r = e.rec();
            let ran_long = match (
                parse_rfc3339(&r.state.started_at),
                parse_rfc3339(&r.state.finished_at),
            ) {
                (Some(a), Some(b)) => b - a >= 10.0,
                _ => false,
            };
            if ran_long {
                r.restart_count = 0;
            }
            r.state.status = Status::Restarting;
            let n = r.restart_count.min(10) as u32;
            Duration::from_millis((100u64 << n).min(60_000))
        };
        let _ = self.containers.save(&e);
        tokio::time::sleep(delay).await;
        let _op = e.op.lock().await;
        {
            let mut r = e.rec();
            if r.state.status != Status::Restarting || r.manually_stopped {
                return;
            }
            // Still "restarting" until the start is done: never "exited" with the new count
            // while the next run has not begun.
            r.restart_count += 1;
        }
        if e.removed.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let id = e.rec().id.clone();
        if self.start_locked(&e).await.is_ok() {
            let attrs = e.rec().event_attrs();
            self.events.emit("container", "restart", &id, attrs);
        }
    }

    /// `POST /containers/{id}/stop`: the stop signal, then SIGKILL after the timeout.
    pub async fn container_stop(
        self: &Arc<Self>,
        key: &str,
        timeout: Option<i64>,
        signal: Option<String>,
    ) -> Result<(), EngineError> {
        let e = self.containers.get(key)?;
        let _op = e.op.lock().await;
        self.stop_locked(&e, timeout, signal).await
    }

    async fn stop_locked(
        self: &Arc<Self>,
        e: &Arc<Entry>,
        timeout: Option<i64>,
        signal: Option<String>,
    ) -> Result<(), EngineError> {
        let rec = e.snapshot();
        if rec.state.status == Status::Restarting {
            e.rec().manually_stopped = true;
            e.rec().state.status = Status::Exited;
            self.containers.save(e)?;
            return Ok(());
        }
        if !rec.state.status.is_live() {
            return Err(EngineError::not_modified());
        }
        e.rec().manually_stopped = true;
        let _ = self.containers.save(e);
        let sig = parse_signal(
            signal
                .as_deref()
                .or(rec.config.stop_signal.as_deref())
                .unwrap_or("SIGTERM"),
        )?;
        let t = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        let shim_dir = self.containers.shim_dir(&rec.id);
        let exits = e.exits.load(std::sync::atomic::Ordering::SeqCst);
        let _ = shim::call(&shim_dir, &Request::Kill { signal: sig }).await;
        if rec.state.status == Status::Paused {
            let _ = self.thaw(&rec.id, false).await;
        }
        if t < 0
            || !self
                .wait_exit(e, exits, Duration::from_secs(t as u64))
                .await
        {
            let _ = shim::call(
                &shim_dir,
                &Request::Kill {
                    signal: libc::SIGKILL,
                },
            )
            .await;
            if !self.wait_exit(e, exits, Duration::from_secs(30)).await {
                return Err(EngineError::internal(format!(
                    "container {} did not exit after SIGKILL",
                    rec.id
                )));
            }
        }
        let attrs = e.rec().event_attrs();
        self.events.emit("container", "stop", &rec.id, attrs);
        Ok(())
    }

    /// Waits until the exit counter passes `seen` (or the container is no longer live).
    async fn wait_exit(&self, e: &Arc<Entry>, seen: u64, limit: Duration) -> bool {
        let mut rx = e.changed.subscribe();
        let done = |e: &Entry| {
            e.exits.load(std::sync::atomic::Ordering::SeqCst) > seen
                || !e.rec().state.status.is_live()
        };
        tokio::time::timeout(limit, async {
            loop {
                if done(e) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }

    /// `POST /containers/{id}/kill`.
    pub async fn container_kill(
        self: &Arc<Self>,
        key: &str,
        signal: &str,
    ) -> Result<(), EngineError> {
        let e = self.containers.get(key)?;
        let rec = e.snapshot();
        if !rec.state.status.is_live() {
            return Err(EngineError::conflict(format!(
                "Cannot kill container: {key}: Container {} is not running",
                rec.id
            )));
        }
        let sig = parse_signal(if signal.is_empty() { "SIGKILL" } else { signal })?;
        let stop_sig = rec
            .config
            .stop_signal
            .as_deref()
            .and_then(|s| parse_signal(s).ok())
            .unwrap_or(libc::SIGTERM);
        if sig == libc::SIGKILL || sig == stop_sig {
            e.rec().manually_stopped = true;
            let _ = self.containers.save(&e);
        }
        shim::call(
            &self.containers.shim_dir(&rec.id),
            &Request::Kill { signal: sig },
        )
        .await
        .map_err(|err| EngineError::conflict(format!("Cannot kill container: {key}: {err}")))?;
        let mut attrs = rec.event_attrs();
        attrs.insert("signal".into(), sig.to_string());
        self.events.emit("container", "kill", &rec.id, attrs);
        Ok(())
    }

    /// `POST /containers/{id}/restart`.
    pub async fn container_restart(
        self: &Arc<Self>,
        key: &str,
        timeout: Option<i64>,
        signal: Option<String>,
    ) -> Result<(), EngineError> {
        let e = self.containers.get(key)?;
        let _op = e.op.lock().await;
        match self.stop_locked(&e, timeout, signal).await {
            Ok(()) => {}
            Err(err) if err.kind == ErrorKind::NotModified => {}
            Err(err) => return Err(err),
        }
        self.start_locked(&e).await?;
        let attrs = e.rec().event_attrs();
        let id = e.rec().id.clone();
        self.events.emit("container", "restart", &id, attrs);
        Ok(())
    }

    async fn thaw(&self, id: &str, freeze: bool) -> Result<(), EngineError> {
        let root = self.containers.state_root.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            let c = berth_runtime::Container::load(&root, &id)
                .map_err(|e| EngineError::conflict(format!("container {id}: {e}")))?;
            if freeze { c.pause() } else { c.resume() }
                .map_err(|e| EngineError::conflict(format!("container {id}: {e}")))
        })
        .await
        .map_err(blocking_err)?
    }

    /// `POST /containers/{id}/pause` and `/unpause`.
    pub async fn container_pause(
        self: &Arc<Self>,
        key: &str,
        pause: bool,
    ) -> Result<(), EngineError> {
        let e = self.containers.get(key)?;
        let _op = e.op.lock().await;
        let rec = e.snapshot();
        match (rec.state.status, pause) {
            (Status::Running, true) | (Status::Paused, false) => {}
            (Status::Paused, true) => {
                return Err(EngineError::conflict(format!(
                    "Container {} is already paused",
                    rec.id
                )))
            }
            (_, true) => {
                return Err(EngineError::conflict(format!(
                    "Container {} is not running",
                    rec.id
                )))
            }
            (_, false) => {
                return Err(EngineError::conflict(format!(
                    "Container {} is not paused",
                    rec.id
                )))
            }
        }
        self.thaw(&rec.id, pause).await?;
        e.rec().state.status = if pause {
            Status::Paused
        } else {
            Status::Running
        };
        self.containers.save(&e)?;
        self.events.emit(
            "container",
            if pause { "pause" } else { "unpause" },
            &rec.id,
            rec.event_attrs(),
        );
        Ok(())
    }

    /// `POST /containers/{id}/rename?name=`.
    pub async fn container_rename(
        self: &Arc<Self>,
        key: &str,
        name: &str,
    ) -> Result<(), EngineError> {
        let name = name.strip_prefix('/').unwrap_or(name);
        if !valid_name(name) {
            return Err(EngineError::invalid(format!(
                "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        let e = self.containers.get(key)?;
        let old = e.rec().name.clone();
        if old == name {
            return Err(EngineError::conflict(
                "Renaming a container with the same name as its current name".to_string(),
            ));
        }
        e.rec().name = name.to_string();
        if let Err(err) = self.containers.save(&e) {
            e.rec().name = old;
            return Err(err);
        }
        let mut attrs = e.rec().event_attrs();
        attrs.insert("oldName".into(), format!("/{old}"));
        let id = e.rec().id.clone();
        self.events.emit("container", "rename", &id, attrs);
        Ok(())
    }

    /// `DELETE /containers/{id}`.
    pub async fn container_remove(
        self: &Arc<Self>,
        key: &str,
        force: bool,
    ) -> Result<(), EngineError> {
        self.container_remove_opts(key, force, false).await
    }

    /// `DELETE /containers/{id}?v=`: with `volumes`, its anonymous volumes go too (`rm -v`,
    /// and `--rm` as Docker does).
    pub async fn container_remove_opts(
        self: &Arc<Self>,
        key: &str,
        force: bool,
        volumes: bool,
    ) -> Result<(), EngineError> {
        let e = self.containers.get(key)?;
        let _op = e.op.lock().await;
        if e.removed.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let rec = e.snapshot();
        if rec.state.status.is_live() || rec.state.status == Status::Restarting {
            if !force {
                let what = if rec.state.status == Status::Paused {
                    "container is paused and must be unpaused first"
                } else {
                    "container is running: stop the container before removing or force remove"
                };
                return Err(EngineError::conflict(format!(
                    "cannot remove container \"/{}\": {what}",
                    rec.name
                )));
            }
            e.rec().manually_stopped = true;
            if rec.state.status.is_live() {
                let exits = e.exits.load(std::sync::atomic::Ordering::SeqCst);
                let shim_dir = self.containers.shim_dir(&rec.id);
                let _ = shim::call(
                    &shim_dir,
                    &Request::Kill {
                        signal: libc::SIGKILL,
                    },
                )
                .await;
                if rec.state.status == Status::Paused {
                    let _ = self.thaw(&rec.id, false).await;
                }
                if !self.wait_exit(&e, exits, Duration::from_secs(30)).await {
                    return Err(EngineError::internal(format!(
                        "could not kill container {} to remove it",
                        rec.id
                    )));
                }
            }
        }
        e.rec().state.status = Status::Removing;
        berth_runtime::timing::mark("remove: begin");
        let id = rec.id.clone();
        let d = self.clone();
        // A pre-started container claimed by a create but never started: its init and shim go
        // (the shim then deletes the runtime state), with the endpoint it held.
        let warm = e.warm_pid.swap(0, std::sync::atomic::Ordering::SeqCst);
        if let Some(p) = rustix::process::Pid::from_raw(warm).filter(|_| warm > 1) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            let (d, e) = (self.clone(), e.clone());
            let _ = tokio::task::spawn_blocking(move || d.net_down(&e)).await;
        }
        // The record goes first: the client learns of the removal at once. The shim's
        // directory, the rootfs mount and the files go in the background (a crash meanwhile
        // leaves a directory that is in no record: the next start deletes it).
        let quota_key = crate::quota::container_key(&rec.id);
        let d2 = d.clone();
        d2.containers.janitor.run(move || {
            let _ = std::fs::remove_dir_all(d.containers.shim_dir(&id));
            if let Ok(cid) = ContainerId::new(&id) {
                let _ = d.containers.snapshotter.unmount(&cid, true);
            }
            super::purge(&d.containers.dir(&id));
            // A `--storage-opt size=` container's writable layer (no-op for the others).
            let _ = d.quotas.remove(&quota_key);
        });
        self.containers.forget(&rec.id)?;
        berth_runtime::timing::mark("remove: forgotten");
        e.removed.store(true, std::sync::atomic::Ordering::SeqCst);
        e.notify();
        self.events
            .emit("container", "destroy", &rec.id, rec.event_attrs());
        if volumes {
            self.volumes_release(&rec).await;
        }
        // A `--rm` run seen again: the next one is made ahead, now that this one is done.
        let seed = e.seed.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(seed) = seed {
            let n = self.containers.prestart.want(seed.key);
            if n > 0 {
                // One after the other: making them side by side would take both cores.
                let d = self.clone();
                tokio::spawn(async move {
                    for _ in 0..n {
                        d.clone().make_warm(seed.clone()).await;
                    }
                });
            }
        }
        Ok(())
    }

    /// Makes a container ahead for `seed` (see [`super::prestart`]) and keeps it until it is
    /// claimed or its time is up.
    async fn make_warm(self: Arc<Self>, seed: super::prestart::Seed) {
        let key = seed.key;
        let epoch = self.containers.prestart.epoch();
        // Speculative work: on a thread of its own at the lowest priority (nice 19, which
        // the shim and the init it spawns inherit), so that it takes what the runs in
        // progress leave of the CPUs; a claim gives the container its normal priority back.
        let d = self.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("prestart".into())
            .spawn(move || {
                let _ = rustix::process::setpriority_process(None, 19);
                let _ = tx.send(d.make_warm_blocking(&seed));
            });
        if spawned.is_err() {
            return self.containers.prestart.failed(key, false);
        }
        let entry = match rx.await {
            Ok(Ok(e)) => e,
            Ok(Err(refuse)) => return self.containers.prestart.failed(key, refuse),
            Err(_) => return self.containers.prestart.failed(key, false),
        };
        for old in self.containers.prestart.made(key, entry.clone(), epoch) {
            let d = self.clone();
            tokio::task::spawn_blocking(move || d.discard_warm(&old));
        }
        let d = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(super::prestart::TTL).await;
            if let Some(e) = d.containers.prestart.take_entry(&entry) {
                let _ = tokio::task::spawn_blocking(move || d.discard_warm(&e)).await;
            }
        });
    }

    /// Blocking part of [`Daemon::make_warm`]: the record, files, rootfs, network and shim of a
    /// container created exactly as `seed`'s create would, its init waiting for the start.
    /// Errors: true when this key can never be made ahead.
    fn make_warm_blocking(&self, seed: &super::prestart::Seed) -> Result<Arc<Entry>, bool> {
        let name = seed.body.image.clone().unwrap_or_default();
        let image = self.images.get(&name).map_err(|_| false)?;
        if image.id().to_string() != seed.image_id {
            return Err(false);
        }
        let rec = self
            .new_record(None, &seed.body, &image)
            .map_err(|_| true)?;
        // Volumes from the image (VOLUME) are made at create: not ahead of time.
        if rec.config.volumes.as_ref().is_some_and(|v| !v.is_empty()) {
            return Err(true);
        }
        let dir = self.containers.dir(&rec.id);
        let e = Entry::new(rec.clone());
        let made = (|| -> Result<i32, EngineError> {
            std::fs::create_dir_all(&dir)
                .and_then(|()| write_etc_files(&dir, &rec))
                .map_err(|err| {
                    EngineError::internal(format!("prepare {}: {err}", dir.display()))
                })?;
            self.prepare_run(&e)?;
            self.spawn_shim(&rec, &self.containers.shim_dir(&rec.id))
        })();
        match made {
            Ok(pid) => {
                e.warm_pid.store(pid, std::sync::atomic::Ordering::SeqCst);
                *e.seed.lock().unwrap_or_else(|p| p.into_inner()) = Some(seed.clone());
                Ok(e)
            }
            Err(err) => {
                tracing::debug!("pre-start of {name}: {}", err.message);
                self.discard_warm(&e);
                Err(false)
            }
        }
    }

    /// A pre-started container becomes a created one: its name (the asked one or its
    /// generated one), its creation time, its record stored, its create event.
    async fn claim_warm(
        self: &Arc<Self>,
        e: Arc<Entry>,
        name: Option<String>,
    ) -> Result<String, EngineError> {
        let generated = name.as_deref().is_none_or(str::is_empty);
        let id = {
            let mut r = e.rec();
            if let Some(n) = name.filter(|n| !n.is_empty()) {
                r.name = n.trim_start_matches('/').to_string();
            }
            r.created = now();
            r.id.clone()
        };
        let mut attempt = 0u32;
        loop {
            match self.containers.insert_entry(&e) {
                Ok(()) => break,
                Err(err) if generated && err.kind == ErrorKind::Conflict && attempt < 100 => {
                    attempt += 1;
                    e.rec().name = format!("{}{attempt}", random_name(&id));
                }
                Err(err) => {
                    let d = self.clone();
                    tokio::task::spawn_blocking(move || d.discard_warm(&e));
                    return Err(err);
                }
            }
        }
        let attrs = e.rec().event_attrs();
        self.events.emit("container", "create", &id, attrs);
        berth_runtime::timing::mark("create: done (pre-started)");
        Ok(id)
    }

    /// Undoes a pre-started container that was never claimed: its init is killed (its shim
    /// then tears the runtime state down and goes), its network, rootfs and files go. Blocking.
    pub fn discard_warm(&self, e: &Arc<Entry>) {
        let id = e.rec().id.clone();
        let pid = e.warm_pid.swap(0, std::sync::atomic::Ordering::SeqCst);
        // The shim reaps its init only after it died: until then the pid is the init's.
        if let Some(p) = rustix::process::Pid::from_raw(pid).filter(|_| pid > 1) {
            unnice(pid);
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
        self.net_down(e);
        if let Ok(cid) = ContainerId::new(&id) {
            let _ = self.containers.snapshotter.unmount(&cid, true);
        }
        super::purge(&self.containers.dir(&id));
        // The shim removes its socket when it is done; its directory goes after that.
        let shim_dir = self.containers.shim_dir(&id);
        std::thread::spawn(move || {
            for _ in 0..200 {
                if !shim_dir.join("sock").exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = std::fs::remove_dir_all(&shim_dir);
        });
    }

    /// Discards every pre-started container (the daemon stops). Blocking.
    pub fn discard_all_warm(&self) {
        for e in self.containers.prestart.take_all() {
            self.discard_warm(&e);
        }
    }

    /// `POST /containers/{id}/wait?condition=`: the exit code once the condition holds.
    pub async fn container_wait(
        self: &Arc<Self>,
        key: &str,
        condition: &str,
    ) -> Result<(i64, String), EngineError> {
        let e = self.containers.get(key)?;
        let mut rx = e.changed.subscribe();
        let exits = e.exits.load(std::sync::atomic::Ordering::SeqCst);
        let cond = match condition {
            "" | "not-running" => 0,
            "next-exit" => 1,
            "removed" => 2,
            other => {
                return Err(EngineError::invalid(format!(
                    "invalid condition: \"{other}\""
                )))
            }
        };
        loop {
            let (status, code, err) = {
                let r = e.rec();
                (r.state.status, r.state.exit_code, r.state.error.clone())
            };
            let done = match cond {
                0 => !status.is_live() && status != Status::Restarting,
                1 => e.exits.load(std::sync::atomic::Ordering::SeqCst) > exits,
                _ => e.removed.load(std::sync::atomic::Ordering::SeqCst),
            };
            if done {
                // A removed container's start error was already the start request's answer;
                // Docker's wait for removal carries none.
                let err = if cond == 2 { String::new() } else { err };
                return Ok((code, err));
            }
            if rx.changed().await.is_err() {
                return Ok((code, err));
            }
        }
    }

    /// After a daemon start: re-attach to the shims that kept running, record the exits that
    /// happened meanwhile (with their true exit codes), resume interrupted restarts.
    pub async fn restore(self: &Arc<Self>) {
        if let Err(e) = self.networks.bring_up() {
            tracing::warn!("networks: {}", e.message);
        }
        let mut running = std::collections::HashSet::new();
        for e in self.containers.list() {
            let rec = e.snapshot();
            if matches!(rec.state.status, Status::Running | Status::Paused) {
                self.networks.adopt(&rec);
                running.insert(rec.id.clone());
            }
        }
        if let Err(e) = self.networks.apply_rules() {
            tracing::warn!("networks: {}", e.message);
        }
        self.networks.sweep(&running);
        for e in self.containers.list() {
            let rec = e.snapshot();
            match rec.state.status {
                Status::Running | Status::Paused => {
                    let shim_dir = self.containers.shim_dir(&rec.id);
                    let watcher = shim::request(
                        &shim_dir,
                        &Request::Attach {
                            stdin: false,
                            stdout: false,
                            stderr: false,
                        },
                    )
                    .await;
                    self.health_start(&e);
                    let d = self.clone();
                    tokio::spawn(async move { d.monitor(e, shim_dir, watcher.ok()).await });
                }
                Status::Restarting => {
                    let d = self.clone();
                    tokio::spawn(async move { d.restart_after_backoff(e).await });
                }
                Status::Removing => {
                    let d = self.clone();
                    let id = rec.id.clone();
                    e.rec().state.status = Status::Dead;
                    let vols = rec.host_config.auto_remove == Some(true);
                    tokio::spawn(async move { d.container_remove_opts(&id, true, vols).await });
                }
                Status::Created => {
                    // A pre-started container claimed before the restart but not started:
                    // its waiting init, shim and endpoint go; a start makes them anew.
                    if let Ok(c) =
                        berth_runtime::Container::load(&self.containers.state_root, &rec.id)
                    {
                        // (In the background: a killed init leaves its cgroup only once its
                        // shim reaped it.)
                        let d = self.clone();
                        tokio::task::spawn_blocking(move || {
                            let _ = c.delete(true);
                            d.net_down(&e);
                            let _ = std::fs::remove_dir_all(d.containers.shim_dir(&rec.id));
                        });
                    }
                }
                _ => {}
            }
        }
    }
}

impl Daemon {
    /// The network side of a start: the container's own namespace on its bridge networks,
    /// or another container's. Writes hosts/resolv.conf with the addresses. Blocking.
    fn net_up(&self, e: &Arc<Entry>, rec: &Record) -> Result<Option<PathBuf>, EngineError> {
        let dir = self.containers.dir(&rec.id);
        let write = |r: &Record| {
            write_etc_files(&dir, r)
                .map_err(|err| EngineError::internal(format!("write {}: {err}", dir.display())))
        };
        match crate::networks::mode_of(rec) {
            crate::networks::Mode::Bridge(_) => {
                let mut r = rec.clone();
                // A start that fails is a server error to Docker's clients (a conflict would
                // read as "already started" and keep `run --rm` waiting for a removal).
                let ns = self.networks.setup(&mut r).map_err(|e| match e.kind {
                    ErrorKind::Conflict | ErrorKind::NotModified => {
                        EngineError::internal(e.message)
                    }
                    _ => e,
                })?;
                {
                    let mut live = e.rec();
                    live.net_live = r.net_live.clone();
                    live.ports_live = r.ports_live.clone();
                    live.sandbox_key = r.sandbox_key.clone();
                }
                if let Err(err) = write(&r) {
                    self.net_down(e);
                    return Err(err);
                }
                Ok(Some(ns))
            }
            crate::networks::Mode::Container(target) => {
                let other = self.containers.get(&target)?.snapshot();
                if other.state.status != Status::Running || other.state.pid <= 0 {
                    // Internal, not Conflict: the start failed (see Bridge above).
                    return Err(EngineError::internal(format!(
                        "cannot join network namespace of a non running container: container {} is {}",
                        other.short_id(),
                        other.state.status.as_str()
                    )));
                }
                // Docker shares the other container's hosts and resolv.conf.
                let odir = self.containers.dir(&other.id);
                for f in ["hosts", "resolv.conf"] {
                    let _ = std::fs::copy(odir.join(f), dir.join(f));
                }
                let ns = if other.sandbox_key.is_empty() {
                    PathBuf::from(format!("/proc/{}/ns/net", other.state.pid))
                } else {
                    PathBuf::from(&other.sandbox_key)
                };
                Ok(Some(ns))
            }
            crate::networks::Mode::None | crate::networks::Mode::Host => {
                write(rec)?;
                Ok(None)
            }
        }
    }

    /// Undoes `net_up` (idempotent). Blocking.
    fn net_down(&self, e: &Arc<Entry>) {
        let mut r = e.snapshot();
        if r.net_live.is_empty() && r.ports_live.is_empty() && r.sandbox_key.is_empty() {
            return;
        }
        self.networks.teardown(&mut r);
        let mut live = e.rec();
        live.net_live.clear();
        live.ports_live.clear();
        live.sandbox_key.clear();
    }
}

/// json-file options from `--log-opt max-size=10m --log-opt max-file=3`.
fn log_options(hc: &HostConfig) -> Result<(u64, u32), EngineError> {
    let mut size = LOG_MAX_SIZE;
    let mut files = LOG_MAX_FILES;
    if let Some(lc) = &hc.log_config {
        match lc.typ.as_deref() {
            None | Some("") | Some("json-file") | Some("local") => {}
            Some(other) => {
                return Err(EngineError::invalid(format!(
                    "logging driver {other:?} is not supported: berth writes json-file logs"
                )))
            }
        }
        for (k, v) in lc.config.iter().flatten() {
            match k.as_str() {
                "max-size" => {
                    size = parse_bytes(v).ok_or_else(|| {
                        EngineError::invalid(format!("invalid log-opt max-size {v:?}"))
                    })?
                }
                "max-file" => {
                    files = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        EngineError::invalid(format!("invalid log-opt max-file {v:?}"))
                    })?
                }
                _ => {}
            }
        }
    }
    Ok((size, files))
}

/// `10m`, `1g`, `512k`, `100` (bytes), as Docker's go-units RAMInBytes (binary multiples).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mul) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: f64 = num.parse().ok()?;
    (n >= 0.0).then_some((n * mul as f64) as u64)
}

/// Seconds since the epoch of an RFC 3339 time as berth writes it (UTC, `Z`).
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let (date, time) = s.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let frac: f64 = format!("0.{}", frac.trim_end_matches(|c: char| !c.is_ascii_digit()))
        .parse()
        .unwrap_or(0.0);
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some((days * 86400 + hh * 3600 + mm * 60 + ss) as f64 + frac)
}

/// Writes the container's /etc/hostname, /etc/hosts and /etc/resolv.conf (bind-mounted at run).
fn write_etc_files(dir: &Path, rec: &Record) -> std::io::Result<()> {
    let host = spec::hostname(rec);
    std::fs::write(dir.join("hostname"), format!("{host}\n"))?;
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for h in rec.host_config.extra_hosts.iter().flatten() {
        if let Some((name, ip)) = h.split_once(':') {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    let mut own = false;
    for ep in rec.net_live.values() {
        for a in [&ep.ip_address, &ep.global_ipv6_address]
            .into_iter()
            .flatten()
        {
            if !a.is_empty() {
                hosts.push_str(&format!("{a}\t{host}\n"));
                own = true;
            }
        }
    }
    if !own {
        hosts.push_str(&format!("127.0.1.1\t{host}\n"));
    }
    std::fs::write(dir.join("hosts"), hosts)?;
    // On a user network: the network's embedded DNS server (its gateway), as Docker's
    // 127.0.0.11; --dns servers after it.
    let user_net_dns = rec.net_live.values().find_map(|ep| {
        ep.dns_names.as_ref()?;
        ep.gateway.clone().filter(|g| !g.is_empty())
    });
    if let Some(gw) = user_net_dns {
        let mut resolv = format!("nameserver {gw}\n");
        for dns in rec.host_config.dns.iter().flatten() {
            resolv.push_str(&format!("nameserver {dns}\n"));
        }
        if let Some(s) = rec
            .host_config
            .dns_search
            .as_ref()
            .filter(|s| !s.is_empty())
        {
            resolv.push_str(&format!("search {}\n", s.join(" ")));
        }
        let mut opts = vec!["ndots:0".to_string()];
        opts.extend(rec.host_config.dns_options.iter().flatten().cloned());
        resolv.push_str(&format!("options {}\n", opts.join(" ")));
        std::fs::write(dir.join("resolv.conf"), resolv)?;
        return Ok(());
    }
    // The host's resolvers minus loopback ones (unreachable from the container's netns).
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut resolv: String = host_resolv
        .lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            !(w.next() == Some("nameserver")
                && w.next()
                    .is_some_and(|a| a.starts_with("127.") || a == "::1"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for dns in rec.host_config.dns.iter().flatten() {
        resolv.push_str(&format!("nameserver {dns}\n"));
    }
    std::fs::write(dir.join("resolv.conf"), resolv)?;
    Ok(())
}

/// Gives a pre-started container's init and its shim (the init's parent) berthd's own
/// priority back: they were made at nice 19 (`make_warm`). Also before such a container is
/// killed: at nice 19 its shim could wait long for the CPU to reap it and go.
pub(crate) fn unnice(init: i32) {
    let ours = rustix::process::getpriority_process(None).unwrap_or(0);
    let shim = std::fs::read_to_string(format!("/proc/{init}/stat"))
        .ok()
        .and_then(|s| {
            // pid (comm) state ppid …: the comm may hold spaces and parentheses.
            let rest = &s[s.rfind(')')? + 1..];
            rest.split_whitespace().nth(1)?.parse::<i32>().ok()
        });
    for pid in [Some(init), shim].into_iter().flatten() {
        if let Some(p) = rustix::process::Pid::from_raw(pid).filter(|_| pid > 1) {
            let _ = rustix::process::setpriority_process(Some(p), ours);
        }
    }
}

fn unreachable_id() -> ContainerId {
    // Ids are made by `new_id` (64 hex): always valid. A fixed valid id keeps this total.
    ContainerId::new("0000000000000000000000000000000000000000000000000000000000000000")
        .expect("a 64-hex id is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_merges_like_docker() {
        let img = berth_image::image::ContainerConfig {
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            entrypoint: Some(vec!["/ep".into()]),
            cmd: Some(vec!["serve".into()]),
            working_dir: Some("/app".into()),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            env: Some(vec!["A=2".into(), "B=3".into()]),
            ..Default::default()
        };
        let c = merge_config(&body, Some(&img));
        assert_eq!(c.env.unwrap(), vec!["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/ep"]);
        assert_eq!(c.cmd.unwrap(), vec!["serve"]);
        assert_eq!(c.working_dir.as_deref(), Some("/app"));
        // An entrypoint in the request drops the image's cmd.
        let body = ContainerCreateBody {
            entrypoint: Some(vec!["sh".into()]),
            ..Default::default()
        };
        let c = merge_config(&body, Some(&img));
        assert_eq!(c.entrypoint.unwrap(), vec!["sh"]);
        assert!(c.cmd.is_none());
        let body = ContainerCreateBody {
            entrypoint: Some(vec!["".into()]),
            cmd: Some(vec!["ls".into()]),
            ..Default::default()
        };
        let c = merge_config(&body, Some(&img));
        assert!(c.entrypoint.is_none());
        assert_eq!(c.cmd.unwrap(), vec!["ls"]);
    }

    #[test]
    fn sizes_and_times_parse() {
        assert_eq!(parse_bytes("10m"), Some(10 << 20));
        assert_eq!(parse_bytes("1.5k"), Some(1536));
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("x"), None);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:10Z"), Some(10.0));
        let a = parse_rfc3339("2026-11-22T02:00:00.5Z").unwrap();
        let b = parse_rfc3339("2026-11-22T02:00:10.5Z").unwrap();
        assert!((b - a - 10.0).abs() < 1e-6);
    }
}
