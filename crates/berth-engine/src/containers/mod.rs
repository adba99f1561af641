//! Containers: records in SQLite, one berth-shim per running container, the lifecycle verbs.

use crate::config::Config;
use crate::error::EngineError;

/// The container service.
pub struct Containers {}

impl Containers {
    pub fn open(_config: &Config) -> Result<Self, EngineError> {
        Ok(Self {})
    }
}
