//! Executor: COPY and ADD semantics.

mod exec_support;

use std::io::Write;

use exec_support::*;

fn paths(be: &TestBackend, id: &str) -> Vec<String> {
    be.layer(id).iter().map(|e| e.path.clone()).collect()
}

#[test]
fn globs_match_per_component_and_sort() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[
        ("a.txt", "a"),
        ("b.txt", "b"),
        ("c.md", "c"),
        (".hidden.txt", "h"),
        ("dir/x.txt", "x"),
        ("dir/sub/y.txt", "y"),
    ]);
    let id = build(&mut be, &ctx, "FROM base\nCOPY *.txt /out/\n").id();
    assert_eq!(
        paths(&be, &id),
        vec!["out", "out/.hidden.txt", "out/a.txt", "out/b.txt"]
    );
    let id = build(&mut be, &ctx, "FROM base\nCOPY d?r/*.txt [a-b].txt /g/\n").id();
    assert_eq!(paths(&be, &id), vec!["g", "g/x.txt", "g/a.txt", "g/b.txt"]);
    let o = build(&mut be, &ctx, "FROM base\nCOPY *.none /x/\n");
    assert!(o.err().to_string().contains("*.none"), "{}", o.err());
}

#[test]
fn a_directory_copies_its_contents() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[("dir/x.txt", "x"), ("dir/sub/y.txt", "y")]);
    let id = build(&mut be, &ctx, "FROM base\nCOPY dir /dst\n").id();
    assert_eq!(be.read(&id, "/dst/x.txt").as_deref(), Some("x"));
    assert_eq!(be.read(&id, "/dst/sub/y.txt").as_deref(), Some("y"));
    assert!(!be.image_dir(&id).join("dst/dir").exists());
    // Into an existing directory: the directory keeps its metadata, no new root entry.
    let id = build(&mut be, &ctx, "FROM base\nCOPY dir /tmp\n").id();
    assert_eq!(be.read(&id, "/tmp/sub/y.txt").as_deref(), Some("y"));
}

#[test]
fn destination_rules() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[("f", "F"), ("g", "G")]);
    // A file to a new name.
    let id = build(&mut be, &ctx, "FROM base\nCOPY f /renamed\n").id();
    assert_eq!(be.read(&id, "/renamed").as_deref(), Some("F"));
    // Trailing slash: into a (new) directory.
    let id = build(&mut be, &ctx, "FROM base\nCOPY f /newdir/\n").id();
    assert_eq!(be.read(&id, "/newdir/f").as_deref(), Some("F"));
    // An existing directory without the slash: into it.
    let id = build(&mut be, &ctx, "FROM base\nCOPY f /tmp\n").id();
    assert_eq!(be.read(&id, "/tmp/f").as_deref(), Some("F"));
    // Relative to WORKDIR, missing parents created 0755.
    let id = build(
        &mut be,
        &ctx,
        "FROM base\nWORKDIR /w\nCOPY f a/b/\nCOPY g .\n",
    )
    .id();
    assert_eq!(be.read(&id, "/w/a/b/f").as_deref(), Some("F"));
    assert_eq!(be.read(&id, "/w/g").as_deref(), Some("G"));
    let parent = be.images[&id].parent.clone().unwrap();
    let layer = be.layer(&parent);
    let a = layer.iter().find(|e| e.path == "w/a").unwrap();
    assert_eq!((a.kind, a.mode, a.uid), ('d', 0o755, 0));
    // Several sources need a directory ending in /.
    let o = build(&mut be, &ctx, "FROM base\nCOPY f g /tmp\n");
    assert_eq!(
        o.err().to_string(),
        "When using COPY with more than one source file, the destination must be a directory and end with a /"
    );
    assert_eq!(o.err().line(), Some(2));
}

