//! `ps`: the processes of a container, from its cgroup.

use crate::error::Result;

use super::Container;

impl Container {
    /// The host pids of every process in the container.
    pub fn pids(&self) -> Result<Vec<i32>> {
        match &self.state.cgroup {
            Some(cg) => Ok(cg.pids()?),
            None if self.init_alive() => Ok(vec![self.state.pid]),
            None => Ok(Vec::new()),
        }
    }
}
