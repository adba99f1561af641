//! `berth cp [-a] [-L] [-q] SRC DEST`: files between a container and the host, as `docker cp`
//! (CONTAINER:PATH on one side, `-` for a tar on stdin or stdout).
//!
//! Docker's rules: a trailing `/.` on the source copies its contents; a trailing `/` on the
//! destination requires a directory; a directory copied into an existing directory nests in it;
//! a file copied onto a directory goes inside; otherwise the copy takes the destination's name.
//! The archive from a container is hostile: nothing of it lands outside the destination.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine as _;
use clap::Args;
use http_body_util::BodyExt;
use hyper::Method;
use serde::Deserialize;

use crate::client::{enc, with_query, ApiError, Client, ReaderBody};

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short = 'a', long = "archive")]
    pub archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long = "follow-link")]
    pub follow_link: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if no
    /// terminal is attached
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// CONTAINER:SRC_PATH, SRC_PATH or -
    pub src: String,
    /// CONTAINER:DEST_PATH, DEST_PATH or -
    pub dest: String,
}

/// Docker's `container.PathStat`.
#[derive(Debug, Clone, Default, Deserialize)]
struct PathStat {
    #[serde(default)]
    mode: u32,
    #[serde(default, rename = "linkTarget")]
    link_target: String,
}

const GO_DIR: u32 = 1 << 31;
const GO_SYMLINK: u32 = 1 << 27;

/// `CONTAINER:PATH` → (container, path); a host path (absolute, or with no colon before a
/// slash) → None. As docker's `splitCpArg`.
fn split_arg(arg: &str) -> Option<(&str, &str)> {
    if arg.starts_with('/') || arg.starts_with('.') {
        return None;
    }
    let (c, p) = arg.split_once(':')?;
    if c.contains('/') {
        return None;
    }
    Some((c, p))
}

/// go-units' `HumanSize`: 4 significant digits, decimal units.
fn human_size(n: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let int_digits = if v < 1.0 {
        1
    } else {
        (v.log10().floor() as usize) + 1
    };
    let prec = 4usize.saturating_sub(int_digits);
    let mut s = format!("{v:.prec$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", UNITS.get(i).unwrap_or(&"B"))
}

pub async fn run(client: &mut Client, args: CpArgs) -> Result<i32> {
    match (split_arg(&args.src), split_arg(&args.dest)) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
        (Some((c, p)), None) => from_container(client, &args, c, p).await,
        (None, Some((c, p))) => to_container(client, &args, c, p).await,
    }
}

async fn stat(client: &mut Client, container: &str, path: &str) -> Result<Option<PathStat>> {
    let url = with_query(
        &format!("/containers/{}/archive", enc(container)),
        &[("path", path.to_string())],
    );
    match client.send(Method::HEAD, &url, None, &[]).await {
        Ok(resp) => Ok(Some(parse_stat(resp.headers())?)),
        Err(e) => match e.downcast_ref::<ApiError>() {
            Some(a) if a.status == 404 => Ok(None),
            _ => Err(e),
        },
    }
}

fn parse_stat(h: &hyper::HeaderMap) -> Result<PathStat> {
    let v = h
        .get("X-Docker-Container-Path-Stat")
        .ok_or_else(|| anyhow!("the daemon sent no X-Docker-Container-Path-Stat header"))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(v.as_bytes())
        .context("decode the path stat")?;
    serde_json::from_slice(&raw).context("decode the path stat")
}

/// Docker's message for a container path that is not there.
fn no_such(container: &str, path: &str) -> anyhow::Error {
    anyhow!("Error response from daemon: Could not find the file {path} in container {container}")
}

fn dir_of(p: &str) -> String {
    let t = p.trim_end_matches('/');
    match t.rfind('/') {
        Some(0) => "/".into(),
        Some(i) => t[..i].into(),
        None => ".".into(),
    }
}

