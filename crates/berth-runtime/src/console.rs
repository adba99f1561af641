//! The runtime's end of a console socket: a private listening unix socket whose path goes to
//! the container as --console-socket, and the receipt of the pty master the container's init
//! sends over it (runc's protocol). Used by `berth-runc run/exec -t` and by berth-shim.

use std::io::IoSliceMut;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::error::{Result, RuntimeError};

/// A listening console socket in a private directory.
pub struct ConsoleListener {
    pub path: PathBuf,
    listener: UnixListener,
    _dir: TempDir,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl ConsoleListener {
    pub fn new(root: &Path) -> Result<Self> {
        let dir = root.join(format!(".console-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| RuntimeError::io("cannot create console socket directory", &dir, e))?;
        let dir = TempDir(dir);
        let path = dir.0.join("sock");
        let listener = UnixListener::bind(&path)
            .map_err(|e| RuntimeError::io("cannot listen on", &path, e))?;
        Ok(Self {
            path,
            listener,
            _dir: dir,
        })
    }

    /// Accepts the container's connection and receives the pty master.
    pub fn receive_master(&self) -> Result<OwnedFd> {
        use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        let (conn, _) = self
            .listener
            .accept()
            .map_err(|e| RuntimeError::io("cannot accept on", &self.path, e))?;
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = RecvAncillaryBuffer::new(&mut space);
        let mut buf = [0u8; 4096];
        recvmsg(
            &conn,
            &mut [IoSliceMut::new(&mut buf)],
            &mut anc,
            RecvFlags::empty(),
        )
        .map_err(|e| RuntimeError::sys("receive the terminal", e))?;
        for msg in anc.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
                if let Some(fd) = fds.next() {
                    return Ok(fd);
                }
            }
        }
        Err(RuntimeError::Init(
            "the container sent no terminal over the console socket".into(),
        ))
    }
}
