//! Images for end-to-end tests without Docker Hub: a `busybox:latest` docker-archive built from
//! the busybox test rootfs (one layer, `CMD ["sh"]`, fixed timestamps, so the same image id every
//! time), a private `docker-registry` (optionally with htpasswd auth) killed on drop, and
//! seeding: `load_busybox` puts busybox:latest into a berthd, `seed_registry` puts it into a
//! registry as `library/busybox:latest` with skopeo (so a berthd started with
//! `--registry-mirror` pulls `busybox` from there), independently of berthd.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::daemon_util::{path_str, BerthDaemon};
use super::{cache_dir, rootfs_template, run_cmd, sha256, FileLock};

/// The user and password of registries started with auth.
pub const REGISTRY_USER: &str = "berth";
pub const REGISTRY_PASS: &str = "s3cret-pass";
/// bcrypt of REGISTRY_PASS (cost 4), as `htpasswd -B` writes it.
const HTPASSWD: &str = "berth:$2b$04$tUeuPE1Ym7jjtJcupiBT0u6aPO3Y2Y1Y7Z65oTtRlyknIGXiy4N7i\n";

/// The fixed creation time of the test image.
pub const BUSYBOX_CREATED: &str = "2024-01-02T03:04:05Z";

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A docker-registry on 127.0.0.1 with storage in a temporary directory; killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `auth`, it wants [`REGISTRY_USER`]/[`REGISTRY_PASS`].
    pub fn start(auth: bool) -> Result<Self> {
        for _ in 0..5 {
            let dir = tempfile::Builder::new()
                .prefix("berth-e2e-registry")
                .tempdir()?;
            let port = free_port()?;
            let storage = dir.path().join("storage");
            std::fs::create_dir(&storage)?;
            let mut cfg = format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            );
            if auth {
                let pw = dir.path().join("htpasswd");
                std::fs::write(&pw, HTPASSWD)?;
                cfg.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    pw.display()
                ));
            }
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(&cfg_path, cfg)?;
            let log = std::fs::File::create(dir.path().join("registry.log"))?;
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("start docker-registry (install it: scripts/setup.sh)")?;
            let mut reg = Self { child, port, dir };
            if reg.wait_ready() {
                return Ok(reg);
            }
            // Most likely the port was taken meanwhile: drop this one, try another.
        }
        bail!("docker-registry did not start")
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut buf = [0u8; 12];
                if s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.") {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`, as `--registry-mirror` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A docker-archive (`docker save` layout: manifest.json, `<id>.json`, `<layer>/layer.tar`) of
/// `busybox:latest` made from the busybox test rootfs; built once into the e2e cache.
pub fn busybox_archive() -> Result<PathBuf> {
    let cache = cache_dir();
    let out = cache.join("busybox-image.tar");
    let _lock = FileLock::new(&cache.join("busybox-image.lock"))?;
    if out.exists() {
        return Ok(out);
    }
    let work = tempfile::Builder::new()
        .prefix("busybox-image")
        .tempdir_in(&cache)?;
    let layer = work.path().join("layer.tar");
    let st = Command::new("tar")
        .args(["--sort=name", "--numeric-owner", "--owner=0", "--group=0"])
        .arg("--mtime=2024-01-02 03:04:05Z")
        .arg("-C")
        .arg(rootfs_template())
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()?;
    if !st.success() {
        bail!("tar of the busybox rootfs failed");
    }
    let layer_hex = sha256(&layer)?;
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": BUSYBOX_CREATED,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_hex}")]},
        "history": [
            {"created": BUSYBOX_CREATED, "created_by": "/bin/sh -c #(nop) ADD file:busybox in / "},
            {"created": BUSYBOX_CREATED, "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": true},
        ],
    });
    let cfg_bytes = serde_json::to_vec(&config)?;
    let cfg_file = work.path().join("config.json");
    std::fs::write(&cfg_file, &cfg_bytes)?;
    let cfg_hex = sha256(&cfg_file)?;
    let tree = work.path().join("tree");
    std::fs::create_dir_all(tree.join(&layer_hex))?;
    std::fs::rename(&layer, tree.join(&layer_hex).join("layer.tar"))?;
    std::fs::rename(&cfg_file, tree.join(format!("{cfg_hex}.json")))?;
    let manifest = json!([{
        "Config": format!("{cfg_hex}.json"),
        "RepoTags": ["busybox:latest"],
        "Layers": [format!("{layer_hex}/layer.tar")],
    }]);
    std::fs::write(tree.join("manifest.json"), serde_json::to_vec(&manifest)?)?;
    let tmp_out = work.path().join("image.tar");
    let st = Command::new("tar")
        .args(["--sort=name", "--numeric-owner", "--owner=0", "--group=0"])
        .arg("-C")
        .arg(&tree)
        .arg("-cf")
        .arg(&tmp_out)
        .args(["manifest.json", &format!("{cfg_hex}.json"), &layer_hex])
        .status()?;
    if !st.success() {
        bail!("tar of the busybox image failed");
    }
    std::fs::rename(&tmp_out, &out)?;
    Ok(out)
}

/// The image id `busybox_archive` loads as.
pub fn busybox_id() -> Result<String> {
    let out = run_cmd(
        Command::new("tar")
            .arg("-xOf")
            .arg(busybox_archive()?)
            .arg("manifest.json"),
        None,
        Duration::from_secs(30),
    )?
    .ok()?;
    let m: serde_json::Value = serde_json::from_str(&out.stdout)?;
    let cfg = m[0]["Config"].as_str().context("no Config")?;
    Ok(format!("sha256:{}", cfg.trim_end_matches(".json")))
}

/// Loads `busybox:latest` into a berthd with `docker load`.
pub fn load_busybox(d: &BerthDaemon) -> Result<()> {
    let archive = busybox_archive()?;
    let out = d.docker_ok(&["load", "-i", &path_str(&archive)])?;
    if !out.contains("Loaded image: busybox:latest") {
        bail!("docker load said: {out}");
    }
    Ok(())
}

/// Puts busybox into `reg` as `library/busybox:latest` (what a mirror serves for `busybox`),
/// with skopeo, so that no berthd is involved.
pub fn seed_registry(reg: &Registry) -> Result<()> {
    seed_registry_as(reg, "library/busybox:latest")
}

/// Puts busybox into `reg` under `path:tag`.
pub fn seed_registry_as(reg: &Registry, repo_tag: &str) -> Result<()> {
    let archive = busybox_archive()?;
    let out = run_cmd(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("docker://{}/{repo_tag}", reg.addr())),
        None,
        Duration::from_secs(120),
    )?;
    out.ok()?;
    Ok(())
}

/// A rootfs tar of the busybox test rootfs (for `docker import`).
pub fn rootfs_tar(dir: &Path) -> Result<PathBuf> {
    let p = dir.join("rootfs.tar");
    let st = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(rootfs_template())
        .arg("-cf")
        .arg(&p)
        .arg(".")
        .status()?;
    if !st.success() {
        bail!("tar of the busybox rootfs failed");
    }
    Ok(p)
}
