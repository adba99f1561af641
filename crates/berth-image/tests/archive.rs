//! Crate tests of the archive formats: a busybox image built here from /bin/busybox, saved by
//! berth as a docker archive and as an OCI layout, read by skopeo and umoci; what skopeo writes
//! loaded back by berth with identical image ids and diff ids; hostile archives refused with
//! nothing registered; import and export.
//!
//! skopeo and umoci tests skip with a printed reason when the tool is missing. Each test has its
//! own data root in a tempdir, so they run in parallel.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_image::archive::{
    self, export_rootfs, ArchiveError, ImportOptions, LoadOptions, SaveFormat,
};
use berth_image::content::sha256_digest;
use berth_image::image::{
    media, ContainerConfig, CreateOptions, Descriptor, Image, ImageConfig, ImageStore, NewLayer,
};
use berth_types::{Digest, Reference};
use serde_json::Value;

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipping the {tool} part: {tool} is not installed");
    }
    ok
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn r(s: &str) -> Reference {
    Reference::parse_normalized(s).unwrap().with_default_tag()
}

/// A busybox root filesystem: /bin/busybox and its applet symlinks, /etc/passwd, /tmp.
fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in ["bin", "etc", "tmp", "root"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("copy /bin/busybox (install busybox-static)");
    fs::set_permissions(root.join("bin/busybox"), fs::Permissions::from_mode(0o755)).unwrap();
    let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet.is_empty() || applet.contains('/') || applet == "busybox" {
            continue;
        }
        symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    root
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn small_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

/// busybox:latest (one uncompressed layer, imported) and berth-test/bb:2 (that layer plus a
/// gzip layer stored compressed, as a pulled image has).
fn build_images(store: &ImageStore, work: &Path) -> (Image, Image) {
    let rootfs = busybox_rootfs(work);
    let (tar, _) = export_rootfs(&rootfs, Vec::new()).unwrap();
    let bb = store
        .import(
            &tar[..],
            &ImportOptions {
                tags: vec![r("busybox:latest")],
                changes: vec![r#"CMD ["sh"]"#.into(), "ENV PATH=/bin".into()],
                ..Default::default()
            },
        )
        .unwrap();
    let plain = small_tar(&[("etc/motd", b"hello from layer two\n")]);
    let gz = gzip(&plain);
    let info = store.content().ingest_bytes(&gz, None).unwrap();
    let mut cfg = bb.config.clone();
    cfg.config = Some(ContainerConfig {
        cmd: Some(vec!["cat".into(), "/etc/motd".into()]),
        healthcheck: Some(
            serde_json::json!({"Test": ["CMD", "true"], "Interval": 1_000_000_000u64}),
        ),
        stop_signal: Some("SIGQUIT".into()),
        ..bb.config.config.clone().unwrap_or_default()
    });
    let two = store
        .create_image(
            vec![
                NewLayer::Stored {
                    descriptor: bb.manifest.layers[0].clone(),
                    diff_id: bb.config.rootfs.diff_ids[0].clone(),
                },
                NewLayer::Stored {
                    descriptor: Descriptor {
                        media_type: media::DOCKER_LAYER_GZIP.into(),
                        digest: info.digest,
                        size: info.size,
                        urls: None,
                        annotations: None,
                        platform: None,
                    },
                    diff_id: sha256_digest(&plain),
                },
            ],
            cfg,
            &CreateOptions {
                tags: vec![r("berth-test/bb:2")],
                ..Default::default()
            },
        )
        .unwrap();
    (bb, two)
}

fn diff_ids(img: &Image) -> Vec<Digest> {
    img.config.rootfs.diff_ids.clone()
}

#[test]
fn docker_archive_round_trip_and_skopeo_interop() {
    let work = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&work.path().join("a")).unwrap();
    let (bb, two) = build_images(&store, work.path());

    // berth → berth: several images and tags in one archive.
    let path = work.path().join("save.tar");
    let f = fs::File::create(&path).unwrap();
    archive::save(
        &store,
        &["busybox", "berth-test/bb:2", &two.id().to_string()],
        SaveFormat::DockerArchive,
        f,
    )
    .unwrap();
    // Deterministic: the same images give the same bytes.
    let again = archive::save(
        &store,
        &["busybox", "berth-test/bb:2"],
        SaveFormat::DockerArchive,
        Vec::new(),
    )
    .unwrap();
    let again2 = archive::save(
        &store,
        &["busybox", "berth-test/bb:2"],
        SaveFormat::DockerArchive,
        Vec::new(),
    )
    .unwrap();
    assert_eq!(again, again2);

    let other = ImageStore::open(&work.path().join("b")).unwrap();
    let rep = archive::load(
        &other,
        fs::File::open(&path).unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(rep.images.len(), 2);
    let bb2 = other.get("busybox:latest").unwrap();
    assert_eq!(bb2.id(), bb.id(), "a round trip keeps the image id");
    let two2 = other.get("berth-test/bb:2").unwrap();
    assert_eq!(two2.id(), two.id());
    assert_eq!(diff_ids(&two2), diff_ids(&two));
    let cc = two2.config.config.clone().unwrap();
    assert_eq!(cc.stop_signal.as_deref(), Some("SIGQUIT"));
    assert!(cc.healthcheck.is_some());
    let top = &other.lower_dirs(&two2)[0];
    assert_eq!(
        fs::read(top.join("etc/motd")).unwrap(),
        b"hello from layer two\n"
    );
    let bottom = other.layer_dirs(&two2)[0].clone();
    assert!(bottom.join("bin/busybox").is_file());
    assert_eq!(
        fs::read_link(bottom.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    // Loading twice is harmless.
    archive::load(
        &other,
        fs::File::open(&path).unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();

    if !have("skopeo") {
        return;
    }
    // skopeo reads what berth saved.
    let one = work.path().join("one.tar");
    archive::save(
        &store,
        &["berth-test/bb:2"],
        SaveFormat::DockerArchive,
        fs::File::create(&one).unwrap(),
    )
    .unwrap();
    let arg = format!("docker-archive:{}", one.display());
    let inspect: Value =
        serde_json::from_str(&run(Command::new("skopeo").args(["inspect", &arg]))).unwrap();
    let layers: Vec<String> = serde_json::from_value(inspect["Layers"].clone()).unwrap();
    let want: Vec<String> = diff_ids(&two).iter().map(|d| d.to_string()).collect();
    assert_eq!(layers, want, "skopeo sees the layers as berth wrote them");
    assert_eq!(inspect["RepoTags"], serde_json::json!([]), "{inspect}");
    let cfg: Value = serde_json::from_str(&run(
        Command::new("skopeo").args(["inspect", "--config", &arg])
    ))
    .unwrap();
    assert_eq!(cfg["config"]["StopSignal"], "SIGQUIT");
    let raw_cfg = run(Command::new("skopeo").args(["inspect", "--raw", "--config", &arg]));
    assert_eq!(
        &sha256_digest(raw_cfg.trim_end_matches('\n').as_bytes()),
        two.id(),
        "skopeo reads the config bytes berth wrote"
    );

    // skopeo copies it to an OCI layout; berth loads that; same image id and diff ids.
    let oci = work.path().join("oci");
    run(Command::new("skopeo").args(["copy", "-q", &arg, &format!("oci:{}:v2", oci.display())]));
    let third = ImageStore::open(&work.path().join("c")).unwrap();
    let rep = archive::load_dir(
        &third,
        &oci,
        &LoadOptions {
            repository: Some(Reference::parse_normalized("from-skopeo/bb").unwrap()),
        },
    )
    .unwrap();
    assert_eq!(rep.images.len(), 1);
    let img = third.get("from-skopeo/bb:v2").unwrap();
    // skopeo re-encodes the config when it converts a Docker image to OCI (c/image's
    // convertToManifestOCI1), so the id changes there; the layers must not.
    assert_eq!(diff_ids(&img), diff_ids(&two));
    assert_eq!(
        img.config.config.as_ref().unwrap().cmd,
        two.config.config.as_ref().unwrap().cmd
    );
    let via_oci = img.id().clone();
    eprintln!("berth {} -> skopeo oci {}", two.id(), via_oci);

    // skopeo writes a docker archive from that layout and an OCI archive; berth loads both.
    let out = work.path().join("skopeo.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{}:v2", oci.display()),
        &format!("docker-archive:{}:skopeo/bb:v3", out.display()),
    ]));
    let fourth = ImageStore::open(&work.path().join("d")).unwrap();
    archive::load(
        &fourth,
        fs::File::open(&out).unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    let img = fourth.get("skopeo/bb:v3").unwrap();
    assert_eq!(
        img.id(),
        &via_oci,
        "OCI → docker-archive by skopeo keeps the config"
    );
    assert_eq!(diff_ids(&img), diff_ids(&two));
    assert!(fourth.layer_dirs(&img)[0].join("bin/busybox").is_file());

    let oa = work.path().join("skopeo-oci.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{}:v2", oci.display()),
        &format!("oci-archive:{}:docker.io/skopeo/bb:v4", oa.display()),
    ]));
    archive::load(
        &fourth,
        fs::File::open(&oa).unwrap(),
        &LoadOptions::default(),
    )
    .unwrap();
    assert_eq!(fourth.get("skopeo/bb:v4").unwrap().id(), &via_oci);
}

