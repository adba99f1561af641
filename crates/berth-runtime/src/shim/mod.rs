//! What berth-shim and the engine agree on: the exit record the shim leaves when its process
//! exits, the requests a client sends on the shim's socket and the line it answers with, the
//! ready line, and the 8-byte stream framing of attach (Docker's: stream type, three zero bytes,
//! big-endian length).
//!
//! A shim runs one process: a container's init (container mode: `berth-shim --bundle ...`) or
//! one `docker exec` process in a running container (exec mode: `berth-shim --exec --process
//! PROCESS_JSON ...`, one short-lived shim per exec). Both speak this protocol on `<dir>/sock`:
//!
//! - The ready fd gets one [`Ready`] line: `{"pid":N}` once the process runs (container mode
//!   with --no-start: once it is created), `{"pid":0}` in exec mode with --no-start once the
//!   shim listens, or `{"error":"..."}`, after which the shim exits.
//! - A client connects, sends one [`Request`] line and reads one [`Reply`] line: `{"ok":true}`,
//!   for `start` `{"ok":true,"pid":N}`, or `{"error":"..."}`. Only an attach keeps the
//!   connection: output follows (framed unless the process has a terminal).
//! - When the process exits, the shim writes [`ExitRecord`] to `<dir>/exit` (atomically), then
//!   (container mode) deletes the container, removes the socket, and only then closes the
//!   attached connections: a client that reads EOF may rely on the exit record being there.
//!   A watcher is an attach with stdin, stdout and stderr all false: it gets no output, only
//!   that EOF. A client that hangs up is forgotten; any number may be attached.
//! - An exec process that cannot be started (exec mode) gets an exit record with pid 0 and
//!   [`exec_failure_code`]'s code (127: not found, 126: cannot be invoked), as Docker reports.
//!
//! Everything here is data; the shim's event loop lives in its binary.

pub mod log;

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Written atomically by the shim to `<shim dir>/exit` when its process (the container's init,
/// or the exec process) exits; `pid` is the host pid (0 if an exec process never started) and
/// `exit_code` is 128 + signal for a killed process. Exec processes are never `oom_killed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExitRecord {
    pub pid: i32,
    pub exit_code: i32,
    pub exited_at: String,
    pub oom_killed: bool,
}

impl ExitRecord {
    pub fn write(&self, dir: &Path) -> io::Result<()> {
        let tmp = dir.join(".exit.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?)?;
        std::fs::rename(tmp, dir.join("exit"))
    }

    pub fn read(dir: &Path) -> io::Result<Option<Self>> {
        match std::fs::read(dir.join("exit")) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The first line a client sends on the shim's socket (JSON, newline-terminated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Request {
    /// Stream the container's output (framed unless it has a terminal); with `stdin`, what the
    /// client writes goes to the container's stdin until the client half-closes.
    Attach {
        #[serde(default)]
        stdin: bool,
        #[serde(default = "yes")]
        stdout: bool,
        #[serde(default = "yes")]
        stderr: bool,
    },
    /// Resize the container's terminal.
    Resize { rows: u16, cols: u16 },
    /// Close the container's stdin.
    CloseStdin,
    /// Send a signal to the container's init.
    Kill { signal: i32 },
    /// Start what the shim prepared with --no-start: the created container, or the exec
    /// process. Answered with `{"ok":true,"pid":N}`, or `{"error":"..."}` when it cannot start
    /// (the exec process then has an exit record with 126 or 127 and the shim exits).
    Start,
}

/// The line a shim answers each request with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    /// `{"ok":true}`; a `start` adds the pid of the process it started.
    Ok {
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pid: Option<i32>,
    },
    /// `{"error":"..."}`.
    Error { error: String },
}

impl Reply {
    pub fn ok() -> Self {
        Reply::Ok {
            ok: true,
            pid: None,
        }
    }

    pub fn started(pid: i32) -> Self {
        Reply::Ok {
            ok: true,
            pid: Some(pid),
        }
    }

