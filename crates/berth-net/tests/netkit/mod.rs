//! Private network namespaces for the crate tests: every kernel object a test makes lives in
//! a namespace the test created, so the host's interfaces, routes, sysctls and nft tables
//! are never touched and tests run in parallel. Dropping a `Ns` removes it.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_net::netns;

pub struct Ns {
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Ns {
    pub fn new() -> Ns {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ns");
        netns::create(&path).expect("create netns");
        Ns { path, _dir: dir }
    }

    /// Runs `f` on a thread inside this namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        netns::run_in(&self.path, f).expect("run_in")
    }

    /// Runs a command inside this namespace; (success, stdout + stderr).
    pub fn sh(&self, cmd: &str) -> (bool, String) {
        let cmd = cmd.to_string();
        self.run(move || {
            let out = Command::new("sh").arg("-c").arg(&cmd).output().expect("sh");
            let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&out.stderr));
            (out.status.success(), s)
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = netns::remove(&self.path);
    }
}

/// A TCP listener in `ns` that answers every connection with `reply` and closes it.
pub fn serve(ns: &Ns, addr: &str, reply: &'static str) -> SocketAddr {
    let addr = addr.to_string();
    let l = ns.run(move || TcpListener::bind(addr).expect("bind listener"));
    let local = l.local_addr().expect("local_addr");
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let _ = c.write_all(reply.as_bytes());
        }
    });
    local
}

/// Connects from inside `ns` and reads what the server says.
pub fn fetch(ns: &Ns, to: SocketAddr) -> std::io::Result<String> {
    ns.run(move || {
        let mut c = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
        c.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut s = String::new();
        c.read_to_string(&mut s)?;
        Ok(s)
    })
}

/// True if a connection from inside `ns` to `to` does not get through within 300 ms.
pub fn blocked(ns: &Ns, to: SocketAddr) -> bool {
    ns.run(move || TcpStream::connect_timeout(&to, Duration::from_millis(300)).is_err())
}
