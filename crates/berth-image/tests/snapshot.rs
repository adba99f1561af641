//! Crate tests of overlay snapshots and diffs (root only): two layers plus an upper, writes
//! through the merged view, copy-up and whiteouts, then the upper back into a layer tar that
//! applies to the same tree.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_image::layer::{ApplyOptions, LayerStore};
use berth_image::snapshot::{is_mount_point, mount_overlay_classic, Snapshotter};
use berth_image::{write_diff, Layer, MountMethod};
use berth_types::ContainerId;
use common::*;

/// Unmounts every snapshot it was told about, even when the test panics.
struct Unmounter {
    snaps: Snapshotter,
    ids: Vec<ContainerId>,
    extra: Vec<PathBuf>,
}

impl Drop for Unmounter {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.snaps.unmount(id, true);
        }
        for p in &self.extra {
            let _ = rustix::mount::unmount(p, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

fn apply(store: &LayerStore, parent: Option<&Layer>, tar: &[u8]) -> Layer {
    store
        .apply(parent.map(|l| &l.chain_id), tar, &ApplyOptions::default())
        .unwrap()
}

fn base_layers(store: &LayerStore) -> (Layer, Layer) {
    let mut a = TarBuilder::new();
    a.dir("etc/")
        .file("etc/hosts", b"127.0.0.1 localhost\n")
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
        .file("etc/motd", b"hello\n")
        .dir("var/")
        .dir("var/lib/")
        .file("var/lib/a", b"a")
        .file("var/lib/b", b"b")
        .dir("bin/")
        .file_mode("bin/tool", b"#!/bin/sh\n", 0o755, 0, 0)
        .symlink("bin/sh", "tool");
    let a = apply(store, None, &gzip(&a.finish()));
    let mut b = TarBuilder::new();
    b.dir("etc/")
        .file("etc/motd", b"hello from b\n")
        .file("etc/.wh.hosts", b"")
        .file_mode("bin/tool", b"#!/bin/sh\necho b\n", 0o755, 0, 0);
    let b = apply(store, Some(&a), &zstd(&b.finish()));
    (a, b)
}

#[test]
fn overlay_snapshot_copy_up_whiteouts_and_diff_round_trip() {
    if skip_unless_root("overlay_snapshot_copy_up_whiteouts_and_diff_round_trip") {
        return;
    }
    let sb = Sandbox::new();
    let store = LayerStore::open(&sb.root()).unwrap();
    let snaps = Snapshotter::open(&sb.root()).unwrap();
    let mut guard = Unmounter {
        snaps: snaps.clone(),
        ids: Vec::new(),
        extra: Vec::new(),
    };
    let (a, b) = base_layers(&store);
    let lower_a = tree(&store.diff_dir(&a.chain_id));
    let lower_b = tree(&store.diff_dir(&b.chain_id));

    let id = ContainerId::new("c1").unwrap();
    guard.ids.push(id.clone());
    let lowers = vec![store.diff_dir(&b.chain_id), store.diff_dir(&a.chain_id)];
    let (p, method) = snaps.prepare(&id, &lowers).unwrap();
    assert_eq!(method, MountMethod::NewApi, "this kernel has lowerdir+");
    assert!(is_mount_point(&p.rootfs));
    let r = |s: &str| p.rootfs.join(s);

    // The merged view: B over A, with A's hosts whited out by B.
    assert_eq!(fs::read(r("etc/motd")).unwrap(), b"hello from b\n");
    assert!(!r("etc/hosts").exists());
    assert_eq!(fs::read(r("var/lib/a")).unwrap(), b"a");
    assert_eq!(fs::read_link(r("bin/sh")).unwrap(), Path::new("tool"));
    // A new container's upper costs nothing.
    assert_eq!(fs::read_dir(&p.upper).unwrap().count(), 0);

    // Changes.
    fs::write(
        r("etc/passwd"),
        b"root:x:0:0::/root:/bin/sh\nuser:x:1000:1000::/home:/bin/sh\n",
    )
    .unwrap(); // copy-up of a file from A
    fs::remove_file(r("etc/motd")).unwrap(); // deletion of a file from B
    fs::remove_dir_all(r("var/lib")).unwrap(); // deletion of a dir, then a new one: opaque
    fs::create_dir(r("var/lib")).unwrap();
    fs::write(r("var/lib/c"), b"c").unwrap();
    fs::set_permissions(r("bin/tool"), fs::Permissions::from_mode(0o4750)).unwrap();
    fs::create_dir_all(r("home/user")).unwrap();
    fs::write(r("home/user/new"), b"new").unwrap();
    rustix::fs::chown(
        r("home/user/new").as_path(),
        Some(rustix::fs::Uid::from_raw(1000)),
        Some(rustix::fs::Gid::from_raw(1000)),
    )
    .unwrap();
    fs::hard_link(r("home/user/new"), r("home/user/new2")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", r("home/user/pw")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        r("home/user/fifo").as_path(),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    xattr::set(r("home/user/new"), "user.berth", b"v").unwrap();

    // Copy-up left the lowers untouched; the upper holds the changes and whiteouts.
    assert_eq!(tree(&store.diff_dir(&a.chain_id)), lower_a);
    assert_eq!(tree(&store.diff_dir(&b.chain_id)), lower_b);
    assert!(p.upper.join("etc/passwd").is_file());
    let motd = fs::symlink_metadata(p.upper.join("etc/motd")).unwrap();
    assert!(
        motd.file_type().is_char_device() && motd.rdev() == 0,
        "whiteout"
    );
    let opaque = xattr::get(p.upper.join("var/lib"), "trusted.overlay.opaque").unwrap();
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    assert!(!p.upper.join("var/lib/a").exists());
    let merged_before = tree(&p.rootfs);

    // Diff the upper into a layer, twice: the same bytes.
    let (tar1, stats) = write_diff(&p.upper, Vec::new()).unwrap();
    let (tar2, _) = write_diff(&p.upper, Vec::new()).unwrap();
    assert_eq!(tar1, tar2, "diff is deterministic");
    assert_eq!(
        stats.whiteouts, 2,
        "motd whiteout and var/lib opaque marker"
    );
    let names = tar_names(&tar1);
    for want in [
        "etc/.wh.motd",
        "var/lib/.wh..wh..opq",
        "etc/passwd",
        "var/lib/c",
        "home/user/new2",
    ] {
        assert!(
            names.iter().any(|n| n.trim_end_matches('/') == want),
            "{want} missing: {names:?}"
        );
    }

    // Apply the diff as a third layer: it is the upper again.
    let c = apply(&store, Some(&b), &tar1);
    let diff_c = store.diff_dir(&c.chain_id);
    assert_eq!(tree(&diff_c), tree(&p.upper));
    assert_eq!(
        xattr::get(diff_c.join("var/lib"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(
        xattr::get(diff_c.join("home/user/new"), "user.berth")
            .unwrap()
            .as_deref(),
        Some(&b"v"[..])
    );
    let new = fs::metadata(diff_c.join("home/user/new")).unwrap();
    assert_eq!(
        new.ino(),
        fs::metadata(diff_c.join("home/user/new2")).unwrap().ino()
    );
    assert_eq!(
        fs::metadata(diff_c.join("bin/tool")).unwrap().mode() & 0o7777,
        0o4750
    );

    // And a fresh container on A+B+C sees what the first one saw.
    let id2 = ContainerId::new("c2").unwrap();
    guard.ids.push(id2.clone());
    let lowers2 = vec![
        diff_c.clone(),
        store.diff_dir(&b.chain_id),
        store.diff_dir(&a.chain_id),
    ];
    let (p2, _) = snaps.prepare(&id2, &lowers2).unwrap();
    assert_eq!(tree(&p2.rootfs), merged_before);

    // The classic mount(2) fallback gives the same view.
    let classic = sb.dir.path().join("classic");
    for d in ["upper", "work", "merged"] {
        fs::create_dir_all(classic.join(d)).unwrap();
    }
    guard.extra.push(classic.join("merged"));
    mount_overlay_classic(
        &lowers2,
        &classic.join("upper"),
        &classic.join("work"),
        &classic.join("merged"),
    )
    .unwrap();
    assert_eq!(tree(&classic.join("merged")), merged_before);
    rustix::mount::unmount(classic.join("merged"), rustix::mount::UnmountFlags::empty()).unwrap();

    // Remove unmounts and deletes the snapshot's directories.
    snaps.remove(&id).unwrap();
    snaps.remove(&id2).unwrap();
    assert!(!p.rootfs.exists() && !p.upper.exists() && !p.work.exists());
    assert!(!is_mount_point(&p2.rootfs));
}

#[test]
fn busy_snapshot_is_not_removed() {
    if skip_unless_root("busy_snapshot_is_not_removed") {
        return;
    }
    let sb = Sandbox::new();
    let store = LayerStore::open(&sb.root()).unwrap();
    let snaps = Snapshotter::open(&sb.root()).unwrap();
    let mut guard = Unmounter {
        snaps: snaps.clone(),
        ids: Vec::new(),
        extra: Vec::new(),
    };
    let (a, _) = base_layers(&store);
    let id = ContainerId::new("busy").unwrap();
    guard.ids.push(id.clone());
    let (p, _) = snaps.prepare(&id, &[store.diff_dir(&a.chain_id)]).unwrap();
    // Mounting twice is refused.
    assert!(snaps.prepare(&id, &[store.diff_dir(&a.chain_id)]).is_err());
    let f = fs::File::open(p.rootfs.join("etc/passwd")).unwrap();
    let e = snaps.remove(&id).unwrap_err();
    assert!(e.to_string().contains("still using"), "{e}");
    assert!(p.upper.exists(), "a busy snapshot keeps its upper");
    drop(f);
    snaps.remove(&id).unwrap();
}

#[test]
fn image_without_layers_gets_an_empty_lower() {
    if skip_unless_root("image_without_layers_gets_an_empty_lower") {
        return;
    }
    let sb = Sandbox::new();
    let snaps = Snapshotter::open(&sb.root()).unwrap();
    let mut guard = Unmounter {
        snaps: snaps.clone(),
        ids: Vec::new(),
        extra: Vec::new(),
    };
    let id = ContainerId::new("scratch").unwrap();
    guard.ids.push(id.clone());
    let (p, _) = snaps.prepare(&id, &[]).unwrap();
    fs::write(p.rootfs.join("x"), b"x").unwrap();
    assert!(p.upper.join("x").is_file());
    snaps.remove(&id).unwrap();
    assert!(!p.dir.join("empty").exists());
}

fn tar_names(t: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(t);
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}
