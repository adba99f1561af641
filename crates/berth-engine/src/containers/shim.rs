//! Starting berth-shim and talking to it. berthd is multi-threaded, so it never runs fork-then-
//! setup code: it only spawns the shim (fork+exec, nothing between) and reads its ready line.
//! Requests go over the shim's socket, one JSON line each, answered by one JSON line.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_runtime::shim::Request;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::error::EngineError;

/// Errors of talking to a shim.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("cannot start berth-shim {path}: {source} (is it installed next to berthd, or set BERTH_SHIM?)")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("berth-shim exited before it was ready")]
    NoAnswer,
    #[error("{0}")]
    Failed(String),
    #[error("the container's shim at {path} does not answer: {source}")]
    Gone {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad answer from the shim: {0}")]
    Protocol(String),
}

impl From<ShimError> for EngineError {
    fn from(e: ShimError) -> Self {
        match &e {
            // Docker's own wording for a start that the runtime refused; the CLI maps
            // "not found" / "permission denied" in it to 127 / 126.
            ShimError::Failed(m) => EngineError::new(
                start_error_kind(m),
                format!("failed to create task for container: failed to create shim task: OCI runtime create failed: {m}: unknown"),
            ),
            _ => EngineError::internal(e.to_string()),
        }
    }
}

fn start_error_kind(m: &str) -> berth_types::ErrorKind {
    let l = m.to_ascii_lowercase();
    if l.contains("no such file")
        || l.contains("not found")
        || l.contains("permission denied")
        || l.contains("is a directory")
    {
        berth_types::ErrorKind::InvalidArgument
    } else {
        berth_types::ErrorKind::Internal
    }
}

/// What berthd tells a new shim.
pub struct ShimArgs<'a> {
    pub binary: &'a Path,
    pub id: &'a str,
    pub bundle: &'a Path,
    pub state_root: &'a Path,
    pub dir: &'a Path,
    pub log: &'a Path,
    pub log_max_size: u64,
    pub log_max_files: u32,
    pub tty: bool,
    pub stdin: bool,
    pub no_start: bool,
    /// The runtime teardown may come after the clients' EOF (a container never restarted).
    pub late_teardown: bool,
}

/// Spawns a shim and waits for its ready line; returns the init's pid (0 with `no_start` for
/// exec shims). Blocking: call from `spawn_blocking`.
pub fn spawn(a: &ShimArgs) -> Result<i32, ShimError> {
    let mut cmd = Command::new(a.binary);
    cmd.arg("--id")
        .arg(a.id)
        .arg("--bundle")
        .arg(a.bundle)
        .arg("--state-root")
        .arg(a.state_root)
        .arg("--dir")
        .arg(a.dir)
        .arg("--log")
        .arg(a.log)
        .arg("--log-max-size")
        .arg(a.log_max_size.to_string())
        .arg("--log-max-files")
        .arg(a.log_max_files.to_string());
    if a.tty {
        cmd.arg("--tty");
    }
    if a.stdin {
        cmd.arg("--stdin");
    }
    if a.no_start {
        cmd.arg("--no-start");
    }
    if a.late_teardown {
        cmd.arg("--late-teardown");
    }
    run_ready(cmd, a.binary)
}

/// Runs a shim command with its stdout as the ready pipe (`--ready-fd 1`) and reads its one
/// answer line. Nothing runs between fork and exec, so std spawns with posix_spawn (a vfork):
/// forking berthd itself would copy its page tables on every container start.
pub fn run_ready(mut cmd: Command, binary: &Path) -> Result<i32, ShimError> {
    // With BERTH_TIMING=1 the shim's (and the runtime's) stage marks join berthd's stderr.
    let stderr = if berth_runtime::timing::enabled() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    cmd.env("GLIBC_TUNABLES", shim_tunables());
    cmd.arg("--ready-fd")
        .arg("1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    let mut child = cmd.spawn().map_err(|e| ShimError::Spawn {
        path: binary.to_path_buf(),
        source: e,
    })?;
    let line = child
        .stdout
        .take()
        .and_then(|out| read_line(OwnedFd::from(out)));
    // The shim forks and its first process exits at once.
    let _ = child.wait();
    let line = line.ok_or(ShimError::NoAnswer)?;
    let v: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| ShimError::Protocol(format!("{line:?}: {e}")))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(ShimError::Failed(e.to_string()));
    }
    v.get("pid")
        .and_then(|p| p.as_i64())
        .map(|p| p as i32)
        .ok_or(ShimError::Protocol(line))
}

