//! Crate tests of image removal and disk reclaim: tag, rmi (names, in-use refusals, force),
//! shared layers, prune, garbage collection and repair after a simulated crash, system df
//! against sizes computed here, and history.
//!
//! Images are made through the `ImageStore` facade from small layer tars; each test has its own
//! data root in a temporary directory, removed on drop even when the test fails.

mod common;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_image::check::CheckOptions;
use berth_image::gc::{DeleteItem, GcError, GcOptions, ImageOps};
use berth_image::image::{CreateOptions, History, Image, ImageConfig, ImageStore, NewLayer};
use berth_image::index::IndexError;
use berth_image::LayerRecord;
use berth_types::{Digest, Reference};
use common::*;

struct Root {
    _dir: tempfile::TempDir,
    path: PathBuf,
    store: ImageStore,
    ops: ImageOps,
}

fn root() -> Root {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let store = ImageStore::open(&path).unwrap();
    let ops = ImageOps::open(&path).unwrap();
    Root {
        _dir: dir,
        path,
        store,
        ops,
    }
}

fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = TarBuilder::new();
    for (name, data) in files {
        if let Some(dir) = name.rsplit_once('/').map(|(d, _)| d) {
            t.dir(&format!("{dir}/"));
        }
        t.file(name, data);
    }
    t.finish()
}

fn base_tar() -> Vec<u8> {
    layer_tar(&[("etc/os-release", b"ID=test\n"), ("bin/tool", &[7u8; 5000])])
}

fn image(r: &Root, layers: &[Vec<u8>], history: Vec<History>, tags: &[&str]) -> Image {
    let new: Vec<NewLayer<'_>> = layers
        .iter()
        .map(|l| NewLayer::Tar(Box::new(std::io::Cursor::new(l.clone()))))
        .collect();
    let mut config = ImageConfig::for_host();
    config.created = Some("2024-01-01T00:00:00Z".into());
    config.history = history;
    let opts = CreateOptions {
        tags: tags
            .iter()
            .map(|t| Reference::parse_normalized(t).unwrap())
            .collect(),
        ..CreateOptions::default()
    };
    r.store.create_image(new, config, &opts).unwrap()
}

/// Two images sharing a base layer: `one` (base + a) and `two` (base + b).
fn two_images(r: &Root) -> (Image, Image) {
    let a = image(
        r,
        &[base_tar(), layer_tar(&[("srv/a", b"image a")])],
        vec![],
        &["one"],
    );
    let b = image(
        r,
        &[base_tar(), layer_tar(&[("srv/b", b"image b")])],
        vec![],
        &["two"],
    );
    (a, b)
}

fn blobs_of(img: &Image) -> Vec<Digest> {
    let mut v = vec![img.id().clone(), img.manifest_digest().unwrap().clone()];
    v.extend(img.manifest.layers.iter().map(|l| l.digest.clone()));
    v
}