fn base_of(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

async fn from_container(
    client: &mut Client,
    args: &CpArgs,
    container: &str,
    src: &str,
) -> Result<i32> {
    let mut src = src.to_string();
    let Some(st) = stat(client, container, &src).await? else {
        return Err(no_such(container, &src));
    };
    if args.follow_link && st.mode & GO_SYMLINK != 0 {
        src = st.link_target.clone();
    }
    let url = with_query(
        &format!("/containers/{}/archive", enc(container)),
        &[("path", src.clone())],
    );
    let resp = client.send_own(Method::GET, &url, None).await?;
    let st = parse_stat(resp.headers())?;
    let mut body = resp.into_body();
    let counted = Arc::new(AtomicU64::new(0));
    if args.dest == "-" {
        let mut out = io::stdout().lock();
        while let Some(frame) = body.frame().await {
            if let Ok(d) = frame.context("read the daemon's stream")?.into_data() {
                out.write_all(&d)?;
            }
        }
        out.flush()?;
        return Ok(0);
    }
    // Where the archive goes, and what its top entry is renamed to.
    let dst = PathBuf::from(&args.dest);
    let src_base = base_of(&src);
    let src_is_dir = st.mode & GO_DIR != 0;
    let (dir, rename) = match std::fs::metadata(&dst) {
        Ok(m) if m.is_dir() => (dst.clone(), None),
        Ok(_) if src_is_dir => bail!("cannot copy directory"),
        Ok(_) if args.dest.ends_with('/') => bail!("not a directory"),
        Ok(_) => (parent(&dst), Some(base_of(&args.dest))),
        Err(_) if args.dest.ends_with('/') || args.dest.ends_with("/.") => {
            bail!("destination \"{}\" must be a directory", args.dest)
        }
        Err(_) => {
            let p = parent(&dst);
            if !p.is_dir() {
                bail!("no such directory: {}", p.display());
            }
            (p, Some(base_of(&args.dest)))
        }
    };
    let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(8);
    let keep_owner = args.archive;
    let worker = std::thread::spawn(move || {
        let r = ChannelReader {
            rx,
            buf: bytes::Bytes::new(),
        };
        unpack(r, &dir, &src_base, rename.as_deref(), keep_owner)
    });
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.context("read the daemon's stream")?.into_data() {
            counted.fetch_add(d.len() as u64, Ordering::Relaxed);
            if tx.send(d).is_err() {
                break;
            }
        }
    }
    drop(tx);
    worker
        .join()
        .map_err(|_| anyhow!("the unpacking thread panicked"))??;
    if show_progress(args) {
        let shown = std::path::absolute(&args.dest).unwrap_or_else(|_| args.dest.clone().into());
        eprintln!(
            "Successfully copied {} to {}",
            human_size(counted.load(Ordering::Relaxed)),
            shown.display()
        );
    }
    Ok(0)
}

/// As docker: the line is for people; it is left out with -q or when stderr is no terminal.
fn show_progress(args: &CpArgs) -> bool {
    !args.quiet && rustix::termios::isatty(rustix::stdio::stderr())
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(x) if !x.as_os_str().is_empty() => x.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Reads what the async side received.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<bytes::Bytes>,
    buf: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.buf = b,
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        let chunk = self.buf.split_to(n);
        if let Some(dst) = out.get_mut(..n) {
            dst.copy_from_slice(&chunk);
        }
        Ok(n)
    }
}