/// The shim's malloc settings: no per-thread cache. The cache keeps up to 7 freed chunks of
/// every small size, and after setting a container up those pinned a shim's heap pages for the
/// container's life (freed chunks in the cache count as in use: `malloc_trim` cannot give them
/// back): ~100 KiB resident per idle container instead of ~40. Whatever else the daemon was
/// given is kept.
fn shim_tunables() -> String {
    const NO_TCACHE: &str = "glibc.malloc.tcache_count=0";
    match std::env::var("GLIBC_TUNABLES") {
        Ok(t) if !t.is_empty() => format!("{t}:{NO_TCACHE}"),
        _ => NO_TCACHE.to_string(),
    }
}

/// Reads up to the first newline (not to EOF: the container's init may hold the pipe).
fn read_line(fd: OwnedFd) -> Option<String> {
    let mut f = std::fs::File::from(fd);
    let mut out = Vec::new();
    let mut b = [0u8; 256];
    loop {
        let n = f.read(&mut b).ok()?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(&b[..n]);
        if out.contains(&b'\n') {
            break;
        }
        if out.len() > 64 * 1024 {
            return None;
        }
    }
    let s = String::from_utf8_lossy(&out);
    let l = s.lines().next()?.trim().to_string();
    (!l.is_empty()).then_some(l)
}

/// Connects to a shim's socket and sends a request; returns the stream after the answer line
/// (for attach, the stream that follows).
pub async fn request(dir: &Path, req: &Request) -> Result<UnixStream, ShimError> {
    let path = dir.join("sock");
    let gone = |e| ShimError::Gone {
        path: path.clone(),
        source: e,
    };
    let mut s = UnixStream::connect(&path).await.map_err(gone)?;
    let mut line = serde_json::to_vec(req).map_err(|e| ShimError::Protocol(e.to_string()))?;
    line.push(b'\n');
    s.write_all(&line).await.map_err(gone)?;
    let answer = read_answer(&mut s).await.map_err(gone)?;
    let v: serde_json::Value = serde_json::from_slice(&answer)
        .map_err(|e| ShimError::Protocol(format!("{:?}: {e}", String::from_utf8_lossy(&answer))))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(ShimError::Failed(e.to_string()));
    }
    Ok(s)
}

/// Reads the answer line and nothing after it (what follows belongs to the caller): the line is
/// looked at with MSG_PEEK and taken whole; only a line split across writes is read byte by
/// byte.
async fn read_answer(s: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    let mut peek = [0u8; 1024];
    s.readable().await?;
    let seen = s.try_io(tokio::io::Interest::READABLE, || {
        rustix::net::recv(&*s, &mut peek, rustix::net::RecvFlags::PEEK)
            .map(|(n, _)| n)
            .map_err(std::io::Error::from)
    });
    let mut line = Vec::new();
    if let Ok(n) = seen {
        if let Some(i) = peek[..n].iter().position(|b| *b == b'\n') {
            line.resize(i + 1, 0);
            s.read_exact(&mut line).await?;
            return Ok(line);
        }
    }
    let mut r = BufReader::with_capacity(1, s);
    r.read_until(b'\n', &mut line).await?;
    Ok(line)
}

/// Sends a request that needs no stream.
pub async fn call(dir: &Path, req: &Request) -> Result<(), ShimError> {
    request(dir, req).await.map(drop)
}