fn dir_names(p: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(p)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn untagged(s: &str) -> DeleteItem {
    DeleteItem::Untagged(s.to_string())
}

#[test]
fn tag_moves_and_refuses_invalid_names() {
    let r = root();
    let (a, b) = two_images(&r);
    let mut ix = r.store.index().unwrap();
    assert_eq!(r.ops.tag(&mut ix, "one", "alias:1").unwrap(), None);
    assert_eq!(ix.resolve("alias:1").unwrap().id, *a.id());
    // Moving a tag returns the image it left.
    assert_eq!(
        r.ops.tag(&mut ix, b.id().hex(), "alias:1").unwrap(),
        Some(a.id().clone())
    );
    assert_eq!(ix.resolve("alias:1").unwrap().id, *b.id());
    let digest_ref = format!("alias@{}", a.id());
    assert!(matches!(
        r.ops.tag(&mut ix, "one", &digest_ref),
        Err(GcError::TagWithDigest(_))
    ));
    assert!(matches!(
        r.ops.tag(&mut ix, "one", "sha256:x"),
        Err(GcError::AmbiguousTag(_))
    ));
    let e = r.ops.tag(&mut ix, "one", "Upper/Case").unwrap_err();
    assert!(e.to_string().contains("lowercase"), "{e}");
    assert!(matches!(
        r.ops.tag(&mut ix, "nosuch", "x"),
        Err(GcError::Index(IndexError::NotFound(_)))
    ));
    assert!(r.ops.untag(&mut ix, "alias:1").unwrap());
    assert!(!r.ops.untag(&mut ix, "alias:1").unwrap());
    // Untagging leaves the image.
    assert!(ix.image(b.id()).unwrap().is_some());
}

#[test]
fn rmi_follows_docker() {
    let r = root();
    let (a, b) = two_images(&r);
    let mut ix = r.store.index().unwrap();
    r.ops.tag(&mut ix, "one", "one:v2").unwrap();
    r.ops.tag(&mut ix, "one", "localhost:5000/other").unwrap();

    // By name with other names left: only untags.
    assert_eq!(
        r.ops.rmi(&mut ix, "one:v2", false).unwrap(),
        vec![untagged("one:v2")]
    );
    assert!(ix.image(a.id()).unwrap().is_some());

    // By id while the names span two repositories: refused unless forced.
    let e = r.ops.rmi(&mut ix, &a.id().hex()[..12], false).unwrap_err();
    assert!(matches!(e, GcError::MultipleRepositories { .. }), "{e}");
    assert!(e.to_string().contains("must be forced"), "{e}");

    // In use: by its last name refused; by another name still just untags.
    ix.add_user("container:c1", a.id()).unwrap();
    assert_eq!(
        r.ops.rmi(&mut ix, "localhost:5000/other", false).unwrap(),
        vec![untagged("localhost:5000/other:latest")]
    );
    let e = r.ops.rmi(&mut ix, "one", false).unwrap_err();
    assert!(matches!(e, GcError::ReferenceInUse { .. }), "{e}");
    assert!(e.to_string().contains("container:c1"), "{e}");
    let e = r.ops.rmi(&mut ix, a.id().hex(), false).unwrap_err();
    assert!(matches!(e, GcError::ImageInUse { .. }), "{e}");
    assert!(ix.image(a.id()).unwrap().is_some());

    // Forced: untagged, deleted, and its own layer with it; the shared base stays for `two`.
    let items = r.ops.rmi(&mut ix, "one", true).unwrap();
    let top_a = a.record.layers[1].clone();
    let base = a.record.layers[0].clone();
    assert_eq!(
        items,
        vec![
            untagged("one:latest"),
            DeleteItem::Deleted(a.id().clone()),
            DeleteItem::Deleted(top_a.clone()),
        ]
    );
    assert_eq!(items[1].to_string(), format!("Deleted: {}", a.id()));
    assert_eq!(items[0].to_string(), "Untagged: one:latest");
    assert!(ix.image(a.id()).unwrap().is_none());
    assert!(ix.users_of(a.id()).unwrap().is_empty());
    let layers = r.ops.layer_store();
    assert!(!layers.exists(&top_a));
    assert!(layers.exists(&base));
    assert!(ix.layer(&top_a).unwrap().is_none());
    let content = r.ops.content();
    let (a_blobs, b_blobs) = (blobs_of(&a), blobs_of(&b));
    for d in &a_blobs {
        assert_eq!(content.exists(d), b_blobs.contains(d), "blob {d}");
    }
    for d in &b_blobs {
        assert!(content.exists(d), "blob {d} of the remaining image");
    }

    // The second image takes the shared layer with it: nothing is left.
    let items = r.ops.rmi(&mut ix, "two", false).unwrap();
    assert_eq!(
        items,
        vec![
            untagged("two:latest"),
            DeleteItem::Deleted(b.id().clone()),
            DeleteItem::Deleted(b.record.layers[1].clone()),
            DeleteItem::Deleted(base.clone()),
        ]
    );
    assert!(dir_names(&r.path.join("blobs/sha256")).is_empty());
    assert!(dir_names(&r.path.join("layers")).is_empty());
    assert!(dir_names(&r.path.join("tmp")).is_empty());
    assert!(ix.all_layers().unwrap().is_empty());
    assert!(matches!(
        r.ops.rmi(&mut ix, "two", false),
        Err(GcError::Index(IndexError::NotFound(_)))
    ));
}

#[test]
fn rmi_by_id_with_names_in_one_repository_removes_them_all() {
    let r = root();
    let (a, _b) = two_images(&r);
    let mut ix = r.store.index().unwrap();
    r.ops.tag(&mut ix, "one", "one:v2").unwrap();
    let items = r.ops.rmi(&mut ix, &a.id().to_string(), false).unwrap();
    assert_eq!(items[0], untagged("one:latest"));
    assert_eq!(items[1], untagged("one:v2"));
    assert_eq!(items[2], DeleteItem::Deleted(a.id().clone()));
}

#[test]
fn prune_dangling_then_all() {
    let r = root();
    let (a, b) = two_images(&r);
    let c = image(&r, &[layer_tar(&[("c", b"c")])], vec![], &["three"]);
    let mut ix = r.store.index().unwrap();
    // a: dangling and unused; b: dangling but used; c: tagged and unused.
    r.ops.untag(&mut ix, "one").unwrap();
    r.ops.untag(&mut ix, "two").unwrap();
    ix.add_user("container:x", b.id()).unwrap();

    let before = store_du(&r.path);
    let p = r.ops.prune(&mut ix, false).unwrap();
    assert_eq!(
        p.deleted,
        vec![
            DeleteItem::Deleted(a.id().clone()),
            DeleteItem::Deleted(a.record.layers[1].clone()),
        ]
    );
    assert_eq!(p.space_reclaimed, before - store_du(&r.path));
    assert!(p.space_reclaimed > 0);

    let p = r.ops.prune(&mut ix, true).unwrap();
    assert_eq!(
        p.deleted,
        vec![
            untagged("three:latest"),
            DeleteItem::Deleted(c.id().clone()),
            DeleteItem::Deleted(c.record.layers[0].clone()),
        ]
    );
    assert!(ix.image(b.id()).unwrap().is_some());
    assert!(r.ops.prune(&mut ix, true).unwrap().deleted.is_empty());
}

/// What the stores hold on disk (not the database, whose WAL grows with every change).
fn store_du(root: &Path) -> u64 {
    ["blobs/sha256", "layers", "tmp"]
        .iter()
        .map(|d| du(&root.join(d)))
        .sum()
}

/// `du -sB1` with every inode once, for the size checks.
fn du(p: &Path) -> u64 {
    let mut seen = HashSet::new();
    du_into(p, &mut seen)
}

fn du_into(p: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
    let Ok(m) = fs::symlink_metadata(p) else {
        return 0;
    };
    let mut n = 0;
    if seen.insert((m.dev(), m.ino())) {
        n += m.blocks() * 512;
    }
    if m.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            n += du_into(&e.unwrap().path(), seen);
        }
    }
    n
}

