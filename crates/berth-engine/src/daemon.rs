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
