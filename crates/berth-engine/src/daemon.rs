//! The daemon's shared state: every service the API handlers call. Built once at start-up by
//! [`Daemon::open`], which also restores the containers whose shims outlived a previous berthd.

use std::sync::Arc;

use crate::config::Config;
use crate::containers::Containers;
use crate::error::EngineError;
use crate::events::Events;
use crate::images::ImageService;
use crate::networks::Networks;
use crate::volumes::Volumes;

/// What the handlers share.
pub struct Daemon {
    pub config: Config,
    /// Shared with pull and push tasks, which hold it across awaits.
    pub images: Arc<berth_image::image::ImageStore>,
    /// Registry access (mirrors, credentials) and image operations that stream progress.
    pub image_service: ImageService,
    pub containers: Containers,
    pub networks: Networks,
    pub volumes: Volumes,
    pub events: Events,
    /// The quota filesystems (`--storage-opt size=`, sized volumes).
    pub quotas: crate::quota::Quotas,
    /// Dockerfile builds: the build cache and the builds' directories.
    pub builds: crate::build::Builds,
}

impl Daemon {
    /// Opens the stores under the data root and brings the container records up to date.
    pub fn open(config: Config) -> Result<Arc<Self>, EngineError> {
        std::fs::create_dir_all(&config.data_root).map_err(|e| {
            EngineError::internal(format!(
                "create data root {}: {e}",
                config.data_root.display()
            ))
        })?;
        std::fs::create_dir_all(&config.exec_root).map_err(|e| {
            EngineError::internal(format!(
                "create exec root {}: {e}",
                config.exec_root.display()
            ))
        })?;
        let images = berth_image::image::ImageStore::open(&config.data_root)
            .map(Arc::new)
            .map_err(|e| {
                EngineError::internal(format!(
                    "open the image store in {}: {e}",
                    config.data_root.display()
                ))
            })?;
        let image_service = ImageService::new(&config)?;
        let containers = Containers::open(&config)?;
        let networks = Networks::open(&config)?;
        let volumes = Volumes::open(&config)?;
        let builds = crate::build::Builds::open(&config.data_root)?;
        let quotas = crate::quota::Quotas::new(&config.data_root);
        for (name, e) in quotas.restore() {
            tracing::warn!("quota filesystem {name}: {e}");
        }
        // Quota filesystems of containers removed just before a crash.
        for name in quotas.names() {
            if let Some(id) = name.strip_prefix("c-") {
                if containers.get(id).is_err() {
                    let _ = quotas.remove(&name);
                }
            }
        }
        let d = Arc::new(Self {
            config,
            images,
            image_service,
            containers,
            networks,
            volumes,
            events: Events::new(),
            quotas,
            builds,
        });
        // rmi asks the containers whether an image is in use (weak: no cycle).
        let weak = Arc::downgrade(&d);
        // Pre-started containers never keep an image: they go when it is asked about.
        d.image_service.set_in_use(Box::new(move |id| {
            weak.upgrade()
                .map(|d| {
                    let id = id.to_string();
                    for e in d.containers.prestart.take_image(&id) {
                        d.discard_warm(&e);
                    }
                    d.containers.using_image(&id)
                })
                .unwrap_or_default()
        }));
        Ok(d)
    }
}

/// Run state (shim sockets and exit records, the runtime's state files and fifos, netns files)
/// dies with the machine and is written on every start: it belongs in memory. Where the exec
/// root is not on a tmpfs already (a host whose /run is a disk directory), berthd mounts one
/// there, so that no step of a start waits for a disk journal (measured here: a state file's
/// rename 1.3 ms and a fifo's unlink 0.65 ms under load, on the start's critical path). The
/// mount stays when berthd stops: running containers keep their state, and a restarted berthd
/// finds it. Failing to mount (no privilege) only costs speed. Called by berthd before
/// [`Daemon::open`] (not by it: tests open daemons on temporary roots).
pub fn run_state_in_memory(exec_root: &std::path::Path) {
    match rustix::fs::statfs(exec_root) {
        Ok(s) if s.f_type == libc::TMPFS_MAGIC => {}
        // State of containers started before (by a berthd that kept it on disk) would be
        // hidden under the mount: then it stays on disk.
        Ok(_) if holds_files(exec_root, 4) => tracing::warn!(
            "exec root {}: holds run state from before: it stays on disk",
            exec_root.display()
        ),
        Ok(_) => {
            let r = rustix::mount::mount(
                "tmpfs",
                exec_root,
                "tmpfs",
                rustix::mount::MountFlags::NOSUID | rustix::mount::MountFlags::NODEV,
                c"mode=0711",
            );
            if let Err(e) = r {
                tracing::warn!(
                    "exec root {}: cannot mount a tmpfs ({e}): run state stays on disk",
                    exec_root.display()
                );
            }
        }
        Err(e) => tracing::warn!("exec root {}: statfs: {e}", exec_root.display()),
    }
}

/// Whether `dir` holds anything but directories, `depth` levels down.
fn holds_files(dir: &std::path::Path, depth: u32) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| match e.file_type() {
            Ok(t) if t.is_dir() => depth > 0 && holds_files(&e.path(), depth - 1),
            _ => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_state_goes_to_a_tmpfs_only_where_nothing_is_kept_yet() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(t.path().join("s/abc")).expect("mkdir");
        assert!(!holds_files(t.path(), 4), "empty directories hold nothing");
        std::fs::write(t.path().join("s/abc/exit"), b"{}").expect("write");
        assert!(holds_files(t.path(), 4));
        assert!(!holds_files(t.path(), 0), "only as deep as asked");
    }
}
