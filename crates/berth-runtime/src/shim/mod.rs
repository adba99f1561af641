//! What berth-shim and the engine agree on: the exit record the shim leaves when the container's
//! init exits, the requests a client sends on the shim's socket, and the 8-byte stream framing
//! of attach (Docker's: stream type, three zero bytes, big-endian length).
//!
//! Everything here is data; the shim's event loop lives in its binary.

pub mod log;

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Written atomically by the shim to `<shim dir>/exit` when the init exits.
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
    /// Start a container the shim created with --no-start.
    Start,
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