#[test]
fn gc_and_check_repair_a_crashed_store() {
    let r = root();
    let (a, b) = two_images(&r);
    let c = image(&r, &[layer_tar(&[("c", b"c")])], vec![], &["three"]);
    let d = image(&r, &[layer_tar(&[("d", b"d")])], vec![], &["four"]);
    let content = r.ops.content();
    let layers = r.ops.layer_store();

    // Files without index rows: a blob and an unpacked layer nothing names.
    let orphan_blob = content.ingest_bytes(b"orphan", None).unwrap().digest;
    let orphan_layer = layers
        .apply(None, &layer_tar(&[("x", b"x")])[..], &Default::default())
        .unwrap()
        .chain_id;
    // A blob whose content does not match its name.
    let liar = berth_image::content::sha256_digest(b"truth");
    fs::write(r.path.join("blobs/sha256").join(liar.hex()), b"lies").unwrap();
    // A stray file, an incomplete layer dir, a half-written ingest, the trash of a removal.
    fs::write(r.path.join("blobs/sha256/junk"), b"?").unwrap();
    let incomplete = berth_image::content::sha256_digest(b"incomplete");
    fs::create_dir_all(r.path.join("layers").join(incomplete.hex())).unwrap();
    fs::write(r.path.join("tmp/ingest-abc123"), b"half a blo").unwrap();
    let trash = r.path.join("tmp/remove-0123");
    fs::create_dir_all(trash.join("diff/etc")).unwrap();
    fs::write(trash.join("diff/etc/x"), b"x").unwrap();
    // Index rows without files: b's config blob; c's layer and its blob (cannot be re-made);
    // d's layer only (re-made from its blob); a layer row nothing uses and nothing backs.
    content.delete(b.id()).unwrap();
    let c_layer = c.record.layers[0].clone();
    fs::remove_dir_all(r.path.join("layers").join(c_layer.hex())).unwrap();
    content.delete(&c.manifest.layers[0].digest).unwrap();
    let d_layer = d.record.layers[0].clone();
    fs::remove_dir_all(r.path.join("layers").join(d_layer.hex())).unwrap();
    let ghost = berth_image::content::sha256_digest(b"ghost");
    let mut ix = r.store.index().unwrap();
    ix.add_layer(&LayerRecord {
        chain_id: ghost.clone(),
        diff_id: ghost.clone(),
        parent: None,
        size: 1,
    })
    .unwrap();

    // With the default grace, fresh garbage is left alone (it may be an ingest in progress).
    // (A layer row whose directory is missing is not young: it goes at once.)
    let g = r.ops.gc(&mut ix, &GcOptions::default()).unwrap();
    assert_eq!(g.layer_rows_removed, vec![ghost.clone()], "{g:?}");
    assert!(
        g.layers_removed.is_empty() && g.blobs_removed.is_empty(),
        "{g:?}"
    );
    assert!(
        g.strays_removed.is_empty() && g.tmp_removed.is_empty(),
        "{g:?}"
    );
    assert!(g.kept_young.contains(&r.path.join("tmp/ingest-abc123")));
    assert!(content.exists(&orphan_blob));

    let rep = r.ops.check(&mut ix, &exclusive()).unwrap();
    let text = rep.to_string();
    assert_eq!(rep.corrupt_blobs, vec![liar.clone()], "{text}");
    assert_eq!(rep.incomplete_layers, vec![incomplete.clone()], "{text}");
    let mut missing = vec![c_layer.clone(), d_layer.clone()];
    missing.sort();
    assert_eq!(rep.missing_layers, missing, "{text}");
    assert_eq!(rep.reunpacked_layers, vec![d_layer.clone()], "{text}");
    let broken: Vec<&Digest> = rep.newly_broken.iter().map(|(d, _)| d).collect();
    let mut want = vec![b.id(), c.id()];
    want.sort();
    assert_eq!(broken, want, "{text}");
    assert!(text.contains("config blob"), "{text}");
    assert!(rep.gc.layer_rows_removed.is_empty(), "{text}");
    assert!(ix.layer(&ghost).unwrap().is_none());
    assert_eq!(rep.gc.layers_removed, vec![orphan_layer.clone()], "{text}");
    assert_eq!(rep.gc.blobs_removed, vec![orphan_blob.clone()], "{text}");
    assert_eq!(
        rep.gc.strays_removed,
        vec![r.path.join("blobs/sha256/junk")],
        "{text}"
    );
    assert_eq!(
        rep.gc.tmp_removed,
        vec![r.path.join("tmp/ingest-abc123"), trash.clone()],
        "{text}"
    );
    assert!(dir_names(&r.path.join("tmp")).is_empty());
    assert!(layers.exists(&d_layer));
    assert!(fs::read(layers.diff_dir(&d_layer).join("d")).unwrap() == b"d");

    // The intact image is whole; the broken ones are marked, not removed.
    for blob in blobs_of(&a) {
        assert!(content.exists(&blob));
    }
    for l in &a.record.layers {
        assert!(layers.exists(l));
    }
    assert_eq!(ix.broken_images().unwrap().len(), 2);
    assert!(ix.resolve("two").is_ok());

    // A second run finds nothing new.
    let rep2 = r.ops.check(&mut ix, &exclusive()).unwrap();
    assert!(rep2.found_nothing(), "{rep2}");
    assert_eq!(rep2.still_broken.len(), 2);

    // Broken images can be removed, and the store ends empty.
    for name in ["one", "two", "three", "four"] {
        r.ops.rmi(&mut ix, name, false).unwrap();
    }
    let g = r.ops.gc(&mut ix, &GcOptions::exclusive()).unwrap();
    assert!(g.removed_nothing(), "{g:?}");
    assert!(dir_names(&r.path.join("blobs/sha256")).is_empty());
    assert!(dir_names(&r.path.join("layers")).is_empty());
    assert!(ix.broken_images().unwrap().is_empty());
}

