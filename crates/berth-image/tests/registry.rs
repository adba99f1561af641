//! The registry client against a real registry: Debian's `docker-registry` (the distribution
//! registry Docker Hub runs), started per test on 127.0.0.1 and seeded by skopeo from OCI
//! layouts the tests build (a busybox rootfs from /bin/busybox, random-data layers, a manifest
//! list). Small in-process proxies on 127.0.0.1 cut a download halfway once, or demand bearer
//! tokens from a tiny token server. One registry speaks HTTPS with a certificate for IP
//! 127.0.0.1 signed by a CA openssl makes per test, trusted through a certs.d directory. All
//! traffic stays on the loopback interface.
//!
//! Each test has its own registry, data root and temp dirs, removed by Drop guards even when it
//! fails, so the tests run in parallel. Tests that need docker-registry or skopeo say so and pass
//! without them (scripts/setup.sh installs both).

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_image::image::ImageStore;
use berth_image::registry::{
    no_progress, Credentials, Progress, ProgressFn, Registry, RegistryConfig, RegistryError,
};
use berth_types::{Digest, Reference};
use sha2::{Digest as _, Sha256};

const USER: &str = "berth";
const PASS: &str = "s3cret-pass";
/// bcrypt of PASS (cost 4), as htpasswd -B writes it.
const HTPASSWD: &str = "berth:$2b$04$tUeuPE1Ym7jjtJcupiBT0u6aPO3Y2Y1Y7Z65oTtRlyknIGXiy4N7i\n";

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn tools() -> bool {
    let ok = have("docker-registry") && have("skopeo");
    if !ok {
        eprintln!(
            "skipped: docker-registry and skopeo are needed (scripts/setup.sh installs them)"
        );
    }
    ok
}

