//! Crate tests of commit (root only: overlay mounts): an image is snapshotted, files are written
//! and deleted through the merged rootfs, the upper dir is committed with author, message and
//! config changes, and a snapshot of the new image shows the changes. An unchanged container
//! still commits a new (empty) layer, as Docker does.

use std::fs;
use std::path::Path;

use berth_image::archive::ImportOptions;
use berth_image::image::{CommitOptions, ImageStore};
use berth_image::Snapshotter;
use berth_types::{ContainerId, Reference};

fn skip_unless_root(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        false
    } else {
        eprintln!("skipping {test}: needs root (overlay mounts, trusted.* xattrs)");
        true
    }
}

/// Unmounts the snapshots it was told about, even when the test panics.
struct Unmounter {
    snaps: Snapshotter,
    ids: Vec<ContainerId>,
}

impl Drop for Unmounter {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.snaps.unmount(id, true);
        }
    }
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_entry_type(if name.ends_with('/') {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn commit_records_changes_history_and_config() {
    if skip_unless_root("commit_records_changes_history_and_config") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let store = ImageStore::open(&root).unwrap();
    let snaps = Snapshotter::open(&root).unwrap();
    let mut guard = Unmounter {
        snaps: snaps.clone(),
        ids: Vec::new(),
    };
    let base_tar = tar_of(&[
        ("etc/", b""),
        ("etc/keep", b"keep\n"),
        ("etc/gone", b"delete me\n"),
        ("etc/edit", b"old\n"),
        ("var/", b""),
        ("var/dir/", b""),
        ("var/dir/a", b"a"),
    ]);
    let base = store
        .import(
            &base_tar[..],
            &ImportOptions {
                tags: vec![Reference::parse_normalized("base:1").unwrap()],
                changes: vec![r#"CMD ["sh"]"#.into(), "ENV PATH=/bin".into()],
                ..Default::default()
            },
        )
        .unwrap();

    // A container of the base image changes files through its merged rootfs.
    let c1 = ContainerId::new("commit-c1").unwrap();
    guard.ids.push(c1.clone());
    let (p, _) = snaps.prepare(&c1, &store.lower_dirs(&base)).unwrap();
    fs::write(p.rootfs.join("etc/new"), b"new file\n").unwrap();
    fs::write(p.rootfs.join("etc/edit"), b"new\n").unwrap();
    fs::remove_file(p.rootfs.join("etc/gone")).unwrap();
    fs::remove_dir_all(p.rootfs.join("var/dir")).unwrap();
    fs::create_dir(p.rootfs.join("var/dir")).unwrap();
    fs::write(p.rootfs.join("var/dir/b"), b"b").unwrap();
    snaps.unmount(&c1, false).unwrap();

    let img = store
        .commit(
            &p.upper,
            "base:1",
            &CommitOptions {
                author: Some("Jane <jane@example.com>".into()),
                message: Some("add new, edit, delete".into()),
                created_by: Some("sh -c edit".into()),
                changes: vec![
                    r#"CMD ["cat", "/etc/new"]"#.into(),
                    "ENV MODE=committed".into(),
                ],
                pause: true,
                tags: vec![Reference::parse_normalized("committed:1").unwrap()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_ne!(img.id(), base.id());
    assert_eq!(store.get("committed:1").unwrap().id(), img.id());
    assert_eq!(img.config.rootfs.diff_ids.len(), 2);
    assert_eq!(
        img.config.rootfs.diff_ids[0],
        base.config.rootfs.diff_ids[0]
    );
    assert_eq!(
        img.config.author.as_deref(),
        Some("Jane <jane@example.com>")
    );
    let h = img.config.history.last().unwrap();
    assert_eq!(img.config.history.len(), base.config.history.len() + 1);
    assert_eq!(h.comment.as_deref(), Some("add new, edit, delete"));
    assert_eq!(h.author.as_deref(), Some("Jane <jane@example.com>"));
    assert_eq!(h.created_by.as_deref(), Some("sh -c edit"));
    assert!(!h.empty_layer);
    let cc = img.config.config.clone().unwrap();
    assert_eq!(cc.cmd.unwrap(), vec!["cat", "/etc/new"]);
    assert_eq!(cc.env.unwrap(), vec!["PATH=/bin", "MODE=committed"]);
    // The base layer is shared, not copied.
    assert_eq!(img.record.layers[0], base.record.layers[0]);

    // A container of the new image sees the changes.
    let c2 = ContainerId::new("commit-c2").unwrap();
    guard.ids.push(c2.clone());
    let (p2, _) = snaps.prepare(&c2, &store.lower_dirs(&img)).unwrap();
    let rf = &p2.rootfs;
    assert_eq!(fs::read(rf.join("etc/new")).unwrap(), b"new file\n");
    assert_eq!(fs::read(rf.join("etc/edit")).unwrap(), b"new\n");
    assert_eq!(fs::read(rf.join("etc/keep")).unwrap(), b"keep\n");
    assert!(!rf.join("etc/gone").exists());
    assert!(
        !rf.join("var/dir/a").exists(),
        "the opaque directory hides the old content"
    );
    assert_eq!(fs::read(rf.join("var/dir/b")).unwrap(), b"b");
    snaps.unmount(&c2, false).unwrap();

    // An unchanged container still commits a layer (an empty one), as docker commit does.
    let c3 = ContainerId::new("commit-c3").unwrap();
    guard.ids.push(c3.clone());
    let (p3, _) = snaps.prepare(&c3, &store.lower_dirs(&img)).unwrap();
    snaps.unmount(&c3, false).unwrap();
    let empty = store
        .commit(&p3.upper, &img.id().to_string(), &CommitOptions::default())
        .unwrap();
    assert_eq!(empty.config.rootfs.diff_ids.len(), 3);
    assert_eq!(empty.config.history.len(), img.config.history.len() + 1);
    assert!(is_empty_dir(&store.layer_dirs(&empty)[2]));
    // Without changes, the config is the parent's.
    assert_eq!(
        empty.config.config.unwrap().cmd,
        img.config.config.unwrap().cmd
    );

    // A bad change commits nothing.
    let before = store.index().unwrap().images().unwrap().len();
    let e = store
        .commit(
            &p3.upper,
            "committed:1",
            &CommitOptions {
                changes: vec!["RUN true".into()],
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("not supported"), "{e}");
    assert_eq!(store.index().unwrap().images().unwrap().len(), before);
    for id in [&c1, &c2, &c3] {
        snaps.remove(id).unwrap();
    }
}

fn is_empty_dir(p: &Path) -> bool {
    fs::read_dir(p)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false)
}
