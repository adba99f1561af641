//! Crate tests of layer application: what a normal layer unpacks to, compression detection,
//! sharing by chain id, and hostile layers, each of which must either stay inside its layer
//! directory or fail with nothing visible under `layers/`.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use berth_image::content::sha256_digest;
use berth_image::layer::{apply_layer, ApplyOptions, DevicePolicy, LayerError, LayerStore};
use common::*;

fn opts() -> ApplyOptions {
    ApplyOptions::default()
}

// ---------------------------------------------------------------- normal layers

#[test]
fn a_normal_layer_unpacks_with_metadata() {
    if skip_unless_root("a_normal_layer_unpacks_with_metadata") {
        return;
    }
    let mut t = TarBuilder::new();
    t.dir("bin/")
        .file_mode("bin/su", b"#!su", 0o4755, 0, 0)
        .dir_mode("home/", 0o755)
        .raw(
            "home/user/",
            tar::EntryType::Directory,
            None,
            b"",
            0o700,
            1000,
            1001,
            None,
            &[],
        )
        .file_mode("home/user/notes", b"hi", 0o640, 1000, 1001)
        .raw(
            "withattr",
            tar::EntryType::Regular,
            None,
            b"x",
            0o644,
            0,
            0,
            None,
            &[("user.berth", b"yes"), ("trusted.overlay.opaque", b"y")],
        )
        .hardlink("bin/su2", "bin/su")
        .symlink("bin/sh", "/bin/busybox")
        .fifo("run/fifo")
        .chardev("dev/null", 1, 3)
        .dir_mode("ro/", 0o555)
        .file("ro/inside", b"created before the dir became read-only");
    let tarball = t.finish();
    let dir = tempfile::tempdir().unwrap();
    let stats = apply_layer(dir.path(), &tarball[..], &opts()).unwrap();
    assert_eq!(stats.diff_id, sha256_digest(&tarball));
    let p = |s: &str| dir.path().join(s);

    let su = fs::metadata(p("bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(su.mtime(), MTIME as i64);
    assert_eq!(su.nlink(), 2);
    assert_eq!(
        fs::metadata(p("bin/su2")).unwrap().ino(),
        su.ino(),
        "hardlink inside the layer"
    );
    let notes = fs::metadata(p("home/user/notes")).unwrap();
    assert_eq!(
        (notes.uid(), notes.gid(), notes.mode() & 0o777),
        (1000, 1001, 0o640)
    );
    let home = fs::metadata(p("home/user")).unwrap();
    assert_eq!(
        (home.uid(), home.gid(), home.mode() & 0o7777),
        (1000, 1001, 0o700)
    );
    assert_eq!(
        home.mtime(),
        MTIME as i64,
        "dir mtime set after its children"
    );
    assert_eq!(fs::metadata(p("bin")).unwrap().mtime(), MTIME as i64);
    assert_eq!(
        fs::read_link(p("bin/sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        fs::symlink_metadata(p("bin/sh")).unwrap().mtime(),
        MTIME as i64
    );
    assert!(fs::symlink_metadata(p("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let null = fs::symlink_metadata(p("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(fs::metadata(p("ro")).unwrap().mode() & 0o777, 0o555);
    assert_eq!(
        xattr::get(p("withattr"), "user.berth").unwrap().as_deref(),
        Some(&b"yes"[..])
    );
    assert_eq!(
        xattr::get(p("withattr"), "trusted.overlay.opaque").unwrap(),
        None,
        "overlay xattrs from the tar are dropped"
    );
    assert_eq!(stats.size, 4 + 2 + 1 + 39);
}

#[test]
fn whiteouts_become_overlay_whiteouts() {
    if skip_unless_root("whiteouts_become_overlay_whiteouts") {
        return;
    }
    let mut t = TarBuilder::new();
    t.dir("etc/")
        .file("etc/.wh.hosts", b"")
        .dir("var/")
        .file("var/.wh..wh..opq", b"")
        .file("var/new", b"n")
        .file(".wh..wh.plnk", b"")
        .file("gone", b"first")
        .file(".wh.gone", b"");
    let dir = tempfile::tempdir().unwrap();
    apply_layer(dir.path(), &t.finish()[..], &opts()).unwrap();
    let hosts = fs::symlink_metadata(dir.path().join("etc/hosts")).unwrap();
    assert!(hosts.file_type().is_char_device());
    assert_eq!(hosts.rdev(), 0);
    assert!(!dir.path().join("etc/.wh.hosts").exists());
    assert_eq!(
        xattr::get(dir.path().join("var"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(dir.path().join("var/new").is_file());
    assert!(!dir.path().join(".wh..wh.plnk").exists());
    assert!(fs::symlink_metadata(dir.path().join("gone"))
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn compressions_give_one_diff_id() {
    let mut t = TarBuilder::new();
    t.dir("a/").file("a/b", b"content");
    let plain = t.finish();
    let mut o = opts();
    o.same_owner = false;
    let mut ids = Vec::new();
    for data in [plain.clone(), gzip(&plain), zstd(&plain)] {
        let dir = tempfile::tempdir().unwrap();
        let s = apply_layer(dir.path(), &data[..], &o).unwrap();
        assert_eq!(fs::read(dir.path().join("a/b")).unwrap(), b"content");
        ids.push(s.diff_id);
    }
    assert_eq!(ids[0], sha256_digest(&plain));
    assert!(ids.iter().all(|d| *d == ids[0]));
}

#[test]
fn shared_layers_are_unpacked_once() {
    let sb = Sandbox::new();
    let store = LayerStore::open(&sb.root()).unwrap();
    let mut t = TarBuilder::new();
    t.file("base", b"base");
    let base = t.finish();
    let mut o = opts();
    o.same_owner = false;
    let l1 = store.apply(None, &base[..], &o).unwrap();
    assert_eq!(l1.chain_id, l1.diff_id);
    assert!(store.diff_dir(&l1.chain_id).join("base").is_file());
    // Same layer again without a known diff id: unpacked to tmp, then discarded.
    let again = store.apply(None, &base[..], &o).unwrap();
    assert_eq!(again, l1);
    // With a known diff id the stream is not even read.
    o.expected_diff_id = Some(l1.diff_id.clone());
    let never = std::io::Cursor::new(b"not a tar at all".to_vec());
    assert_eq!(store.apply(None, never, &o).unwrap(), l1);
    o.expected_diff_id = None;

    let mut t = TarBuilder::new();
    t.file("top", b"top");
    let top = t.finish();
    let l2 = store.apply(Some(&l1.chain_id), &top[..], &o).unwrap();
    assert_eq!(l2.parent.as_ref(), Some(&l1.chain_id));
    assert_eq!(
        l2.chain_id,
        berth_image::chain_id(Some(&l1.chain_id), &l2.diff_id)
    );
    assert_eq!(store.list().unwrap().len(), 2);
    assert!(sb.tmp_entries().is_empty(), "{:?}", sb.tmp_entries());
    assert!(store.remove(&l2.chain_id).unwrap());
    assert!(!store.remove(&l2.chain_id).unwrap());
    assert_eq!(store.list().unwrap(), vec![l1.chain_id.clone()]);
}

#[test]
fn concurrent_applies_of_one_layer_store_it_once() {
    let sb = Sandbox::new();
    let store = LayerStore::open(&sb.root()).unwrap();
    let mut t = TarBuilder::new();
    for i in 0..50 {
        t.file(&format!("f{i}"), &vec![b'x'; 10_000]);
    }
    let data = std::sync::Arc::new(t.finish());
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let store = store.clone();
            let data = data.clone();
            std::thread::spawn(move || {
                let o = ApplyOptions {
                    same_owner: false,
                    ..Default::default()
                };
                store.apply(None, &data[..], &o).unwrap()
            })
        })
        .collect();
    let layers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(layers.iter().all(|l| *l == layers[0]));
    assert_eq!(sb.layers().len(), 1);
    assert!(sb.tmp_entries().is_empty());
}

// ---------------------------------------------------------------- hostile layers

/// Applies `tarball` through the store in a fresh sandbox and checks the invariants every
/// hostile layer must keep: nothing outside `layers/` changed, `tmp/` is empty, and on error
/// nothing is under `layers/`. Returns the result and the sandbox for case-specific checks.
fn hostile(
    tarball: &[u8],
    o: &ApplyOptions,
) -> (Result<berth_image::Layer, LayerError>, Sandbox, LayerStore) {
    let sb = Sandbox::new();
    let store = LayerStore::open(&sb.root()).unwrap();
    let before = sb.outside();
    let host_passwd = fs::read("/etc/passwd").ok();
    let r = store.apply(None, tarball, o);
    assert_eq!(
        sb.outside(),
        before,
        "something outside the layer changed ({r:?})"
    );
    assert!(
        sb.tmp_entries().is_empty(),
        "tmp not cleaned: {:?}",
        sb.tmp_entries()
    );
    assert_eq!(
        fs::read("/etc/passwd").ok(),
        host_passwd,
        "host /etc/passwd changed!"
    );
    if r.is_err() {
        assert!(
            sb.layers().is_empty(),
            "a failed layer became visible: {:?}",
            sb.layers()
        );
    }
    (r, sb, store)
}

fn diff_of(store: &LayerStore, r: &Result<berth_image::Layer, LayerError>) -> std::path::PathBuf {
    store.diff_dir(&r.as_ref().expect("layer should apply").chain_id)
}

fn no_host_file(p: &str) {
    assert!(!Path::new(p).exists(), "{p} was written on the host!");
}

#[test]
fn hostile_dotdot_name_is_refused() {
    let mut t = TarBuilder::new();
    t.file("../../etc/berth-hostile-dotdot", b"pwned");
    t.file("../../../../../../../../tmp/berth-hostile-dotdot", b"pwned");
    let (r, _sb, _) = hostile(&t.finish(), &opts());
    assert!(matches!(r, Err(LayerError::Breakout(_))), "{r:?}");
    assert!(r.unwrap_err().to_string().contains("climbs out"));
    no_host_file("/tmp/berth-hostile-dotdot");
}

#[test]
fn hostile_inner_dotdot_is_refused() {
    let mut t = TarBuilder::new();
    t.file("a/b/../../../canary/x", b"pwned");
    let (r, _sb, _) = hostile(&t.finish(), &opts());
    assert!(matches!(r, Err(LayerError::Breakout(_))), "{r:?}");
}

#[test]
fn hostile_absolute_name_lands_inside() {
    let mut t = TarBuilder::new();
    t.file("/etc/berth-hostile-abs", b"inside");
    let (r, _sb, store) = hostile(&t.finish(), &opts());
    let diff = diff_of(&store, &r);
    assert_eq!(
        fs::read(diff.join("etc/berth-hostile-abs")).unwrap(),
        b"inside"
    );
    no_host_file("/etc/berth-hostile-abs");
}

#[test]
fn hostile_symlink_to_etc_then_file_through_it_lands_inside() {
    // CVE-2014-6407 shape: a symlink to an absolute host path, then a file through it.
    let mut t = TarBuilder::new();
    t.dir("etc/")
        .symlink("evil", "/etc")
        .file("evil/passwd", b"pwned");
    let (r, _sb, store) = hostile(&t.finish(), &opts());
    let diff = diff_of(&store, &r);
    assert_eq!(fs::read_link(diff.join("evil")).unwrap(), Path::new("/etc"));
    assert_eq!(fs::read(diff.join("etc/passwd")).unwrap(), b"pwned");
}

#[test]
fn hostile_dangling_symlink_then_file_through_it_is_refused() {
    // The same, when the layer has no /etc: the link dangles inside the layer, so the write
    // fails (as Docker's chrooted unpack does) instead of going anywhere else.
    let mut t = TarBuilder::new();
    t.symlink("evil", "/etc")
        .file("evil/berth-hostile-dangling", b"pwned");
    let (r, _sb, _) = hostile(&t.finish(), &opts());
    assert!(matches!(r, Err(LayerError::Resolve { .. })), "{r:?}");
    assert!(r
        .unwrap_err()
        .to_string()
        .contains("evil/berth-hostile-dangling"));
    no_host_file("/etc/berth-hostile-dangling");
}

#[test]
fn hostile_symlink_to_dotdots_then_file_lands_inside() {
    let mut t = TarBuilder::new();
    t.symlink("up", "../../..")
        .file("up/x", b"pwned")
        .file("up/canary/x", b"pwned");
    let (r, _sb, store) = hostile(&t.finish(), &opts());
    let diff = diff_of(&store, &r);
    assert_eq!(fs::read(diff.join("x")).unwrap(), b"pwned");
    assert_eq!(fs::read(diff.join("canary/x")).unwrap(), b"pwned");
}

#[test]
fn hostile_relative_symlink_chain_lands_inside() {
    // CVE-2014-9356 / CVE-2020-27833 shape: each link climbs one more level than the last.
    let mut t = TarBuilder::new();
    t.dir("canary/")
        .dir("etc/")
        .dir("a/")
        .dir("a/b/")
        .dir("a/b/c/");
    t.symlink("a/b/c/l1", "..");
    t.symlink("a/b/c/l2", "l1/..");
    t.symlink("a/b/c/l3", "l2/../..");
    t.symlink("a/b/c/l4", "l3/../../..");
    t.symlink("a/b/c/l5", "l4/../../../../canary");
    t.file("a/b/c/l5/x", b"pwned");
    t.file("a/b/c/l4/../../etc/berth-hostile-chain", b"pwned");
    let (r, _sb, store) = hostile(&t.finish(), &opts());
    let diff = diff_of(&store, &r);
    assert_eq!(fs::read(diff.join("canary/x")).unwrap(), b"pwned");
    no_host_file("/etc/berth-hostile-chain");
}

#[test]
fn hostile_file_over_an_escaping_symlink_replaces_the_link() {
    let mut t = TarBuilder::new();
    t.symlink("link", "/etc/passwd").file("link", b"replaced");
    t.symlink("l2", "../../canary/x")
        .file_mode("l2", b"replaced", 0o600, 0, 0);
    let (r, _sb, store) = hostile(&t.finish(), &opts());
    let diff = diff_of(&store, &r);
    let m = fs::symlink_metadata(diff.join("link")).unwrap();
    assert!(m.file_type().is_file());
    assert_eq!(fs::read(diff.join("l2")).unwrap(), b"replaced");
}

#[test]
fn hostile_dir_replaced_by_symlink_then_written_through_lands_inside() {
    let mut t = TarBuilder::new();
    t.dir("d/")
        .file("d/f", b"1")
        .symlink("d", "/")
        .file("d/etc/berth-hostile-dir", b"2");
    let (r, _sb, store) = hostile(&t.finish(), &opts());
    let diff = diff_of(&store, &r);
    assert_eq!(fs::read(diff.join("etc/berth-hostile-dir")).unwrap(), b"2");
    no_host_file("/etc/berth-hostile-dir");
}

#[test]
fn hostile_hardlink_to_absolute_host_file_is_refused() {
    let mut t = TarBuilder::new();
    t.hardlink("h", "/etc/passwd");
    let (r, _sb, _) = hostile(&t.finish(), &opts());
    assert!(matches!(r, Err(LayerError::HardlinkTarget { .. })), "{r:?}");
}

#[test]
fn hostile_hardlink_to_absolute_name_links_the_layer_file() {
    let mut t = TarBuilder::new();
    t.file("etc/passwd", b"layer's own")
        .hardlink("h", "/etc/passwd");
    let (r, _sb, store) = hostile(&t.finish(), &opts());
    let diff = diff_of(&store, &r);
    assert_eq!(
        fs::metadata(diff.join("h")).unwrap().ino(),
        fs::metadata(diff.join("etc/passwd")).unwrap().ino()
    );
}

#[test]
fn hostile_hardlink_to_dotdot_is_refused() {
    let mut t = TarBuilder::new();
    t.hardlink("h", "../outside");
    let (r, _sb, _) = hostile(&t.finish(), &opts());
    assert!(
        matches!(r, Err(LayerError::HardlinkOutside { .. })),
        "{r:?}"
    );
    let mut t = TarBuilder::new();
    t.hardlink("h", "../../canary/x");
    let (r, _sb, _) = hostile(&t.finish(), &opts());
    assert!(
        matches!(r, Err(LayerError::HardlinkOutside { .. })),
        "{r:?}"
    );
}

#[test]
fn hostile_hardlink_through_escaping_symlink_stays_inside() {
    let mut t = TarBuilder::new();
    t.symlink("up", "../../..").hardlink("h", "up/canary/x");
    let (r, _sb, _) = hostile(&t.finish(), &opts());
    // up/canary/x resolves inside the layer, where there is no such file.
    assert!(matches!(r, Err(LayerError::HardlinkTarget { .. })), "{r:?}");
}

#[test]
fn hostile_whiteout_of_dotdot_is_refused() {
    let mut t = TarBuilder::new();
    t.file("../.wh.x", b"");
    let (r, _sb, _) = hostile(&t.finish(), &opts());
    assert!(matches!(r, Err(LayerError::Breakout(_))), "{r:?}");
    for name in [".wh..", ".wh...", "d/.wh."] {
        let mut t = TarBuilder::new();
        t.file(name, b"");
        let (r, _sb, _) = hostile(&t.finish(), &opts());
        assert!(
            matches!(r, Err(LayerError::BadWhiteout(_))),
            "{name}: {r:?}"
        );
    }
}

#[test]
fn hostile_whiteout_through_symlink_stays_inside() {
    if skip_unless_root("hostile_whiteout_through_symlink_stays_inside") {
        return;
    }
    let mut t = TarBuilder::new();
    t.dir("canary/")
        .symlink("evil", "../../../canary")
        .file("evil/.wh.x", b"")
        .file("evil/.wh..wh..opq", b"");
    let (r, _sb, store) = hostile(&t.finish(), &opts());
    let diff = diff_of(&store, &r);
    assert!(fs::symlink_metadata(diff.join("canary/x"))
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn devices_are_allowed_inside_only_or_refused() {
    if skip_unless_root("devices_are_allowed_inside_only_or_refused") {
        return;
    }
    let mut t = TarBuilder::new();
    t.dir("dev/")
        .symlink("devlink", "../../../../dev")
        .chardev("devlink/berth-hostile-null", 1, 3);
    t.raw(
        "sda",
        tar::EntryType::Block,
        None,
        b"",
        0o600,
        0,
        0,
        Some((8, 0)),
        &[],
    );
    let tarball = t.finish();
    let (r, _sb, store) = hostile(&tarball, &opts());
    let diff = diff_of(&store, &r);
    assert!(fs::symlink_metadata(diff.join("dev/berth-hostile-null"))
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(fs::symlink_metadata(diff.join("sda"))
        .unwrap()
        .file_type()
        .is_block_device());
    no_host_file("/dev/berth-hostile-null");

    let mut o = opts();
    o.devices = DevicePolicy::Refuse;
    let (r, _sb, _) = hostile(&tarball, &o);
    assert!(matches!(r, Err(LayerError::DeviceRefused(_))), "{r:?}");
    o.devices = DevicePolicy::Skip;
    let (r, _sb, store) = hostile(&tarball, &o);
    let diff = diff_of(&store, &r);
    assert!(!diff.join("sda").exists());
}

#[test]
fn truncated_gzip_is_refused() {
    let mut t = TarBuilder::new();
    t.file("big", &vec![7u8; 100_000]).file("after", b"x");
    let gz = gzip(&t.finish());
    for cut in [gz.len() / 2, gz.len() - 4, 20] {
        let (r, _sb, _) = hostile(&gz[..cut], &opts());
        assert!(matches!(r, Err(LayerError::Read(_))), "cut at {cut}: {r:?}");
        assert!(r.unwrap_err().to_string().contains("truncated or corrupt"));
    }
}

#[test]
fn truncated_plain_tar_is_refused() {
    let mut t = TarBuilder::new();
    t.file("big", &vec![7u8; 100_000]);
    let plain = t.finish();
    let (r, _sb, _) = hostile(&plain[..50_000], &opts());
    assert!(matches!(r, Err(LayerError::Read(_))), "{r:?}");
}

#[test]
fn diff_id_mismatch_is_refused() {
    let mut t = TarBuilder::new();
    t.file("a", b"a");
    let tarball = t.finish();
    let mut o = opts();
    o.expected_diff_id = Some(sha256_digest(b"something else"));
    let (r, _sb, _) = hostile(&tarball, &o);
    assert!(matches!(r, Err(LayerError::DiffIdMismatch { .. })), "{r:?}");
    assert!(r.unwrap_err().to_string().contains("nothing was stored"));
    // Trailing garbage after the end-of-archive blocks is part of the diff id.
    let mut padded = tarball.clone();
    padded.extend_from_slice(&[0u8; 1024]);
    o.expected_diff_id = Some(sha256_digest(&tarball));
    let (r, _sb, _) = hostile(&padded, &o);
    assert!(matches!(r, Err(LayerError::DiffIdMismatch { .. })), "{r:?}");
}

#[test]
fn non_directory_root_entry_is_refused() {
    let mut t = TarBuilder::new();
    t.file("./", b"x");
    let (r, _sb, _) = hostile(&t.finish(), &opts());
    assert!(matches!(r, Err(LayerError::RootNotDir { .. })), "{r:?}");
}

#[test]
fn junk_streams_are_errors_not_panics() {
    for junk in [
        &b""[..],
        &b"\x1f\x8b"[..],
        &b"\x28\xb5\x2f\xfd\x00\x00"[..],
        &[0xffu8; 1024][..],
        &[0u8; 700][..],
    ] {
        let (r, sb, _) = hostile(junk, &opts());
        // Empty and all-zero streams are empty tars (a valid empty layer); the rest are errors.
        if let Ok(l) = &r {
            let store = LayerStore::open(&sb.root()).unwrap();
            assert!(fs::read_dir(store.diff_dir(&l.chain_id))
                .unwrap()
                .next()
                .is_none());
        }
    }
}

#[test]
fn read_only_parent_modes_do_not_block_children() {
    let mut t = TarBuilder::new();
    t.dir_mode("ro/", 0o500)
        .file("ro/a", b"a")
        .dir_mode("ro/sub/", 0o500)
        .file("ro/sub/b", b"b");
    let mut o = opts();
    o.same_owner = false;
    let dir = tempfile::tempdir().unwrap();
    apply_layer(dir.path(), &t.finish()[..], &o).unwrap();
    assert_eq!(fs::read(dir.path().join("ro/sub/b")).unwrap(), b"b");
    assert_eq!(
        fs::metadata(dir.path().join("ro"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o500
    );
    // Let the tempdir clean up when not root.
    fs::set_permissions(dir.path().join("ro/sub"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(dir.path().join("ro"), fs::Permissions::from_mode(0o700)).unwrap();
}