/// Unpacks a container's archive into `dir`, renaming its top entry `src_base` to `rename`.
/// Names that climb out, or whose parent resolves (through a link the archive made) outside
/// `dir`, are refused.
fn unpack<R: Read>(
    r: R,
    dir: &Path,
    src_base: &str,
    rename: Option<&str>,
    keep_owner: bool,
) -> Result<()> {
    let canon = dir
        .canonicalize()
        .with_context(|| format!("resolve {}", dir.display()))?;
    let mut a = tar::Archive::new(r);
    a.set_preserve_permissions(true);
    a.set_preserve_mtime(true);
    a.set_preserve_ownerships(keep_owner);
    a.set_overwrite(true);
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for e in a.entries().context("read the archive")? {
        let mut e = e.context("read the archive")?;
        let raw = e.path().context("read the archive")?.into_owned();
        let mut rel = PathBuf::new();
        for (i, c) in raw.components().enumerate() {
            match c {
                Component::Normal(n) => {
                    if i == 0 && rename.is_some() && n == src_base {
                        rel.push(rename.unwrap_or_default());
                    } else {
                        rel.push(n);
                    }
                }
                Component::CurDir if i == 0 => {
                    if let Some(r) = rename {
                        rel.push(r);
                    }
                }
                Component::CurDir => {}
                _ => bail!("invalid archive entry {}: it climbs out", raw.display()),
            }
        }
        if rel.as_os_str().is_empty() {
            continue; // "." into an existing directory: leave it as it is
        }
        let target = canon.join(&rel);
        if let Some(p) = target.parent() {
            // The deepest existing ancestor must resolve inside: a link the archive made
            // earlier never leads the extraction (or the directories it creates) out.
            let mut existing = p;
            while !existing.exists() {
                existing = existing.parent().unwrap_or(&canon);
            }
            let cp = existing
                .canonicalize()
                .with_context(|| format!("resolve {}", existing.display()))?;
            if !cp.starts_with(&canon) {
                bail!(
                    "invalid archive entry {}: it leads outside {}",
                    raw.display(),
                    dir.display()
                );
            }
            std::fs::create_dir_all(p).with_context(|| format!("create {}", p.display()))?;
        }
        if e.header().entry_type() == tar::EntryType::Directory {
            dir_times.push((target.clone(), e.header().mtime().unwrap_or(0)));
        }
        e.unpack(&target)
            .with_context(|| format!("extract {}", target.display()))?;
    }
    // Directory mtimes after their children were written.
    for (p, t) in dir_times.into_iter().rev() {
        let ts = rustix::fs::Timespec {
            tv_sec: i64::try_from(t).unwrap_or(0),
            tv_nsec: 0,
        };
        let _ = rustix::fs::utimensat(
            rustix::fs::CWD,
            &p,
            &rustix::fs::Timestamps {
                last_access: ts,
                last_modification: ts,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        );
    }
    Ok(())
}

async fn to_container(
    client: &mut Client,
    args: &CpArgs,
    container: &str,
    dst: &str,
) -> Result<i32> {
    let mut dst_path = dst.to_string();
    let mut dst_stat = stat(client, container, &dst_path).await?;
    if let Some(st) = &dst_stat {
        if st.mode & GO_SYMLINK != 0 {
            let t = &st.link_target;
            dst_path = if t.starts_with('/') {
                t.clone()
            } else {
                format!("{}/{t}", dir_of(&dst_path))
            };
            dst_stat = stat(client, container, &dst_path).await?;
        }
    }
    let url_for = |path: &str| {
        let mut q = vec![
            ("path", path.to_string()),
            ("noOverwriteDirNonDir", "true".to_string()),
        ];
        if args.archive {
            q.push(("copyUIDGID", "true".to_string()));
        }
        with_query(&format!("/containers/{}/archive", enc(container)), &q)
    };
    if args.src == "-" {
        let body = ReaderBody::spawn(io::stdin());
        client
            .send_stream(
                Method::PUT,
                &url_for(&dst_path),
                body,
                "application/x-tar",
                &[],
            )
            .await?;
        return Ok(0);
    }
    let mut src = PathBuf::from(&args.src);
    let meta = std::fs::symlink_metadata(&src)
        .map_err(|_| anyhow!("lstat {}: no such file or directory", args.src))?;
    if args.follow_link && meta.file_type().is_symlink() {
        src = src
            .canonicalize()
            .with_context(|| format!("resolve {}", args.src))?;
    }
    let src_is_dir = std::fs::symlink_metadata(&src).is_ok_and(|m| m.is_dir());
    let contents = args.src.ends_with("/.") && src_is_dir;
    let (extract_dir, name) = match &dst_stat {
        Some(st) if st.mode & GO_DIR != 0 => (
            dst_path.clone(),
            if contents {
                ".".to_string()
            } else {
                base_of(&args.src)
            },
        ),
        Some(_) if src_is_dir => bail!("cannot copy directory"),
        Some(_) if dst.ends_with('/') => bail!("destination \"{dst}\" must be a directory"),
        Some(_) => (dir_of(&dst_path), base_of(&dst_path)),
        None if dst.ends_with('/') => return Err(no_such(container, dst)),
        None => (dir_of(&dst_path), base_of(&dst_path)),
    };
    // The tar is written by a thread into a pipe the body streams from.
    let (rd, wr) = rustix::pipe::pipe().context("pipe")?;
    let counted = Arc::new(AtomicU64::new(0));
    let c2 = counted.clone();
    let builder = std::thread::spawn(move || -> Result<()> {
        let w = CountingWriter {
            inner: std::fs::File::from(wr),
            counted: c2,
        };
        let mut b = tar::Builder::new(w);
        b.mode(tar::HeaderMode::Complete);
        b.follow_symlinks(false);
        if src_is_dir {
            b.append_dir_all(&name, &src)
                .with_context(|| format!("archive {}", src.display()))?;
        } else {
            b.append_path_with_name(&src, &name)
                .with_context(|| format!("archive {}", src.display()))?;
        }
        b.into_inner()?.flush()?;
        Ok(())
    });
    let body = ReaderBody::spawn(std::fs::File::from(rd));
    let sent = client
        .send_stream(
            Method::PUT,
            &url_for(&extract_dir),
            body,
            "application/x-tar",
            &[],
        )
        .await;
    let built = builder
        .join()
        .map_err(|_| anyhow!("the archiving thread panicked"))?;
    if let Err(e) = sent {
        if e.downcast_ref::<ApiError>()
            .is_some_and(|a| a.status == 404)
        {
            return Err(no_such(container, &extract_dir));
        }
        return Err(e);
    }
    built?;
    if show_progress(args) {
        eprintln!(
            "Successfully copied {} to {}",
            human_size(counted.load(Ordering::Relaxed)),
            args.dest
        );
    }
    Ok(0)
}

struct CountingWriter<W> {
    inner: W,
    counted: Arc<AtomicU64>,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(b)?;
        self.counted.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_like_docker() {
        assert_eq!(split_arg("c:/x"), Some(("c", "/x")));
        assert_eq!(split_arg("/a:b"), None);
        assert_eq!(split_arg("./c:d"), None);
        assert_eq!(split_arg("a/b:c"), None);
        assert_eq!(split_arg("file"), None);
        assert_eq!(split_arg("-"), None);
    }

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(2560), "2.56kB");
        assert_eq!(human_size(12_288), "12.29kB");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(human_size(0), "0B");
    }

    #[test]
    fn unpack_renames_and_refuses_escapes() {
        let t = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o4755);
        b.append_data(&mut h, "f", &b"hi"[..]).unwrap();
        let data = b.into_inner().unwrap();
        unpack(&data[..], t.path(), "f", Some("g"), false).unwrap();
        assert_eq!(std::fs::read_to_string(t.path().join("g")).unwrap(), "hi");

        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "l", "/").unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        b.append_data(&mut h, "l/escaped", &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        assert!(unpack(&data[..], t.path(), "l", None, false).is_err());
        assert!(!Path::new("/escaped").exists());
    }
}