fn exclusive() -> CheckOptions {
    CheckOptions {
        verify_blobs: true,
        gc: GcOptions::exclusive(),
    }
}

#[test]
fn gc_finishes_a_removal_interrupted_between_index_and_files() {
    let r = root();
    let (a, _b) = two_images(&r);
    let mut ix = r.store.index().unwrap();
    // The index half of an rmi, then a "crash" before any file went.
    let removed = ix.remove_image(a.id(), false).unwrap();
    assert_eq!(removed.unused_layers, vec![a.record.layers[1].clone()]);
    let g = r.ops.gc(&mut ix, &GcOptions::exclusive()).unwrap();
    assert_eq!(g.layer_rows_removed, vec![a.record.layers[1].clone()]);
    assert_eq!(g.layers_removed, vec![a.record.layers[1].clone()]);
    let mut want: Vec<Digest> = vec![
        a.id().clone(),
        a.manifest_digest().unwrap().clone(),
        a.manifest.layers[1].digest.clone(),
    ];
    want.sort();
    assert_eq!(g.blobs_removed, want);
    assert!(g.bytes_freed > 0);
    let g = r.ops.gc(&mut ix, &GcOptions::exclusive()).unwrap();
    assert!(g.removed_nothing(), "{g:?}");
}

#[test]
fn df_counts_shared_content_once() {
    let r = root();
    let mut base = TarBuilder::new();
    base.dir("bin/")
        .file("bin/tool", &[1u8; 10_000])
        .hardlink("bin/tool2", "bin/tool");
    let base = base.finish();
    let a = image(
        &r,
        &[base.clone(), layer_tar(&[("a", &[2u8; 3000])])],
        vec![],
        &["one"],
    );
    let b = image(
        &r,
        &[base, layer_tar(&[("b", &[3u8; 6000])])],
        vec![],
        &["two"],
    );
    let mut ix = r.store.index().unwrap();
    ix.add_user("container:c1", a.id()).unwrap();
    for (id, bytes) in [("c1", 5000usize), ("c2", 7000)] {
        let upper = r.path.join("containers").join(id).join("upper");
        fs::create_dir_all(&upper).unwrap();
        fs::write(upper.join("f"), vec![0u8; bytes]).unwrap();
    }
    let df = r.ops.df(&ix, &["c1".to_string()]).unwrap();

    let layer = |c: &Digest| du(&r.path.join("layers").join(c.hex()));
    let blob = |d: &Digest| du(&r.path.join("blobs/sha256").join(d.hex()));
    let base_l = layer(&a.record.layers[0]);
    // The hardlinked file counts once.
    let tool = r
        .path
        .join("layers")
        .join(a.record.layers[0].hex())
        .join("diff/bin/tool");
    let m = fs::metadata(&tool).unwrap();
    assert_eq!(m.nlink(), 2);
    let naive: u64 = walk_blocks(&r.path.join("layers").join(a.record.layers[0].hex()));
    assert_eq!(base_l, naive - m.blocks() * 512);
    let shared: u64 = base_l + blob(&a.manifest.layers[0].digest);
    let only_a: u64 = layer(&a.record.layers[1])
        + [
            a.id(),
            a.manifest_digest().unwrap(),
            &a.manifest.layers[1].digest,
        ]
        .iter()
        .map(|d| blob(d))
        .sum::<u64>();
    let only_b: u64 = layer(&b.record.layers[1])
        + [
            b.id(),
            b.manifest_digest().unwrap(),
            &b.manifest.layers[1].digest,
        ]
        .iter()
        .map(|d| blob(d))
        .sum::<u64>();

    let imgs = &df.rows[0];
    assert_eq!((imgs.kind, imgs.total, imgs.active), ("Images", 2, 1));
    assert_eq!(imgs.size, shared + only_a + only_b);
    assert_eq!(imgs.reclaimable, only_b);
    let ia = df.images.iter().find(|i| i.id == *a.id()).unwrap();
    assert_eq!(
        (ia.size, ia.shared_size, ia.unique_size, ia.containers),
        (shared + only_a, shared, only_a, 1)
    );
    assert_eq!(ia.tags, vec!["one:latest".to_string()]);
    let ctr = &df.rows[1];
    let c1 = du(&r.path.join("containers/c1/upper"));
    let c2 = du(&r.path.join("containers/c2/upper"));
    assert_eq!(
        (ctr.kind, ctr.total, ctr.active, ctr.size, ctr.reclaimable),
        ("Containers", 2, 1, c1 + c2, c2)
    );
    assert_eq!(df.containers[0].image.as_ref(), Some(a.id()));
    assert_eq!(df.rows[2].kind, "Local Volumes");
    assert_eq!(df.rows[3].kind, "Build Cache");
    assert_eq!(
        df.layers_size,
        du(&r.path.join("layers")) - du_dir_only(&r.path.join("layers"))
    );
    assert_eq!(df.unreferenced_size, 0);
    let table = df.table();
    assert!(table.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"));
    assert!(
        table.contains("Build Cache     0         0         0B        0B\n"),
        "{table}"
    );
}

/// Blocks of every entry of a tree, hardlinks counted each time.
fn walk_blocks(p: &Path) -> u64 {
    let m = fs::symlink_metadata(p).unwrap();
    let mut n = m.blocks() * 512;
    if m.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            n += walk_blocks(&e.unwrap().path());
        }
    }
    n
}

