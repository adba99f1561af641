//! Image operations that need more than the image store: registry access with mirrors and
//! credentials, and progress streams for pull and push.

use crate::config::Config;
use crate::error::EngineError;

/// Registry access for the daemon.
pub struct ImageService {
    pub registry: berth_image::registry::RegistryConfig,
}

impl ImageService {
    pub fn new(config: &Config) -> Result<Self, EngineError> {
        Ok(Self {
            registry: berth_image::registry::RegistryConfig {
                mirrors: config.registry_mirrors.clone(),
                insecure: config.insecure_registries.clone(),
                ..Default::default()
            },
        })
    }
}