#[test]
fn oci_layout_is_read_by_skopeo_and_umoci() {
    let work = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&work.path().join("a")).unwrap();
    let (_bb, two) = build_images(&store, work.path());
    let dir = work.path().join("layout");
    archive::save_oci_dir(&store, &["berth-test/bb:2"], &dir).unwrap();
    assert!(dir.join("oci-layout").is_file());
    let index: Value = serde_json::from_slice(&fs::read(dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "2"
    );
    // berth loads its own layout, and an OCI archive of it.
    let other = ImageStore::open(&work.path().join("b")).unwrap();
    archive::load_dir(&other, &dir, &LoadOptions::default()).unwrap();
    assert_eq!(other.get("berth-test/bb:2").unwrap().id(), two.id());
    let tar = archive::save(
        &store,
        &["berth-test/bb:2"],
        SaveFormat::OciArchive,
        Vec::new(),
    )
    .unwrap();
    let third = ImageStore::open(&work.path().join("c")).unwrap();
    archive::load(&third, &tar[..], &LoadOptions::default()).unwrap();
    assert_eq!(third.get("berth-test/bb:2").unwrap().id(), two.id());

    if have("skopeo") {
        let arg = format!("oci:{}:2", dir.display());
        let inspect: Value =
            serde_json::from_str(&run(Command::new("skopeo").args(["inspect", &arg]))).unwrap();
        assert_eq!(inspect["Layers"].as_array().unwrap().len(), 2, "{inspect}");
        let raw_cfg = run(Command::new("skopeo").args(["inspect", "--raw", "--config", &arg]));
        assert_eq!(
            &sha256_digest(raw_cfg.trim_end_matches('\n').as_bytes()),
            two.id()
        );
        // And copies it on to a docker archive that berth loads with the same id.
        let out = work.path().join("d.tar");
        run(Command::new("skopeo").args([
            "copy",
            "-q",
            &arg,
            &format!("docker-archive:{}:x/y:z", out.display()),
        ]));
        let fourth = ImageStore::open(&work.path().join("d")).unwrap();
        archive::load(
            &fourth,
            fs::File::open(&out).unwrap(),
            &LoadOptions::default(),
        )
        .unwrap();
        assert_eq!(fourth.get("x/y:z").unwrap().id(), two.id());
    }
    if have("umoci") {
        let bundle = work.path().join("bundle");
        let mut cmd = Command::new("umoci");
        cmd.arg("unpack");
        if !is_root() {
            cmd.arg("--rootless");
        }
        cmd.args(["--image", &format!("{}:2", dir.display())])
            .arg(&bundle);
        run(&mut cmd);
        let rootfs = bundle.join("rootfs");
        assert!(rootfs.join("bin/busybox").is_file());
        assert_eq!(
            fs::read_link(rootfs.join("bin/ls")).unwrap(),
            Path::new("busybox")
        );
        assert_eq!(
            fs::read(rootfs.join("etc/motd")).unwrap(),
            b"hello from layer two\n"
        );
        let cfg: Value =
            serde_json::from_slice(&fs::read(bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(
            cfg["process"]["args"],
            serde_json::json!(["cat", "/etc/motd"])
        );
    }
}

/// A docker archive built by hand: `manifest.json` plus named members.
struct Hand {
    b: tar::Builder<Vec<u8>>,
}

impl Hand {
    fn new() -> Self {
        Self {
            b: tar::Builder::new(Vec::new()),
        }
    }
    fn raw(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        link: Option<&str>,
        data: &[u8],
    ) -> &mut Self {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                old.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }
    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name, tar::EntryType::Regular, None, data)
    }
    fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

fn config_for(diff_ids: &[Digest]) -> Vec<u8> {
    let mut c = ImageConfig::for_host();
    c.rootfs.diff_ids = diff_ids.to_vec();
    serde_json::to_vec(&c).unwrap()
}

fn manifest_json(config: &str, layers: &[&str]) -> Vec<u8> {
    serde_json::to_vec(
        &serde_json::json!([{"Config": config, "RepoTags": ["evil:1"], "Layers": layers}]),
    )
    .unwrap()
}

#[test]
fn hostile_and_lying_archives_register_nothing() {
    let work = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&work.path().join("root")).unwrap();
    let layer = small_tar(&[("f", b"content")]);
    let diff = sha256_digest(&layer);
    let cfg = config_for(std::slice::from_ref(&diff));
    let cfg_digest = sha256_digest(&cfg);
    let good_cfg_name = format!("{}.json", cfg_digest.hex());

    let mut cases: Vec<(&str, Vec<u8>, &str)> = Vec::new();
    // A legacy archive that is fine, to prove the harness loads good input.
    let mut h = Hand::new();
    h.file(
        "manifest.json",
        &manifest_json(&good_cfg_name, &["abc/layer.tar"]),
    )
    .file(&good_cfg_name, &cfg)
    .raw("abc/", tar::EntryType::Directory, None, b"")
    .file("abc/layer.tar", &layer)
    .raw(
        "def/layer.tar",
        tar::EntryType::Symlink,
        Some("../abc/layer.tar"),
        b"",
    );
    let good = h.finish();

    let mut h = Hand::new();
    h.file(
        "manifest.json",
        &manifest_json(&good_cfg_name, &["abc/layer.tar"]),
    )
    .file(&good_cfg_name, &cfg);
    cases.push(("missing layer", h.finish(), "no member \"abc/layer.tar\""));

    let mut h = Hand::new();
    h.file(
        "manifest.json",
        &manifest_json(&good_cfg_name, &["abc/layer.tar"]),
    )
    .file(&good_cfg_name, &cfg)
    .file("abc/layer.tar", &small_tar(&[("f", b"other content")]));
    cases.push(("lying diff id", h.finish(), "the archive lies"));

    let mut h = Hand::new();
    h.file(
        "real.json",
        &manifest_json(&good_cfg_name, &["abc/layer.tar"]),
    )
    .raw(
        "manifest.json",
        tar::EntryType::Symlink,
        Some("real.json"),
        b"",
    )
    .file(&good_cfg_name, &cfg)
    .file("abc/layer.tar", &layer);
    cases.push((
        "symlinked manifest.json",
        h.finish(),
        "must be a regular file",
    ));

    let mut h = Hand::new();
    h.file(
        "manifest.json",
        &manifest_json(&good_cfg_name, &["abc/layer.tar"]),
    )
    .file(&good_cfg_name, &cfg)
    .file("abc/layer.tar", &layer)
    .file("../escape", b"x");
    cases.push(("traversal", h.finish(), "unsafe name"));

    let mut h = Hand::new();
    h.file(
        "manifest.json",
        &manifest_json(&good_cfg_name, &["abc/layer.tar"]),
    )
    .file(&good_cfg_name, &cfg)
    .raw(
        "abc/layer.tar",
        tar::EntryType::Symlink,
        Some("../../../etc/passwd"),
        b"",
    );
    cases.push(("layer linked out", h.finish(), "outside the archive"));

    let mut h = Hand::new();
    h.file(
        "manifest.json",
        &manifest_json(&good_cfg_name, &["abc/layer.tar", "abc/layer.tar"]),
    )
    .file(&good_cfg_name, &cfg)
    .file("abc/layer.tar", &layer);
    cases.push(("more layers than diff ids", h.finish(), "diff ids"));

    // OCI layout: a blob whose content is not its name.
    let mut h = Hand::new();
    h.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", br#"{"schemaVersion":2,"manifests":[]}"#)
        .file(
            &format!("blobs/sha256/{}", cfg_digest.hex()),
            b"not the config",
        );
    cases.push(("blob digest mismatch", h.finish(), "digest mismatch"));

    // OCI layout: the index names a manifest that is not there.
    let missing = sha256_digest(b"nothing");
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": media::OCI_MANIFEST, "digest": missing.to_string(), "size": 7,
        "annotations": {"org.opencontainers.image.ref.name": "x/y:z"}}]});
    let mut h = Hand::new();
    h.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
        .file("index.json", &serde_json::to_vec(&index).unwrap());
    cases.push(("missing manifest blob", h.finish(), "no blob"));

    // OCI layout: a manifest whose layer is missing, and one whose layer size lies.
    for (what, size, needle) in [
        ("missing layer blob", None, "no blob"),
        ("layer size lies", Some(1u64), "descriptor says"),
    ] {
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": media::OCI_CONFIG, "digest": cfg_digest.to_string(), "size": cfg.len()},
            "layers": [{"mediaType": media::OCI_LAYER, "digest": diff.to_string(), "size": size.unwrap_or(layer.len() as u64)}]});
        let mb = serde_json::to_vec(&m).unwrap();
        let md = sha256_digest(&mb);
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": media::OCI_MANIFEST, "digest": md.to_string(), "size": mb.len(),
            "annotations": {"org.opencontainers.image.ref.name": "x/y:z"}}]});
        let mut h = Hand::new();
        h.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)
            .file("index.json", &serde_json::to_vec(&index).unwrap())
            .file(&format!("blobs/sha256/{}", md.hex()), &mb)
            .file(&format!("blobs/sha256/{}", cfg_digest.hex()), &cfg);
        if size.is_some() {
            h.file(&format!("blobs/sha256/{}", diff.hex()), &layer);
        }
        cases.push((what, h.finish(), needle));
    }
    cases.push((
        "not an archive",
        b"hello, this is not a tar at all".repeat(40),
        "",
    ));
    cases.push((
        "empty tar",
        Hand::new().finish(),
        "neither a docker archive",
    ));

    for (what, data, needle) in cases {
        let e = archive::load(&store, &data[..], &LoadOptions::default())
            .err()
            .unwrap_or_else(|| panic!("{what}: loaded"));
        let msg = e.to_string();
        assert!(msg.contains(needle), "{what}: {msg}");
        assert!(
            store.index().unwrap().images().unwrap().is_empty(),
            "{what}: an image was registered"
        );
        assert!(
            store.layers().list().unwrap().is_empty(),
            "{what}: a layer is visible"
        );
        assert!(
            store.content().list().unwrap().is_empty(),
            "{what}: a blob is visible"
        );
        assert!(!work.path().join("escape").exists());
        let tmp: Vec<_> = fs::read_dir(store.tmp_dir()).unwrap().collect();
        assert!(tmp.is_empty(), "{what}: left {tmp:?} in tmp/");
        if let ArchiveError::Read(_) = e {
            assert!(what == "not an archive", "{what}: {msg}");
        }
    }

    let rep = archive::load(&store, &good[..], &LoadOptions::default()).unwrap();
    assert_eq!(rep.images[0].0, cfg_digest);
    let img = store.get("evil:1").unwrap();
    assert_eq!(
        fs::read(store.layer_dirs(&img)[0].join("f")).unwrap(),
        b"content"
    );
}