#[test]
fn chown_by_name_and_number_and_chmod() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[("f", "F"), ("d/x", "X")]);
    ctx.chmod("f", 0o640);
    let id = build(&mut be, &ctx, "FROM base\nCOPY --chown=app:staff f d /o/\n").id();
    let layer = be.layer(&id);
    let f = layer.iter().find(|e| e.path == "o/f").unwrap();
    assert_eq!((f.uid, f.gid, f.mode), (1000, 50, 0o640));
    let x = layer.iter().find(|e| e.path == "o/x").unwrap();
    assert_eq!((x.uid, x.gid), (1000, 50));
    // The new /o directory belongs to the chown user too.
    let o = layer.iter().find(|e| e.path == "o").unwrap();
    assert_eq!((o.uid, o.gid), (1000, 50));
    // Existing parents keep their owner.
    let id = build(
        &mut be,
        &ctx,
        "FROM base\nCOPY --chown=33 --chmod=755 f /tmp/\n",
    )
    .id();
    let layer = be.layer(&id);
    let f = layer.iter().find(|e| e.path == "tmp/f").unwrap();
    assert_eq!((f.uid, f.gid, f.mode), (33, 33, 0o755));
    let tmp = layer.iter().find(|e| e.path == "tmp").unwrap();
    assert_eq!(tmp.uid, 0);
    // Without --chown: root.
    let id = build(&mut be, &ctx, "FROM base\nCOPY f /x\n").id();
    assert_eq!(be.layer(&id).last().unwrap().uid, 0);
    let o = build(&mut be, &ctx, "FROM base\nCOPY --chown=nobody f /x\n");
    assert!(o.err().to_string().contains("nobody"));
    let o = build(&mut be, &ctx, "FROM base\nCOPY --chmod=999 f /x\n");
    assert!(o.err().to_string().contains("chmod"));
}

#[test]
fn escapes_are_refused() {
    let mut be = backend_with_base();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "s").unwrap();
    let ctx = Ctx::new(&[("ok", "")]);
    std::os::unix::fs::symlink(outside.path().join("secret"), ctx.path().join("abs-link")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../../../../etc/passwd",
        ctx.path().join("rel-link"),
    )
    .unwrap();
    let o = build(&mut be, &ctx, "FROM base\nCOPY ../x /x\n");
    assert!(
        o.err()
            .to_string()
            .contains("forbidden path outside the build context: ../x"),
        "{}",
        o.err()
    );
    let o = build(&mut be, &ctx, "FROM base\nCOPY rel-link /x\n");
    assert!(o
        .err()
        .to_string()
        .contains("forbidden path outside the build context"));
    // An absolute link is resolved inside the context: it names nothing there.
    let o = build(&mut be, &ctx, "FROM base\nCOPY abs-link /x\n");
    assert!(
        o.err().to_string().contains("file not found"),
        "{}",
        o.err()
    );
    // Inside a copied directory, symlinks are copied as symlinks (not followed).
    let id = build(&mut be, &ctx, "FROM base\nCOPY . /c/\n").id();
    let l = be
        .layer(&id)
        .into_iter()
        .find(|e| e.path == "c/abs-link")
        .unwrap();
    assert_eq!(l.kind, 'l');
}

#[test]
fn a_symlink_source_inside_the_context_is_followed() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[("real/data.txt", "D")]);
    std::os::unix::fs::symlink("real/data.txt", ctx.path().join("link.txt")).unwrap();
    let id = build(&mut be, &ctx, "FROM base\nCOPY link.txt /\n").id();
    assert_eq!(be.read(&id, "/link.txt").as_deref(), Some("D"));
}

#[test]
fn dockerignore_excludes_sources() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[
        ("keep.txt", "k"),
        ("secret.env", "s"),
        ("logs/a.log", "l"),
        ("logs/keep.log", "kl"),
    ]);
    let ign = vec![
        "*.env".to_string(),
        "logs".to_string(),
        "!logs/keep.log".to_string(),
    ];
    let id = build_with(&mut be, &ctx, "FROM base\nCOPY . /app/\n", |o| {
        o.ignore = ign.clone()
    })
    .id();
    let mut p = paths(&be, &id);
    p.sort();
    assert_eq!(
        p,
        vec!["app", "app/keep.txt", "app/logs", "app/logs/keep.log"]
    );
    let o = build_with(&mut be, &ctx, "FROM base\nCOPY secret.env /\n", |o| {
        o.ignore = ign.clone()
    });
    assert!(o.err().to_string().contains("excluded by .dockerignore"));
}