fn du_dir_only(p: &Path) -> u64 {
    fs::symlink_metadata(p).unwrap().blocks() * 512
}

#[test]
fn history_newest_first_with_layer_sizes() {
    let r = root();
    let h = |by: &str, empty: bool| History {
        created: Some("2024-01-01T00:00:00Z".into()),
        created_by: Some(by.into()),
        comment: None,
        author: None,
        empty_layer: empty,
    };
    let img = image(
        &r,
        &[base_tar(), layer_tar(&[("app", &[9u8; 1234])])],
        vec![
            h("ADD rootfs.tar /", false),
            h("ENV A=1", true),
            h("COPY app /app", false),
            h("CMD [\"sh\"]", true),
        ],
        &["app:1"],
    );
    let ix = r.store.index().unwrap();
    let hist = r.ops.history(&ix, "app:1").unwrap();
    let by: Vec<&str> = hist.iter().map(|e| e.created_by.as_str()).collect();
    assert_eq!(
        by,
        vec![
            "CMD [\"sh\"]",
            "COPY app /app",
            "ENV A=1",
            "ADD rootfs.tar /"
        ]
    );
    assert_eq!(hist[0].id.as_ref(), Some(img.id()));
    assert_eq!(hist[0].image_column(), img.id().short());
    assert_eq!(hist[0].tags, vec!["app:1".to_string()]);
    for e in &hist[1..] {
        assert_eq!(e.image_column(), "<missing>");
    }
    let sizes: Vec<u64> = hist.iter().map(|e| e.size).collect();
    let base_size = ix.layer(&img.record.layers[0]).unwrap().unwrap().size;
    assert_eq!(sizes, vec![0, 1234, 0, base_size]);
    assert_eq!(base_size, 8 + 5000);
    assert_eq!(hist[3].created_unix, Some(1_704_067_200));
}