#[test]
fn import_plain_gzip_and_zstd_with_changes_and_export_round_trip() {
    let work = tempfile::tempdir().unwrap();
    let store = ImageStore::open(&work.path().join("root")).unwrap();
    let plain = small_tar(&[("etc/hostname", b"box\n"), ("bin/x", b"#!/bin/sh\n")]);
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let mut ids = Vec::new();
    for (i, data) in [plain.clone(), gzip(&plain), zst].into_iter().enumerate() {
        let img = store
            .import(
                &data[..],
                &ImportOptions {
                    tags: vec![r(&format!("imported:{i}"))],
                    message: Some("from a test".into()),
                    changes: vec![
                        r#"CMD ["/bin/x"]"#.into(),
                        "ENV A=1 B=two".into(),
                        "EXPOSE 80".into(),
                        "WORKDIR /srv".into(),
                        "USER 1000".into(),
                        "LABEL k=v".into(),
                        "VOLUME /data".into(),
                        "STOPSIGNAL SIGINT".into(),
                        "ENTRYPOINT /bin/sh -c".into(),
                    ],
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(img.config.rootfs.diff_ids, vec![sha256_digest(&plain)]);
        let cc = img.config.config.clone().unwrap();
        assert_eq!(cc.cmd.unwrap(), vec!["/bin/x"]);
        assert_eq!(cc.env.unwrap(), vec!["A=1", "B=two"]);
        assert_eq!(cc.working_dir.as_deref(), Some("/srv"));
        assert_eq!(cc.user.as_deref(), Some("1000"));
        assert_eq!(cc.stop_signal.as_deref(), Some("SIGINT"));
        assert!(cc.exposed_ports.unwrap().contains_key("80/tcp"));
        assert!(cc.volumes.unwrap().contains_key("/data"));
        assert_eq!(img.config.history.len(), 1);
        assert_eq!(
            img.config.history[0].comment.as_deref(),
            Some("from a test")
        );
        ids.push(img.record.layers.clone());
    }
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "the same rootfs is one layer"
    );
    let bad = store.import(&b"\x1f\x8b\x08\x00garbage"[..], &ImportOptions::default());
    assert!(bad.is_err());
    let bad = store.import(
        &plain[..],
        &ImportOptions {
            changes: vec!["RUN rm -rf /".into()],
            ..Default::default()
        },
    );
    assert!(bad.unwrap_err().to_string().contains("not supported"));

    // Export of an unpacked image, then import of that: the same files.
    let img = store.get("imported:0").unwrap();
    let dir = store.layer_dirs(&img)[0].clone();
    let (tar, stats) = export_rootfs(&dir, Vec::new()).unwrap();
    assert!(stats.entries >= 4);
    let again = store.import(&tar[..], &ImportOptions::default()).unwrap();
    let d2 = store.layer_dirs(&again)[0].clone();
    assert_eq!(fs::read(d2.join("etc/hostname")).unwrap(), b"box\n");
    assert_eq!(fs::read(d2.join("bin/x")).unwrap(), b"#!/bin/sh\n");
}