fn sha256(data: &[u8]) -> String {
    let out: [u8; 32] = Sha256::digest(data).into();
    Digest::sha256_from_bytes(&out).to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A docker-registry on 127.0.0.1; killed and its storage removed on drop.
struct RegistryProc {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl RegistryProc {
    fn start(basic_auth: bool) -> Self {
        Self::start_with(basic_auth, None)
    }

    /// With `tls` (certificate and key files), the registry speaks only HTTPS.
    fn start_with(basic_auth: bool, tls: Option<(&Path, &Path)>) -> Self {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let storage = dir.path().join("storage");
            fs::create_dir(&storage).unwrap();
            let mut cfg = format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            );
            if let Some((cert, key)) = tls {
                cfg.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                ));
            }
            if basic_auth {
                let pw = dir.path().join("htpasswd");
                fs::write(&pw, HTPASSWD).unwrap();
                cfg.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    pw.display()
                ));
            }
            let cfg_path = dir.path().join("config.yml");
            fs::write(&cfg_path, cfg).unwrap();
            let log = fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&cfg_path)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start docker-registry");
            let mut reg = RegistryProc { child, port, dir };
            if reg.wait_ready() {
                return reg;
            }
            // Most likely the port was taken meanwhile: try another.
        }
        panic!("docker-registry did not start");
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

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The file the registry keeps a blob's data in.
    fn blob_file(&self, d: &str) -> PathBuf {
        let hex = d.strip_prefix("sha256:").unwrap();
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for RegistryProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- OCI layouts -------------------------------------------------------------------------

/// A tar being built.
struct TarBuilder(tar::Builder<Vec<u8>>);

impl TarBuilder {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn dir(&mut self, path: &str) {
        let mut h = Self::header(tar::EntryType::Directory, 0o755, 0);
        self.0.append_data(&mut h, path, &[][..]).unwrap();
    }

    fn file(&mut self, path: &str, mode: u32, data: &[u8]) {
        let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
    }

    fn symlink(&mut self, path: &str, target: &str) {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.0.append_link(&mut h, path, target).unwrap();
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// The busybox rootfs as one layer tar: /bin/busybox, applet links, /etc/passwd and group.
fn busybox_tar() -> Vec<u8> {
    let mut t = TarBuilder::new();
    t.dir("bin/");
    t.file("bin/busybox", 0o755, &fs::read("/bin/busybox").unwrap());
    for applet in ["sh", "ls", "cat", "echo", "true", "false", "sleep", "id"] {
        t.symlink(&format!("bin/{applet}"), "busybox");
    }
    t.dir("etc/");
    t.file("etc/passwd", 0o644, b"root:x:0:0:root:/root:/bin/sh\n");
    t.file("etc/group", 0o644, b"root:x:0:\n");
    t.finish()
}

/// A layer with one file of `size` pseudo-random (incompressible) bytes.
fn random_tar(name: &str, size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut data = Vec::with_capacity(size);
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size);
    let mut t = TarBuilder::new();
    t.dir("data/");
    t.file(&format!("data/{name}"), 0o644, &data);
    t.finish()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// An OCI image layout under construction.
struct Layout {
    dir: tempfile::TempDir,
    refs: Vec<serde_json::Value>,
}

/// An image written into a layout.
#[derive(Clone, Debug)]
struct BuiltImage {
    manifest: String,
    manifest_size: usize,
    config: String,
    layers: Vec<String>,
}

impl Layout {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        fs::write(
            dir.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        Self {
            dir,
            refs: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn blob(&self, data: &[u8]) -> String {
        let d = sha256(data);
        fs::write(
            self.path()
                .join("blobs/sha256")
                .join(d.strip_prefix("sha256:").unwrap()),
            data,
        )
        .unwrap();
        d
    }

    /// Writes an image of these layer tars (gzipped) for `arch`.
    fn image(&self, tars: &[Vec<u8>], arch: &str) -> BuiltImage {
        let mut layers = Vec::new();
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        for t in tars {
            diff_ids.push(sha256(t));
            let gz = gzip(t);
            let d = self.blob(&gz);
            descs.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": d, "size": gz.len()}));
            layers.push(d);
        }
        let config = serde_json::to_vec(&serde_json::json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": tars.iter().map(|_| serde_json::json!({"created_by": "test"})).collect::<Vec<_>>(),
        }))
        .unwrap();
        let config_d = self.blob(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_d, "size": config.len()},
            "layers": descs,
        }))
        .unwrap();
        BuiltImage {
            manifest: self.blob(&manifest),
            manifest_size: manifest.len(),
            config: config_d,
            layers,
        }
    }

    /// Names `img` as `tag` in index.json.
    fn tag(&mut self, tag: &str, img: &BuiltImage) {
        self.refs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": img.manifest, "size": img.manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": tag}}));
        self.write_index();
    }

    /// Writes a manifest list of `(image, arch)` and names it `tag`; returns its digest.
    fn tag_list(&mut self, tag: &str, imgs: &[(&BuiltImage, &str)]) -> String {
        let list = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": imgs.iter().map(|(i, arch)| serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": i.manifest, "size": i.manifest_size,
                "platform": {"architecture": arch, "os": "linux"}})).collect::<Vec<_>>(),
        }))
        .unwrap();
        let d = self.blob(&list);
        self.refs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d, "size": list.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}}));
        self.write_index();
        d
    }

    fn write_index(&self) {
        let idx = serde_json::json!({"schemaVersion": 2, "manifests": self.refs});
        fs::write(
            self.path().join("index.json"),
            serde_json::to_vec(&idx).unwrap(),
        )
        .unwrap();
    }

    /// `skopeo copy` of `tag` to `dest` (`127.0.0.1:port/repo:tag`).
    fn push(&self, tag: &str, dest: &str, all: bool, creds: bool) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--quiet", "--dest-tls-verify=false"]);
        if all {
            cmd.arg("--all");
        }
        if creds {
            cmd.arg(format!("--dest-creds={USER}:{PASS}"));
        }
        let out = cmd
            .arg(format!("oci:{}:{tag}", self.path().display()))
            .arg(format!("docker://{dest}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo copy to {dest}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The manifest digest skopeo sees for `reference` in the registry.
fn skopeo_digest(reference: &str) -> String {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sha256(&out.stdout)
}

// ---- berth side ------------------------------------------------------------------------------

struct Berth {
    _root: tempfile::TempDir,
    store: Arc<ImageStore>,
    rt: tokio::runtime::Runtime,
}

impl Berth {
    fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let store = Arc::new(ImageStore::open(root.path()).unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Self {
            _root: root,
            store,
            rt,
        }
    }

    fn client(&self, config: RegistryConfig) -> Registry {
        let _g = self.rt.enter();
        Registry::new(config).unwrap()
    }

    fn pull(
        &self,
        reg: &Registry,
        reference: &str,
        progress: ProgressFn,
    ) -> Result<berth_image::registry::PulledImage, RegistryError> {
        let r = Reference::parse_normalized(reference).unwrap();
        self.rt.block_on(reg.pull(&self.store, &r, progress))
    }

    fn push(
        &self,
        reg: &Registry,
        source: &str,
        target: &str,
    ) -> Result<berth_image::registry::PushReport, RegistryError> {
        let r = Reference::parse_normalized(target).unwrap();
        self.rt
            .block_on(reg.push(&self.store, source, &r, no_progress()))
    }

    fn blobs(&self) -> Vec<Digest> {
        self.store.content().list().unwrap()
    }

    fn layers(&self) -> Vec<Digest> {
        self.store.layers().list().unwrap()
    }
}

/// Collects progress events.
fn recorder() -> (ProgressFn, Arc<Mutex<Vec<Progress>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let e2 = events.clone();
    (Arc::new(move |p| e2.lock().unwrap().push(p)), events)
}

fn strs(ds: &[Digest]) -> Vec<String> {
    ds.iter().map(|d| d.to_string()).collect()
}

// ---- tests --------------------------------------------------------------------------------------

#[test]
fn pull_what_skopeo_pushed_then_push_it_back() {
    if !tools() {
        return;
    }
    let reg = RegistryProc::start(false);
    let mut layout = Layout::new();
    let img = layout.image(&[busybox_tar()], "amd64");
    layout.tag("1", &img);
    layout.push("1", &format!("{}/busybox:1", reg.addr()), false, false);
    let pushed_digest = skopeo_digest(&format!("{}/busybox:1", reg.addr()));
    assert_eq!(pushed_digest, img.manifest, "skopeo changed the manifest");

    let berth = Berth::new();
    let client = berth.client(RegistryConfig::default());
    let (progress, events) = recorder();
    let pulled = berth
        .pull(&client, &format!("{}/busybox:1", reg.addr()), progress)
        .unwrap();
    assert_eq!(pulled.id.to_string(), img.config);
    assert_eq!(pulled.manifest_digest.to_string(), img.manifest);
    assert_eq!(strs(&pulled.layer_blobs), img.layers);
    let dir = berth.store.layers().diff_dir(&pulled.layers[0]);
    assert!(dir.join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(dir.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    // Registered under its name, blobs stored.
    let image = berth
        .store
        .get(&format!("{}/busybox:1", reg.addr()))
        .unwrap();
    assert_eq!(image.id().to_string(), img.config);
    for d in img.layers.iter().chain([&img.config, &img.manifest]) {
        assert!(berth.store.content().exists(&Digest::parse(d).unwrap()));
    }
    let ev = events.lock().unwrap().clone();
    let id = Digest::parse(&img.layers[0]).unwrap();
    assert!(ev.contains(&Progress::Done { id: id.clone() }), "{ev:?}");
    assert!(
        ev.iter().any(|e| matches!(e, Progress::Downloading { id: i, current, total } if *i == id && current == total)),
        "{ev:?}"
    );

    // Again: nothing downloaded.
    let (progress, events) = recorder();
    let again = berth
        .pull(&client, &format!("{}/busybox:1", reg.addr()), progress)
        .unwrap();
    assert_eq!(again.downloaded, 0);
    assert!(events
        .lock()
        .unwrap()
        .contains(&Progress::AlreadyExists { id }));

    // Push to another repository of the same registry: the layer is mounted, not uploaded.
    let report = berth
        .push(
            &client,
            &format!("{}/busybox:1", reg.addr()),
            &format!("{}/copies/busybox:v1", reg.addr()),
        )
        .unwrap();
    assert_eq!(report.manifest_digest.to_string(), img.manifest);
    assert_eq!(report.mounted.len(), 2, "{report:?}"); // the layer and the config
    assert!(report.uploaded.is_empty(), "{report:?}");
    assert_eq!(
        skopeo_digest(&format!("{}/copies/busybox:v1", reg.addr())),
        img.manifest
    );
    // Pushing again finds everything there.
    let report = berth
        .push(
            &client,
            &format!("{}/busybox:1", reg.addr()),
            &format!("{}/copies/busybox:v2", reg.addr()),
        )
        .unwrap();
    assert_eq!(report.existed.len(), 2, "{report:?}");

    // Push to a fresh registry: uploads; skopeo sees the identical digest.
    let reg2 = RegistryProc::start(false);
    let report = berth
        .push(
            &client,
            &pulled.id.to_string(),
            &format!("{}/bb:x", reg2.addr()),
        )
        .unwrap();
    assert_eq!(report.uploaded.len(), 2, "{report:?}");
    assert_eq!(
        skopeo_digest(&format!("{}/bb:x", reg2.addr())),
        img.manifest
    );
    // And a second berth pulls it back with the same digests.
    let berth2 = Berth::new();
    let c2 = berth2.client(RegistryConfig::default());
    let back = berth2
        .pull(&c2, &format!("{}/bb:x", reg2.addr()), no_progress())
        .unwrap();
    assert_eq!(back.id, pulled.id);
    assert_eq!(back.layers, pulled.layers);
}

#[test]
fn multi_layer_by_digest_and_through_a_mirror() {
    if !tools() {
        return;
    }
    let reg = RegistryProc::start(false);
    let mut layout = Layout::new();
    let img = layout.image(
        &[
            busybox_tar(),
            random_tar("a", 600_000, 1),
            random_tar("b", 300_000, 2),
            random_tar("c", 10, 3),
        ],
        "amd64",
    );
    layout.tag("multi", &img);
    layout.push(
        "multi",
        &format!("{}/library/multi:1", reg.addr()),
        false,
        false,
    );

    let berth = Berth::new();
    let client = berth.client(RegistryConfig::default());
    let by_digest = format!("{}/library/multi@{}", reg.addr(), img.manifest);
    let pulled = berth.pull(&client, &by_digest, no_progress()).unwrap();
    assert_eq!(strs(&pulled.layer_blobs), img.layers);
    assert_eq!(pulled.layers.len(), 4);
    let top = berth.store.layers().diff_dir(&pulled.layers[3]);
    assert_eq!(fs::metadata(top.join("data/c")).unwrap().len(), 10);
    assert!(berth
        .store
        .layers()
        .diff_dir(&pulled.layers[1])
        .join("data/a")
        .is_file());

    // A wrong digest is refused.
    let wrong = format!("{}/library/multi@sha256:{}", reg.addr(), "0".repeat(64));
    let e = berth.pull(&client, &wrong, no_progress()).unwrap_err();
    assert!(matches!(e, RegistryError::ManifestUnknown { .. }), "{e}");

    // `multi:1` means docker.io/library/multi:1, served by the mirror.
    let berth2 = Berth::new();
    let mirrored = berth2.client(RegistryConfig {
        mirrors: vec![format!("http://{}", reg.addr())],
        ..Default::default()
    });
    let p = berth2.pull(&mirrored, "multi:1", no_progress()).unwrap();
    assert_eq!(p.id.to_string(), img.config);
    assert!(berth2.store.get("multi:1").is_ok());
}

#[test]
fn manifest_list_selects_linux_amd64() {
    if !tools() {
        return;
    }
    let reg = RegistryProc::start(false);
    let mut layout = Layout::new();
    let arm = layout.image(&[random_tar("arm", 1000, 7)], "arm64");
    let amd = layout.image(&[busybox_tar()], "amd64");
    let list = layout.tag_list("multi", &[(&arm, "arm64"), (&amd, "amd64")]);
    layout.push("multi", &format!("{}/multiarch:1", reg.addr()), true, false);
    assert_eq!(skopeo_digest(&format!("{}/multiarch:1", reg.addr())), list);

    let berth = Berth::new();
    let client = berth.client(RegistryConfig::default());
    let pulled = berth
        .pull(
            &client,
            &format!("{}/multiarch:1", reg.addr()),
            no_progress(),
        )
        .unwrap();
    assert_eq!(pulled.manifest_digest.to_string(), list);
    assert_eq!(pulled.image_manifest_digest.to_string(), amd.manifest);
    assert_eq!(pulled.id.to_string(), amd.config);
    assert!(!berth
        .store
        .content()
        .exists(&Digest::parse(&arm.layers[0]).unwrap()));

    // A list without linux/amd64: a clear error.
    let only_arm = layout.tag_list("arm", &[(&arm, "arm64")]);
    layout.push("arm", &format!("{}/armonly:1", reg.addr()), true, false);
    let e = berth
        .pull(&client, &format!("{}/armonly:1", reg.addr()), no_progress())
        .unwrap_err();
    assert!(matches!(e, RegistryError::NoPlatform { .. }), "{e}");
    assert!(e.to_string().contains("linux/arm64"), "{e} ({only_arm})");
}

#[test]
fn unknown_tag_and_lying_registry() {
    if !tools() {
        return;
    }
    let reg = RegistryProc::start(false);
    let mut layout = Layout::new();
    let img = layout.image(&[random_tar("x", 200_000, 9)], "amd64");
    layout.tag("1", &img);
    layout.push("1", &format!("{}/lies:1", reg.addr()), false, false);

    let berth = Berth::new();
    let client = berth.client(RegistryConfig::default());
    let e = berth
        .pull(&client, &format!("{}/lies:2", reg.addr()), no_progress())
        .unwrap_err();
    assert!(e.to_string().contains("manifest unknown"), "{e}");

    // Flip bytes in the middle of the layer blob the registry stores.
    let f = reg.blob_file(&img.layers[0]);
    let mut data = fs::read(&f).unwrap();
    let mid = data.len() / 2;
    for b in &mut data[mid..mid + 16] {
        *b ^= 0xff;
    }
    fs::write(&f, &data).unwrap();
    let e = berth
        .pull(&client, &format!("{}/lies:1", reg.addr()), no_progress())
        .unwrap_err();
    assert!(
        matches!(e, RegistryError::Content(_) | RegistryError::Layer(_)),
        "{e}"
    );
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    assert!(berth.blobs().is_empty(), "{:?}", berth.blobs());
    assert!(berth.layers().is_empty(), "{:?}", berth.layers());
    assert!(berth.store.get(&format!("{}/lies:1", reg.addr())).is_err());
}

#[test]
fn basic_auth_login_pull_and_push() {
    if !tools() {
        return;
    }
    let reg = RegistryProc::start(true);
    let mut layout = Layout::new();
    let img = layout.image(&[random_tar("s", 5000, 11)], "amd64");
    layout.tag("1", &img);
    layout.push("1", &format!("{}/private:1", reg.addr()), false, true);

    let berth = Berth::new();
    let anon = berth.client(RegistryConfig::default());
    let e = berth
        .pull(&anon, &format!("{}/private:1", reg.addr()), no_progress())
        .unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");
    let good = Credentials {
        username: USER.into(),
        password: PASS.into(),
    };
    let bad = Credentials {
        username: USER.into(),
        password: "wrong".into(),
    };
    assert!(berth.rt.block_on(anon.login(&reg.addr(), &good)).is_ok());
    let e = berth
        .rt
        .block_on(anon.login(&reg.addr(), &bad))
        .unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");

    let client = berth.client(RegistryConfig {
        credentials: HashMap::from([(reg.addr(), good)]),
        ..Default::default()
    });
    let p = berth
        .pull(&client, &format!("{}/private:1", reg.addr()), no_progress())
        .unwrap();
    assert_eq!(p.id.to_string(), img.config);
    let report = berth
        .push(
            &client,
            &p.id.to_string(),
            &format!("{}/private2:1", reg.addr()),
        )
        .unwrap();
    assert_eq!(report.mounted.len(), 2, "{report:?}");
}

// ---- proxies ------------------------------------------------------------------------------------

/// What the proxy does besides forwarding.
#[derive(Clone, Copy)]
enum Mode {
    /// Cut the first full (not ranged) blob download of more than 64 KiB halfway.
    CutOnce,
    /// Demand `Authorization: Bearer tok-1`, issued by `/token` for USER:PASS.
    Bearer,
}

/// A one-request-per-connection HTTP proxy on 127.0.0.1 in front of a registry.
struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    requests: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: u16, mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let cut_done = Arc::new(AtomicBool::new(false));
        let (stop2, req2) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (req3, cut3) = (req2.clone(), cut_done.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, upstream, port, mode, &req3, &cut3);
                });
            }
        });
        Self {
            port,
            stop,
            requests,
            thread: Some(thread),
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_head(s: &mut TcpStream) -> std::io::Result<String> {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(b[0]);
        if head.len() > 64 * 1024 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

fn with_close(head: &str) -> String {
    // Drop any Connection header and ask for close, so one connection carries one exchange.
    let mut lines: Vec<&str> = head
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    format!("{}\r\n\r\n", lines.join("\r\n"))
}

fn serve(
    mut conn: TcpStream,
    upstream: u16,
    own_port: u16,
    mode: Mode,
    requests: &Mutex<Vec<String>>,
    cut_done: &AtomicBool,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let head = read_head(&mut conn)?;
    requests.lock().unwrap().push(head.clone());
    let first = head.lines().next().unwrap_or("").to_string();
    let lower = head.to_ascii_lowercase();
    if let Mode::Bearer = mode {
        if first.starts_with("GET /token") {
            let basic = format!(
                "authorization: basic {}",
                base64_encode(&format!("{USER}:{PASS}"))
            )
            .to_ascii_lowercase();
            let resp = if lower.contains(&basic) {
                let body = r#"{"token":"tok-1","expires_in":300}"#;
                format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
            } else {
                "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            conn.write_all(resp.as_bytes())?;
            return Ok(());
        }
        if !lower.contains("authorization: bearer tok-1") {
            let resp = format!("HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer realm=\"http://127.0.0.1:{own_port}/token\",service=\"berth-test\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            conn.write_all(resp.as_bytes())?;
            return Ok(());
        }
    }
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(with_close(&head).as_bytes())?;
    // Request bodies (pushes) are forwarded as they come.
    if let Some(len) = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        std::io::copy(&mut (&mut conn).take(len), &mut up)?;
    }
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |i| i + 4);
    let (rhead, body) = resp.split_at(split);
    let rhead = with_close(&String::from_utf8_lossy(rhead));
    let cut = matches!(mode, Mode::CutOnce)
        && first.starts_with("GET ")
        && first.contains("/blobs/")
        && !lower.contains("\r\nrange:")
        && body.len() > 64 * 1024
        && !cut_done.swap(true, Ordering::SeqCst);
    conn.write_all(rhead.as_bytes())?;
    if cut {
        conn.write_all(&body[..body.len() / 2])?;
        conn.flush()?;
        conn.shutdown(Shutdown::Both)?;
    } else {
        conn.write_all(body)?;
    }
    Ok(())
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn interrupted_download_resumes_with_range() {
    if !tools() {
        return;
    }
    let reg = RegistryProc::start(false);
    let mut layout = Layout::new();
    let img = layout.image(&[random_tar("big", 2_000_000, 5)], "amd64");
    layout.tag("1", &img);
    layout.push("1", &format!("{}/resume:1", reg.addr()), false, false);
    let proxy = Proxy::start(reg.port, Mode::CutOnce);

    let berth = Berth::new();
    let client = berth.client(RegistryConfig::default());
    let (progress, events) = recorder();
    let pulled = berth
        .pull(&client, &format!("{}/resume:1", proxy.addr()), progress)
        .unwrap();
    assert_eq!(pulled.id.to_string(), img.config);
    let heads = proxy.requests.lock().unwrap().clone();
    let ranged: Vec<&String> = heads
        .iter()
        .filter(|h| h.to_ascii_lowercase().contains("\r\nrange: bytes="))
        .collect();
    assert_eq!(ranged.len(), 1, "{heads:#?}");
    assert!(!ranged[0].contains("range: bytes=0-"), "{}", ranged[0]);
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Progress::Retrying { offset, .. } if *offset > 0)));
    // Received once, verified, unpacked.
    assert!(berth
        .store
        .layers()
        .diff_dir(&pulled.layers[0])
        .join("data/big")
        .is_file());
    let layer = Digest::parse(&img.layers[0]).unwrap();
    assert_eq!(
        pulled.downloaded,
        berth.store.content().size(&layer).unwrap()
    );
}