/// Unmounts a snapshot even when the test fails.
struct Unmount(berth_image::Snapshotter, berth_types::ContainerId);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = self.0.unmount(&self.1, true);
    }
}

#[test]
fn docker_diff_of_a_real_overlay() {
    if skip_unless_root("docker_diff_of_a_real_overlay") {
        return;
    }
    let r = root();
    let mut base = TarBuilder::new();
    base.dir("etc/")
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
        .file("etc/motd", b"hello\n")
        .dir("usr/")
        .dir("usr/share/")
        .dir("usr/share/doc/")
        .file("usr/share/doc/README", b"docs")
        .file("usr/share/keep", b"k")
        .dir("var/")
        .dir("var/lib/")
        .file("var/lib/a", b"a")
        .file("var/lib/b", b"b");
    let mut top = TarBuilder::new();
    top.dir("etc/").file("etc/motd", b"hello from the top\n");
    let img = image(&r, &[base.finish(), top.finish()], vec![], &["diffme"]);
    let snaps = berth_image::Snapshotter::open(&r.path).unwrap();
    let id = berth_types::ContainerId::new("c1").unwrap();
    let _guard = Unmount(snaps.clone(), id.clone());
    let lowers = r.store.lower_dirs(&img);
    let (p, _) = snaps.prepare(&id, &lowers).unwrap();
    let m = |s: &str| p.rootfs.join(s);

    fs::write(
        m("etc/passwd"),
        b"root:x:0:0::/root:/bin/sh\nu:x:1:1::/:/bin/sh\n",
    )
    .unwrap();
    fs::remove_file(m("etc/motd")).unwrap();
    fs::write(m("etc/new"), b"new").unwrap();
    fs::remove_dir_all(m("usr/share/doc")).unwrap();
    fs::remove_dir_all(m("var/lib")).unwrap();
    fs::create_dir(m("var/lib")).unwrap();
    fs::write(m("var/lib/c"), b"c").unwrap();
    fs::create_dir_all(m("home/user")).unwrap();
    fs::write(m("home/user/f"), b"f").unwrap();
    snaps.unmount(&id, false).unwrap();

    let got: Vec<String> = berth_image::changes::changes(&p.upper, &lowers)
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(
        got,
        vec![
            "C /etc",
            "D /etc/motd",
            "A /etc/new",
            "C /etc/passwd",
            "A /home",
            "A /home/user",
            "A /home/user/f",
            "C /usr/share",
            "D /usr/share/doc",
            "C /var",
            "C /var/lib",
            "A /var/lib/c",
        ]
    );
}