    /// The error, or `Ok` with the pid a `start` reported.
    pub fn into_result(self) -> Result<Option<i32>, String> {
        match self {
            Reply::Ok { pid, .. } => Ok(pid),
            Reply::Error { error } => Err(error),
        }
    }
}

/// The one line the shim writes to its ready fd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Ready {
    /// The process's host pid; 0 for an exec shim started with --no-start.
    Pid {
        pid: i32,
    },
    Error {
        error: String,
    },
}

/// Docker's exit code for a process that could not be started: 127 when the program does not
/// exist ("executable file not found", or ENOENT naming the program), 126 otherwise (permission
/// denied, exec format error, any other failure to invoke it).
pub fn exec_failure_code(error: &str, program: &str) -> i32 {
    let e = error.to_lowercase();
    if e.contains("executable file not found")
        || (!program.is_empty()
            && error.contains(program)
            && e.contains("no such file or directory"))
    {
        127
    } else {
        126
    }
}

fn yes() -> bool {
    true
}

/// Docker's stream types in the attach framing.
pub const STREAM_STDOUT: u8 = 1;
pub const STREAM_STDERR: u8 = 2;

/// The 8-byte header of one attach frame.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let n = (len as u32).to_be_bytes();
    [stream, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_with_defaults() {
        let r: Request = serde_json::from_str(r#"{"type":"attach","stdin":true}"#).unwrap();
        assert_eq!(
            r,
            Request::Attach {
                stdin: true,
                stdout: true,
                stderr: true
            }
        );
        let r: Request = serde_json::from_str(r#"{"type":"resize","rows":24,"cols":80}"#).unwrap();
        assert_eq!(r, Request::Resize { rows: 24, cols: 80 });
        assert!(serde_json::from_str::<Request>(r#"{"type":"explode"}"#).is_err());
    }

    #[test]
    fn replies_and_ready_lines_have_their_wire_shapes() {
        assert_eq!(
            serde_json::to_string(&Reply::ok()).unwrap(),
            r#"{"ok":true}"#
        );
        assert_eq!(
            serde_json::to_string(&Reply::started(42)).unwrap(),
            r#"{"ok":true,"pid":42}"#
        );
        let r: Reply = serde_json::from_str(r#"{"error":"no"}"#).unwrap();
        assert_eq!(r.into_result(), Err("no".to_string()));
        let r: Reply = serde_json::from_str(r#"{"ok":true}"#).unwrap();
        assert_eq!(r.into_result(), Ok(None));
        let r: Ready = serde_json::from_str(r#"{"pid":0}"#).unwrap();
        assert_eq!(r, Ready::Pid { pid: 0 });
        assert_eq!(
            serde_json::to_string(&Ready::Error { error: "x".into() }).unwrap(),
            r#"{"error":"x"}"#
        );
    }

    #[test]
    fn exec_failures_map_to_dockers_exit_codes() {
        let nf = r#"exec: "nope": executable file not found in $PATH or not executable"#;
        assert_eq!(exec_failure_code(nf, "nope"), 127);
        let enoent = r#"exec "/bin/gone": No such file or directory (os error 2)"#;
        assert_eq!(exec_failure_code(enoent, "/bin/gone"), 127);
        let eacces = r#"exec "/x": Permission denied (os error 13)"#;
        assert_eq!(exec_failure_code(eacces, "/x"), 126);
        assert_eq!(
            exec_failure_code("cannot enter cwd /w: No such file or directory", "sh"),
            126
        );
        assert_eq!(exec_failure_code("", ""), 126);
    }

    #[test]
    fn frames_and_exit_records() {
        assert_eq!(frame_header(STREAM_STDERR, 258), [2, 0, 0, 0, 0, 0, 1, 2]);
        let d = tempfile::tempdir().unwrap();
        assert_eq!(ExitRecord::read(d.path()).unwrap(), None);
        let r = ExitRecord {
            pid: 7,
            exit_code: 3,
            exited_at: "2026-11-22T00:00:00.000000000Z".into(),
            oom_killed: false,
        };
        r.write(d.path()).unwrap();
        assert_eq!(ExitRecord::read(d.path()).unwrap(), Some(r));
    }
}