#[test]
fn from_a_stage_or_an_image() {
    let mut be = backend_with_base();
    be.add_image("tools", &[("usr/bin/tool", "T")], Default::default());
    let ctx = Ctx::new(&[("src", "S")]);
    let df = "FROM base AS build\nCOPY src /out/bin\nFROM scratch\nCOPY --from=build /out/bin /bin/app\nCOPY --from=tools /usr/bin/tool /bin/\n";
    let id = build(&mut be, &ctx, df).id();
    assert_eq!(be.read(&id, "/bin/app").as_deref(), Some("S"));
    assert_eq!(be.read(&id, "/bin/tool").as_deref(), Some("T"));
    // Not in the stage: Docker's stat error.
    let o = build(
        &mut be,
        &ctx,
        "FROM base AS a\nFROM scratch\nCOPY --from=a /nope /x\n",
    );
    assert!(o.err().to_string().contains("/nope") || o.err().to_string().contains("nope"));
}

#[test]
fn exclude_and_parents_flags() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[("a/x.txt", "x"), ("a/y.md", "y"), ("b/c/z.txt", "z")]);
    let id = build(&mut be, &ctx, "FROM base\nCOPY --exclude=*.md a /e/\n").id();
    assert!(be.read(&id, "/e/x.txt").is_some());
    assert!(be.read(&id, "/e/y.md").is_none());
    let id = build(
        &mut be,
        &ctx,
        "FROM base\nCOPY --parents a/x.txt b/c/z.txt /p/\n",
    )
    .id();
    assert_eq!(be.read(&id, "/p/a/x.txt").as_deref(), Some("x"));
    assert_eq!(be.read(&id, "/p/b/c/z.txt").as_deref(), Some("z"));
}

#[test]
fn copy_heredoc() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    let df = "FROM base\nARG NAME=world\nCOPY <<EOF /greeting\nhello $NAME \"quoted\"\nEOF\nCOPY <<'RAW' /etc/\nliteral $NAME\nRAW\n";
    let id = build(&mut be, &ctx, df).id();
    assert_eq!(
        be.read(&id, "/greeting").as_deref(),
        Some("hello world \"quoted\"\n")
    );
    assert_eq!(be.read(&id, "/etc/RAW").as_deref(), Some("literal $NAME\n"));
    let parent = be.images[&id].parent.clone().unwrap();
    let g = be
        .layer(&parent)
        .into_iter()
        .find(|e| e.path == "greeting")
        .unwrap();
    assert_eq!(g.mode, 0o644);
}

fn tar_bytes(entries: &[(&str, &[u8])], raw_names: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o600);
        h.set_uid(7);
        h.set_gid(8);
        h.set_entry_type(tar::EntryType::Regular);
        if raw_names {
            // Bypass the tar crate's own path checks to write hostile names.
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, *data).unwrap();
        } else {
            b.append_data(&mut h, name, *data).unwrap();
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn add_extracts_local_archives() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    let plain = tar_bytes(&[("top/a.txt", b"A"), ("top/b.txt", b"B")], false);
    std::fs::write(ctx.path().join("x.tar"), &plain).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    std::fs::write(ctx.path().join("x.tgz"), gz.finish().unwrap()).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(&plain).unwrap();
    std::fs::write(ctx.path().join("x.tar.bz2"), bz.finish().unwrap()).unwrap();
    let mut gzt = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzt.write_all(b"just text").unwrap();
    std::fs::write(ctx.path().join("notes.gz"), gzt.finish().unwrap()).unwrap();

    for name in ["x.tar", "x.tgz", "x.tar.bz2"] {
        let id = build(&mut be, &ctx, &format!("FROM base\nADD {name} /opt\n")).id();
        assert_eq!(
            be.read(&id, "/opt/top/a.txt").as_deref(),
            Some("A"),
            "{name}"
        );
        let e = be
            .layer(&id)
            .into_iter()
            .find(|e| e.path == "opt/top/b.txt")
            .unwrap();
        assert_eq!((e.uid, e.gid, e.mode), (7, 8, 0o600));
    }
    // COPY never extracts; a compressed non-tar is copied as is.
    let id = build(&mut be, &ctx, "FROM base\nCOPY x.tar /opt/\n").id();
    assert!(be.image_dir(&id).join("opt/x.tar").is_file());
    let id = build(&mut be, &ctx, "FROM base\nADD notes.gz /opt/\n").id();
    assert!(be.image_dir(&id).join("opt/notes.gz").is_file());
    // --chown applies to the extracted entries.
    let id = build(&mut be, &ctx, "FROM base\nADD --chown=1:2 x.tar /opt\n").id();
    let e = be
        .layer(&id)
        .into_iter()
        .find(|e| e.path == "opt/top/a.txt")
        .unwrap();
    assert_eq!((e.uid, e.gid), (1, 2));
}