#[test]
fn bearer_token_auth() {
    if !tools() {
        return;
    }
    let reg = RegistryProc::start(false);
    let mut layout = Layout::new();
    let img = layout.image(&[random_tar("t", 3000, 13)], "amd64");
    layout.tag("1", &img);
    layout.push("1", &format!("{}/tok:1", reg.addr()), false, false);
    let proxy = Proxy::start(reg.port, Mode::Bearer);

    let berth = Berth::new();
    let anon = berth.client(RegistryConfig::default());
    let e = berth
        .pull(&anon, &format!("{}/tok:1", proxy.addr()), no_progress())
        .unwrap_err();
    assert!(matches!(e, RegistryError::Unauthorized { .. }), "{e}");

    let good = Credentials {
        username: USER.into(),
        password: PASS.into(),
    };
    assert!(berth.rt.block_on(anon.login(&proxy.addr(), &good)).is_ok());
    let client = berth.client(RegistryConfig {
        credentials: HashMap::from([(proxy.addr(), good)]),
        ..Default::default()
    });
    let p = berth
        .pull(&client, &format!("{}/tok:1", proxy.addr()), no_progress())
        .unwrap();
    assert_eq!(p.id.to_string(), img.config);
    let heads = proxy.requests.lock().unwrap().clone();
    let token_reqs: Vec<&String> = heads
        .iter()
        .filter(|h| h.starts_with("GET /token"))
        .collect();
    // One token per scope, reused for the manifest, the config and the layer.
    assert!(
        token_reqs.iter().any(
            |h| h.contains("scope=repository%3Atok%3Apull") && h.contains("service=berth-test")
        ),
        "{token_reqs:#?}"
    );
    let pull_tokens = token_reqs
        .iter()
        .filter(|h| h.contains("scope=repository%3Atok%3Apull"))
        .count();
    // The anonymous client asked once (refused); the logged-in one once.
    assert_eq!(pull_tokens, 2, "{token_reqs:#?}");
}

