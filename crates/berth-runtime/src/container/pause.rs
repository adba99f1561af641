//! `pause` and `resume`: freeze and thaw every process of the container through its cgroup.

use crate::error::{Result, RuntimeError};

use super::Container;

impl Container {
    pub fn pause(&self) -> Result<()> {
        let status = self.status();
        if !status.can_pause() {
            return Err(self.bad_state(status, "only a running container can be paused"));
        }
        self.cgroup_or_err()?.freeze(true)?;
        Ok(())
    }

    pub fn resume(&self) -> Result<()> {
        let status = self.status();
        if !status.can_resume() {
            return Err(self.bad_state(status, "only a paused container can be resumed"));
        }
        self.cgroup_or_err()?.freeze(false)?;
        Ok(())
    }

    pub fn cgroup_or_err(&self) -> Result<&crate::cgroups::Cgroup> {
        self.state.cgroup.as_ref().ok_or_else(|| {
            RuntimeError::Invalid(format!("container {} has no cgroup", self.state.id))
        })
    }
}
