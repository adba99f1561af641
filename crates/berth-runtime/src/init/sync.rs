//! The typed handshake between the runtime (parent) and the container's init or exec child,
//! over a SOCK_SEQPACKET socketpair: one message per packet, serialized as JSON.

use std::os::fd::{AsFd, OwnedFd};

use serde::{Deserialize, Serialize};

use crate::error::{Result, RuntimeError};

/// Messages of the handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    /// Parent → child: maps written, cgroup joined; go on.
    Go,
    /// Parent → child: the cgroup exists and the child is in it; create the cgroup namespace.
    CgroupReady,
    /// Child → parent: mounts done, about to pivot_root; run createRuntime/prestart hooks.
    MountsReady,
    /// Parent → child: hooks ran.
    HooksDone,
    /// Child → parent: the container is created and waits for start.
    Created,
    /// Child → parent: setup failed; the message says why.
    Error(String),
}

/// One end of the handshake.
#[derive(Debug)]
pub struct Channel(pub OwnedFd);

impl Channel {
    /// A connected pair (parent end, child end), both close-on-exec.
    pub fn pair() -> Result<(Channel, Channel)> {
        use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| RuntimeError::sys("socketpair", e))?;
        Ok((Channel(a), Channel(b)))
    }

    pub fn send(&self, m: &Msg) -> Result<()> {
        let buf = serde_json::to_vec(m).unwrap_or_default();
        match rustix::net::send(self.0.as_fd(), &buf, rustix::net::SendFlags::NOSIGNAL) {
            Ok(_) => Ok(()),
            // The other side is gone: if it said why before it went, that is the error.
            Err(rustix::io::Errno::PIPE) => match self.recv() {
                Ok(Some(Msg::Error(e))) => Err(RuntimeError::Init(e)),
                _ => Err(RuntimeError::Init(
                    "the container process exited during setup".into(),
                )),
            },
            Err(e) => Err(RuntimeError::sys("handshake send", e)),
        }
    }

    /// Receives one message; `None` when the other end closed (for exec: the child exec'd).
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rustix::net::recv(self.0.as_fd(), &mut buf, rustix::net::RecvFlags::empty()) {
                Ok((0, _)) => return Ok(None),
                Ok((n, _)) => {
                    return serde_json::from_slice(&buf[..n])
                        .map(Some)
                        .map_err(|e| RuntimeError::Init(format!("bad handshake message: {e}")))
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(RuntimeError::sys("handshake recv", e)),
            }
        }
    }

    /// Receives and insists on `want`; an `Error` from the child becomes our error.
    pub fn expect(&self, want: &Msg) -> Result<()> {
        match self.recv()? {
            Some(ref m) if m == want => Ok(()),
            Some(Msg::Error(e)) => Err(RuntimeError::Init(e)),
            Some(other) => Err(RuntimeError::Init(format!(
                "handshake: expected {want:?}, got {other:?}"
            ))),
            None => Err(RuntimeError::Init(format!(
                "the container process exited before {want:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_eof() {
        let (a, b) = Channel::pair().unwrap();
        a.send(&Msg::Error("boom".into())).unwrap();
        assert_eq!(b.recv().unwrap(), Some(Msg::Error("boom".into())));
        a.send(&Msg::Created).unwrap();
        b.expect(&Msg::Created).unwrap();
        a.send(&Msg::Error("nope".into())).unwrap();
        assert!(b
            .expect(&Msg::Created)
            .unwrap_err()
            .to_string()
            .contains("nope"));
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}