#[test]
fn add_refuses_hostile_archives() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    std::fs::write(
        ctx.path().join("evil.tar"),
        tar_bytes(&[("ok.txt", b"fine"), ("../../escape.txt", b"x")], true),
    )
    .unwrap();
    let o = build(&mut be, &ctx, "FROM base\nADD evil.tar /opt/\n");
    assert!(
        o.err().to_string().contains("../../escape.txt"),
        "{}",
        o.err()
    );
    assert_eq!(o.err().line(), Some(2));
    // Absolute names stay below the destination.
    std::fs::write(
        ctx.path().join("abs.tar"),
        tar_bytes(&[("/etc/passwd", b"pwned")], true),
    )
    .unwrap();
    let id = build(&mut be, &ctx, "FROM base\nADD abs.tar /opt/\n").id();
    assert_eq!(be.read(&id, "/opt/etc/passwd").as_deref(), Some("pwned"));
    assert!(be.read(&id, "/etc/passwd").unwrap().starts_with("root:"));
    // A file below a symlink the archive planted.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "lnk", "/etc").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    b.append_data(&mut h, "lnk/passwd", &b"x"[..]).unwrap();
    std::fs::write(ctx.path().join("link.tar"), b.into_inner().unwrap()).unwrap();
    let o = build(&mut be, &ctx, "FROM base\nADD link.tar /opt/\n");
    assert!(o.err().to_string().contains("symlink"), "{}", o.err());
}

#[test]
fn add_urls_are_fetched_not_extracted() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    let plain = tar_bytes(&[("a", b"A")], false);
    be.urls
        .insert("https://example.com/files/pkg.tar".into(), plain.clone());
    let id = build(
        &mut be,
        &ctx,
        "FROM base\nADD https://example.com/files/pkg.tar /dl/\n",
    )
    .id();
    let e = be
        .layer(&id)
        .into_iter()
        .find(|e| e.path == "dl/pkg.tar")
        .unwrap();
    assert_eq!(e.mode, 0o600);
    assert_eq!(e.data, plain);
    let id = build(
        &mut be,
        &ctx,
        "FROM base\nADD https://example.com/files/pkg.tar /named\n",
    )
    .id();
    assert!(be.image_dir(&id).join("named").is_file());
    let o = build(
        &mut be,
        &ctx,
        "FROM base\nADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://example.com/files/pkg.tar /x\n",
    );
    assert!(
        o.err().to_string().contains("digest mismatch"),
        "{}",
        o.err()
    );
    let o = build(
        &mut be,
        &ctx,
        "FROM base\nADD https://example.com/missing /x\n",
    );
    assert!(o.err().to_string().contains("404"));
}

#[test]
fn directories_follow_the_parents_directory_symlinks() {
    let mut be = backend_with_base();
    let base = be.names["base"].clone();
    let dir = be.image_dir(&base);
    std::fs::create_dir_all(dir.join("usr/lib")).unwrap();
    std::os::unix::fs::symlink("usr/lib", dir.join("lib")).unwrap();
    let ctx = Ctx::new(&[("root/lib/libx.so", "x"), ("root/etc/x.conf", "c")]);
    let id = build(&mut be, &ctx, "FROM base\nCOPY root/ /\n").id();
    let layer = be.layer(&id);
    assert!(!layer.iter().any(|e| e.path == "lib"), "{layer:?}");
    assert!(layer.iter().any(|e| e.path == "usr/lib/libx.so"));
    assert!(be.image_dir(&id).join("lib").is_symlink());
    assert_eq!(be.read(&id, "/lib/libx.so").as_deref(), Some("x"));
}

#[test]
fn json_form_keeps_spaces() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[("my file.txt", "s")]);
    let id = build(
        &mut be,
        &ctx,
        "FROM base\nCOPY [\"my file.txt\", \"/dst dir/\"]\nVOLUME [\"/data dir\"]\n",
    )
    .id();
    assert_eq!(be.read(&id, "/dst dir/my file.txt").as_deref(), Some("s"));
    let vols = be.config(&id).volumes.unwrap();
    assert!(vols.contains_key("/data dir"), "{vols:?}");
}
