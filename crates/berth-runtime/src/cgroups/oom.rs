//! Waiting for OOM events without polling files: v1 registers an eventfd on `memory.oom_control`
//! through `cgroup.event_control`; v2 watches `memory.events` with inotify and compares counters.
//!
//! Must never hang a waiter forever: removal of the cgroup wakes the fd too and is reported as
//! [`OomEvent::CgroupRemoved`].

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::fs::inotify;

use super::files;
use super::CgroupError;

/// What woke an [`OomWatcher`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OomEvent {
    /// The cgroup hit its memory limit and the OOM path ran (v2: the `oom` or `oom_kill` counter of
    /// `memory.events` went up).
    Oom,
    /// The cgroup is gone; no more events will come.
    CgroupRemoved,
}

#[derive(Debug)]
enum Kind {
    V1 {
        /// Kept open for the registration's lifetime.
        _control: OwnedFd,
        dir: PathBuf,
    },
    V2 {
        events: PathBuf,
        last: (u64, u64),
    },
}

/// A pollable OOM notification for one cgroup; see [`super::Cgroup::oom_event_fd`].
#[derive(Debug)]
pub struct OomWatcher {
    fd: OwnedFd,
    kind: Kind,
}

impl AsFd for OomWatcher {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn notify_err(path: &Path) -> impl Fn(rustix::io::Errno) -> CgroupError + '_ {
    move |e| CgroupError::OomNotify {
        path: path.to_path_buf(),
        source: e.into(),
    }
}

fn counters(events: &Path) -> Result<Option<(u64, u64)>, CgroupError> {
    Ok(files::read_opt(events)?.map(|t| {
        let get = |key: &str| {
            files::parse_keyed(&t)
                .find(|(k, _)| *k == key)
                .map_or(0, |(_, v)| v)
        };
        (get("oom"), get("oom_kill"))
    }))
}

impl OomWatcher {
    pub(super) fn v1(dir: &Path) -> Result<Self, CgroupError> {
        let control_path = dir.join("memory.oom_control");
        let efd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(notify_err(&control_path))?;
        let control: OwnedFd = std::fs::File::open(&control_path)
            .map_err(|source| CgroupError::OomNotify {
                path: control_path.clone(),
                source,
            })?
            .into();
        files::write(
            &dir.join("cgroup.event_control"),
            &format!("{} {}", efd.as_raw_fd(), control.as_raw_fd()),
        )?;
        Ok(OomWatcher {
            fd: efd,
            kind: Kind::V1 {
                _control: control,
                dir: dir.to_path_buf(),
            },
        })
    }

    pub(super) fn v2(dir: &Path) -> Result<Self, CgroupError> {
        let events = dir.join("memory.events");
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
            .map_err(notify_err(&events))?;
        inotify::add_watch(
            &fd,
            &events,
            inotify::WatchFlags::MODIFY | inotify::WatchFlags::DELETE_SELF,
        )
        .map_err(notify_err(&events))?;
        let last = counters(&events)?.unwrap_or_default();
        Ok(OomWatcher {
            fd,
            kind: Kind::V2 { events, last },
        })
    }

    /// Consumes what made the fd readable. `None` means nothing relevant (a spurious wake-up or a
    /// `memory.events` change other than an OOM); keep waiting.
    pub fn read(&mut self) -> Result<Option<OomEvent>, CgroupError> {
        let mut buf = [0u8; 4096];
        let drained = loop {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(n) => break n > 0,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => break false,
                Err(e) => {
                    let path = match &self.kind {
                        Kind::V1 { dir, .. } => dir.join("cgroup.event_control"),
                        Kind::V2 { events, .. } => events.clone(),
                    };
                    return Err(notify_err(&path)(e));
                }
            }
        };
        match &mut self.kind {
            Kind::V1 { dir, .. } => {
                if !drained {
                    return Ok(None);
                }
                // The kernel also signals the eventfd when the cgroup goes away.
                if dir.join("cgroup.event_control").exists() {
                    Ok(Some(OomEvent::Oom))
                } else {
                    Ok(Some(OomEvent::CgroupRemoved))
                }
            }
            Kind::V2 { events, last } => {
                // Drain everything queued; each read is one batch of events.
                while let Ok(n) = rustix::io::read(&self.fd, &mut buf) {
                    if n == 0 {
                        break;
                    }
                }
                match counters(events)? {
                    None => Ok(Some(OomEvent::CgroupRemoved)),
                    Some(now) => {
                        let oom = now.0 > last.0 || now.1 > last.1;
                        *last = now;
                        Ok(oom.then_some(OomEvent::Oom))
                    }
                }
            }
        }
    }

    /// Blocks until an OOM event or the cgroup's removal, or until `timeout` passes (`Ok(None)`).
    pub fn wait(&mut self, timeout: Option<Duration>) -> Result<Option<OomEvent>, CgroupError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let left = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return Ok(None);
                    }
                    Some(d - now)
                }
                None => None,
            };
            let ts = left.map(|l| rustix::event::Timespec {
                tv_sec: l.as_secs() as _,
                tv_nsec: l.subsec_nanos() as _,
            });
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, ts.as_ref()) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    return Err(CgroupError::OomNotify {
                        path: PathBuf::from("poll"),
                        source: e.into(),
                    })
                }
            }
            if let Some(ev) = self.read()? {
                return Ok(Some(ev));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_watcher_reports_counter_increase_and_removal() {
        let d = tempfile::tempdir().unwrap();
        let events = d.path().join("memory.events");
        std::fs::write(&events, "low 0\noom 0\noom_kill 0\n").unwrap();
        let mut w = OomWatcher::v2(d.path()).unwrap();
        assert_eq!(w.wait(Some(Duration::from_millis(20))).unwrap(), None);
        std::fs::write(&events, "low 1\noom 0\noom_kill 0\n").unwrap();
        assert_eq!(w.wait(Some(Duration::from_millis(50))).unwrap(), None);
        std::fs::write(&events, "low 1\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(
            w.wait(Some(Duration::from_secs(5))).unwrap(),
            Some(OomEvent::Oom)
        );
        std::fs::remove_file(&events).unwrap();
        assert_eq!(
            w.wait(Some(Duration::from_secs(5))).unwrap(),
            Some(OomEvent::CgroupRemoved)
        );
    }
}