// ---- HTTPS ----------------------------------------------------------------------------------

/// Runs openssl in `dir`, failing the test when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA `<name>.crt`/`<name>.key` in `dir`.
fn make_ca(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN=berth test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    );
}

/// `server.crt`/`server.key` in `dir`, for IP 127.0.0.1, signed by the CA `ca`.
fn make_server_cert(dir: &Path, ca: &str) {
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.crt"),
            "-CAkey",
            &format!("{ca}.key"),
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
    );
}

/// A certs.d with `<domain>/ca.crt` = `ca`.
fn certs_d(domain: &str, ca: &Path) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir(d.path().join(domain)).unwrap();
    fs::copy(ca, d.path().join(domain).join("ca.crt")).unwrap();
    d
}

#[test]
fn https_with_a_ca_from_certs_d() {
    if !tools() || !have("openssl") {
        return;
    }
    let pki = tempfile::tempdir().unwrap();
    make_ca(pki.path(), "ca");
    make_ca(pki.path(), "other-ca");
    make_server_cert(pki.path(), "ca");
    let reg = RegistryProc::start_with(
        false,
        Some((
            &pki.path().join("server.crt"),
            &pki.path().join("server.key"),
        )),
    );
    let mut layout = Layout::new();
    let img = layout.image(&[random_tar("tls", 20_000, 17), busybox_tar()], "amd64");
    layout.tag("1", &img);
    // skopeo speaks HTTPS without verifying (the registry has no plain HTTP to fall back to).
    layout.push("1", &format!("{}/secure:1", reg.addr()), false, false);

    // The right CA: a loopback registry is spoken to over HTTPS because certs.d names it.
    let good = certs_d(&reg.addr(), &pki.path().join("ca.crt"));
    let berth = Berth::new();
    let client = berth.client(RegistryConfig {
        certs_dir: Some(good.path().to_path_buf()),
        ..Default::default()
    });
    let p = berth
        .pull(&client, &format!("{}/secure:1", reg.addr()), no_progress())
        .unwrap();
    assert_eq!(p.id.to_string(), img.config);
    assert_eq!(p.manifest_digest.to_string(), img.manifest);
    let mut blobs = strs(&berth.blobs());
    blobs.sort();
    let mut want = vec![img.manifest.clone(), img.config.clone()];
    want.extend(img.layers.iter().cloned());
    want.sort();
    assert_eq!(blobs, want);

    // Push back over HTTPS, to a new repository; skopeo sees the same manifest.
    let target = format!("{}/pushed:2", reg.addr());
    berth.push(&client, &p.id.to_string(), &target).unwrap();
    assert_eq!(skopeo_digest(&target), img.manifest);

    // A CA that did not sign the registry's certificate: a clear error, nothing stored.
    let wrong = certs_d(&reg.addr(), &pki.path().join("other-ca.crt"));
    let berth2 = Berth::new();
    let client2 = berth2.client(RegistryConfig {
        certs_dir: Some(wrong.path().to_path_buf()),
        ..Default::default()
    });
    let e = berth2
        .pull(&client2, &format!("{}/secure:1", reg.addr()), no_progress())
        .unwrap_err();
    assert!(matches!(e, RegistryError::Certificate { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&reg.addr()), "{msg}");
    assert!(
        msg.contains(&format!("{}/{}/ca.crt", wrong.path().display(), reg.addr())),
        "{msg}"
    );
    assert!(berth2.blobs().is_empty());
    assert!(berth2.layers().is_empty());
    // Nor does a push (of the image the first store has) get through.
    let e = berth
        .push(&client2, &p.id.to_string(), &target)
        .unwrap_err();
    assert!(matches!(e, RegistryError::Certificate { .. }), "{e}");
}

#[test]
fn certs_d_bad_pem_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let entry = dir.path().join("127.0.0.1:5443");
    fs::create_dir(&entry).unwrap();
    fs::write(entry.join("ca.crt"), "-----BEGIN CERTIFICATE-----\n!!!\n").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _g = rt.enter();
    let config = RegistryConfig {
        certs_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let e = Registry::new(config.clone())
        .err()
        .expect("bad PEM refused");
    assert!(
        e.to_string()
            .contains(&entry.join("ca.crt").display().to_string()),
        "{e}"
    );
    // A file without any certificate is refused too.
    fs::write(entry.join("ca.crt"), "not a certificate\n").unwrap();
    let e = Registry::new(config).err().expect("empty ca.crt refused");
    assert!(e.to_string().contains("no certificate"), "{e}");
    // A certs.d that does not exist is the same as none.
    let none = RegistryConfig {
        certs_dir: Some(dir.path().join("absent")),
        ..Default::default()
    };
    assert!(Registry::new(none).is_ok());
}