#[test]
fn gc_leaves_an_ingest_in_progress_alone() {
    use std::io::Read;
    use std::sync::mpsc;
    use std::time::Duration;

    /// Hands out one chunk per message, so the test decides when the ingest moves on.
    struct Stepped(mpsc::Receiver<Vec<u8>>);
    impl Read for Stepped {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.recv() {
                Ok(chunk) => {
                    let n = chunk.len().min(buf.len());
                    buf[..n].copy_from_slice(&chunk[..n]);
                    Ok(n)
                }
                Err(_) => Ok(0),
            }
        }
    }

    let r = root();
    let (tx, rx) = mpsc::channel();
    let content = r.ops.content().clone();
    let ingest = std::thread::spawn(move || content.ingest(Stepped(rx), None, None));
    tx.send(vec![1u8; 1000]).unwrap();
    // Wait until the partial blob is in tmp/.
    for _ in 0..500 {
        if !dir_names(&r.path.join("tmp")).is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(dir_names(&r.path.join("tmp")).len(), 1);
    {
        let mut ix = r.store.index().unwrap();
        let g = r.ops.gc(&mut ix, &GcOptions::default()).unwrap();
        assert!(g.removed_nothing(), "{g:?}");
        assert_eq!(g.kept_young.len(), 1);
    }
    tx.send(vec![2u8; 1000]).unwrap();
    drop(tx);
    let info = ingest.join().unwrap().unwrap();
    assert_eq!(info.size, 2000);
    assert!(r.ops.content().exists(&info.digest));
    // Once stored and still named by nothing, it is garbage for an exclusive run.
    let mut ix = r.store.index().unwrap();
    let g = r.ops.gc(&mut ix, &GcOptions::exclusive()).unwrap();
    assert_eq!(g.blobs_removed, vec![info.digest]);
}

#[test]
fn broken_marks_go_with_their_image() {
    let r = root();
    let (a, b) = two_images(&r);
    let mut ix = r.store.index().unwrap();
    assert!(ix.schema_version().unwrap() >= 2);
    ix.mark_broken(a.id(), "config blob missing").unwrap();
    ix.mark_broken(a.id(), "layer missing").unwrap();
    assert_eq!(
        ix.broken_images().unwrap(),
        vec![(a.id().clone(), "layer missing".to_string())]
    );
    let base = a.record.layers[0].clone();
    let mut children = ix.layer_children(&base).unwrap();
    children.sort();
    let mut want = vec![a.record.layers[1].clone(), b.record.layers[1].clone()];
    want.sort();
    assert_eq!(children, want);
    assert_eq!(ix.all_layers().unwrap().len(), 3);
    r.ops.rmi(&mut ix, "one", false).unwrap();
    assert!(ix.broken_images().unwrap().is_empty());
    assert!(matches!(
        ix.mark_broken(a.id(), "x"),
        Err(IndexError::NotFound(_))
    ));
}
