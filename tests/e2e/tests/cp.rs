//! `docker cp` and `berth cp` against berthd: round trips that keep content, modes (setuid,
//! 0600), numeric owners and symlinks; `/.` sources; created, running and exited containers;
//! bind mounts reached at their host source; read-only refusals; Docker's errors for missing
//! paths; and the two host-escape CVEs of Docker's cp as regression tests — symlinks planted in
//! the container (CVE-2018-15664's shape) and hostile archives never lead a copy outside the
//! container, checked against canary directories on the host.
//!
//! Each test has its own berthd and temporary directories, so they run in parallel.

#[path = "common/berthd.rs"]
mod berthd;
mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use berthd::Berthd;
use common::{run_cmd, Out};

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// berth's own CLI: $BERTH_CLI, else target/release/berth.
fn berth_cli() -> PathBuf {
    std::env::var_os("BERTH_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::workspace().join("target/release/berth"))
}

fn berth(d: &Berthd, args: &[&str]) -> Result<Out> {
    run_cmd(
        Command::new(berth_cli())
            .args(["-H", &format!("unix://{}", d.sock().display())])
            .args(args),
        None,
        Duration::from_secs(60),
    )
}

/// A host tree with the shapes a copy must keep: 0600 and setuid files, a numeric owner that
/// exists nowhere, a relative symlink, a nested directory.
fn make_tree(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir.join("sub"))?;
    std::fs::write(dir.join("secret"), "s3cret\n")?;
    std::fs::set_permissions(dir.join("secret"), std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(dir.join("suid"), "#!/bin/sh\n")?;
    std::os::unix::fs::chown(dir.join("suid"), Some(0), Some(0))?;
    std::fs::set_permissions(dir.join("suid"), std::fs::Permissions::from_mode(0o4755))?;
    std::fs::write(dir.join("owned"), "mine\n")?;
    std::os::unix::fs::chown(dir.join("owned"), Some(1234), Some(5678))?;
    std::os::unix::fs::symlink("secret", dir.join("link"))?;
    std::fs::write(dir.join("sub/deep.txt"), "deep\n")?;
    Ok(())
}

/// Checks a copy of [`make_tree`] on the host (owners only when `owners`).
fn check_tree(dir: &Path, owners: bool) -> Result<()> {
    let mode = |p: &str| -> Result<u32> {
        Ok(std::fs::symlink_metadata(dir.join(p))
            .with_context(|| format!("{p} in {}", dir.display()))?
            .mode()
            & 0o7777)
    };
    ensure!(std::fs::read_to_string(dir.join("secret"))? == "s3cret\n");
    ensure!(
        mode("secret")? == 0o600,
        "secret mode {:o}",
        mode("secret")?
    );
    ensure!(mode("suid")? == 0o4755, "suid mode {:o}", mode("suid")?);
    ensure!(std::fs::read_link(dir.join("link"))? == Path::new("secret"));
    ensure!(std::fs::read_to_string(dir.join("sub/deep.txt"))? == "deep\n");
    if owners {
        let m = std::fs::metadata(dir.join("owned"))?;
        ensure!(
            (m.uid(), m.gid()) == (1234, 5678),
            "owner {}:{}",
            m.uid(),
            m.gid()
        );
    }
    Ok(())
}

/// `stat` of paths inside a running container: "MODE UID:GID TYPE".
fn stat_in(d: &Berthd, c: &str, p: &str) -> Result<String> {
    d.docker_ok(&["exec", c, "stat", "-c", "%a %u:%g %F", p])
}

#[test]
fn docker_cp_round_trips_keep_modes_owners_and_symlinks() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let t = tempfile::tempdir()?;
    let src = t.path().join("src");
    make_tree(&src)?;
    // Created, never started: the rootfs is mounted for the copy only.
    d.docker_ok(&["create", "--name", "cc", "busybox", "sleep", "300"])?;
    d.docker_ok(&["cp", &s(&src), "cc:/dst"])?;
    d.docker_ok(&["exec", "cc", "true"])
        .err()
        .context("not running yet")?;
    d.docker_ok(&["start", "cc"])?;
    ensure!(stat_in(&d, "cc", "/dst/secret")? == "600 0:0 regular file");
    ensure!(stat_in(&d, "cc", "/dst/suid")? == "4755 0:0 regular file");
    // Docker keeps the archive's numeric owners (the host's) by default.
    ensure!(stat_in(&d, "cc", "/dst/owned")? == "644 1234:5678 regular file");
    ensure!(d.docker_ok(&["exec", "cc", "readlink", "/dst/link"])? == "secret");
    // A directory into an existing directory nests; `/.` copies the contents.
    d.docker_ok(&["exec", "cc", "mkdir", "/into"])?;
    d.docker_ok(&["cp", &s(&src), "cc:/into"])?;
    d.docker_ok(&["exec", "cc", "test", "-f", "/into/src/sub/deep.txt"])?;
    d.docker_ok(&["exec", "cc", "mkdir", "/flat"])?;
    d.docker_ok(&["cp", &format!("{}/.", s(&src)), "cc:/flat"])?;
    d.docker_ok(&["exec", "cc", "test", "-f", "/flat/sub/deep.txt"])?;
    // A file onto a directory goes inside.
    d.docker_ok(&["cp", &s(&src.join("secret")), "cc:/flat/sub"])?;
    d.docker_ok(&["exec", "cc", "test", "-f", "/flat/sub/secret"])?;

    // Back to the host, from the running container.
    let back = t.path().join("back");
    d.docker_ok(&["cp", "cc:/dst", &s(&back)])?;
    check_tree(&back, false)?;
    let flat = t.path().join("flat");
    std::fs::create_dir(&flat)?;
    d.docker_ok(&["cp", "cc:/dst/.", &s(&flat)])?;
    check_tree(&flat, false)?;
    ensure!(!flat.join("dst").exists(), "/. must not nest");

    // Exited: the copy still works, both ways.
    d.docker_ok(&["stop", "-t", "0", "cc"])?;
    d.docker_ok(&["cp", &s(&src.join("owned")), "cc:/dst/after-exit"])?;
    let after = t.path().join("after");
    d.docker_ok(&["cp", "cc:/dst/after-exit", &s(&after)])?;
    ensure!(std::fs::read_to_string(&after)? == "mine\n");
    // Still startable: the temporary mount is gone.
    d.docker_ok(&["start", "cc"])?;
    ensure!(d.docker_ok(&["exec", "cc", "cat", "/dst/after-exit"])? == "mine");
    Ok(())
}

#[test]
fn berth_cp_archive_mode_streams_and_errors() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let t = tempfile::tempdir()?;
    let src = t.path().join("src");
    make_tree(&src)?;
    d.docker_ok(&["run", "-d", "--name", "cc", "busybox", "sleep", "300"])?;
    berth(&d, &["cp", "-a", &s(&src), "cc:/dst"])?.ok()?;
    ensure!(stat_in(&d, "cc", "/dst/owned")? == "644 1234:5678 regular file");
    ensure!(stat_in(&d, "cc", "/dst/suid")? == "4755 0:0 regular file");
    // -a out of the container keeps the numeric owners on the host too.
    let back = t.path().join("back");
    berth(&d, &["cp", "-a", "cc:/dst", &s(&back)])?.ok()?;
    check_tree(&back, true)?;
    // Without -a the host copy belongs to the caller (root).
    let plain = t.path().join("plain");
    berth(&d, &["cp", "cc:/dst/owned", &s(&plain)])?.ok()?;
    ensure!(std::fs::metadata(&plain)?.uid() == 0);
    // -L follows a symlink of the source.
    let followed = t.path().join("followed");
    berth(&d, &["cp", "-L", "cc:/dst/link", &s(&followed)])?.ok()?;
    ensure!(std::fs::read_to_string(&followed)? == "s3cret\n");
    let unfollowed = t.path().join("unfollowed");
    berth(&d, &["cp", "cc:/dst/link", &s(&unfollowed)])?.ok()?;
    ensure!(std::fs::read_link(&unfollowed)? == Path::new("secret"));
    // `-` streams the tar on stdout, the docker CLI reads it back in.
    let out = run_cmd(
        Command::new(berth_cli())
            .args(["-H", &format!("unix://{}", d.sock().display())])
            .args(["cp", "cc:/dst/sub", "-"]),
        None,
        Duration::from_secs(60),
    )?
    .ok()?;
    ensure!(out.stdout.contains("deep\n"), "tar on stdout");
    let tarfile = t.path().join("sub.tar");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} -H unix://{} cp cc:/dst/sub - > {}",
            s(&berth_cli()),
            s(&d.sock()),
            s(&tarfile)
        ))
        .status()?;
    ensure!(status.success());
    let tar = std::fs::read(&tarfile)?;
    d.docker_ok(&["exec", "cc", "mkdir", "/fromtar"])?;
    d.docker_stdin(&["cp", "-", "cc:/fromtar"], &tar)?.ok()?;
    ensure!(d.docker_ok(&["exec", "cc", "cat", "/fromtar/sub/deep.txt"])? == "deep");

    // Missing paths: Docker's message, exit 1, from both clients.
    let e = berth(&d, &["cp", "cc:/nope", &s(&t.path().join("x"))])?;
    ensure!(e.code == 1, "exit {}", e.code);
    ensure!(
        e.stderr
            .contains("Could not find the file /nope in container cc"),
        "{}",
        e.stderr
    );
    let e = d.docker(&["cp", "cc:/nope", &s(&t.path().join("x"))])?;
    ensure!(e.code == 1, "exit {}", e.code);
    ensure!(
        e.stderr
            .contains("Could not find the file /nope in container cc"),
        "{}",
        e.stderr
    );
    let e = d.docker(&["cp", &s(&src.join("secret")), "cc:/no/such/dir/x"])?;
    ensure!(e.code == 1, "exit {}", e.code);
    ensure!(e.stderr.contains("Could not find the file"), "{}", e.stderr);
    // The API's answers: HEAD 404, PUT onto a file 400.
    let (st, _) = d.http("HEAD", "/containers/cc/archive?path=/nope", b"")?;
    ensure!(st == 404, "HEAD {st}");
    let (st, body) = d.http("PUT", "/containers/cc/archive?path=/dst/secret", b"")?;
    ensure!(
        st == 400 && body.contains("extraction point is not a directory"),
        "{st} {body}"
    );
    Ok(())
}

#[test]
fn bind_mounts_are_reached_at_their_source_and_read_only_refuses() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let t = tempfile::tempdir()?;
    let host = t.path().join("data");
    let ro = t.path().join("ro");
    std::fs::create_dir_all(&host)?;
    std::fs::create_dir_all(&ro)?;
    std::fs::write(ro.join("given"), "from host\n")?;
    let file = t.path().join("f.txt");
    std::fs::write(&file, "payload\n")?;
    d.docker_ok(&[
        "create",
        "--name",
        "cc",
        "-v",
        &format!("{}:/data", s(&host)),
        "-v",
        &format!("{}:/ro:ro", s(&ro)),
        "busybox",
        "sleep",
        "300",
    ])?;
    // Stopped: the copy goes to the mount's source all the same.
    d.docker_ok(&["cp", &s(&file), "cc:/data/"])?;
    ensure!(std::fs::read_to_string(host.join("f.txt"))? == "payload\n");
    let e = d.docker(&["cp", &s(&file), "cc:/ro/"])?;
    ensure!(
        e.code != 0 && e.stderr.contains("mounted volume is marked read-only"),
        "{}",
        e.stderr
    );
    let got = t.path().join("given");
    d.docker_ok(&["cp", "cc:/ro/given", &s(&got)])?;
    ensure!(std::fs::read_to_string(&got)? == "from host\n");
    d.docker_ok(&["start", "cc"])?;
    d.docker_ok(&["cp", &s(&file), "cc:/data/again.txt"])?;
    ensure!(std::fs::read_to_string(host.join("again.txt"))? == "payload\n");
    ensure!(d.docker_ok(&["exec", "cc", "cat", "/data/again.txt"])? == "payload");

    d.docker_ok(&["create", "--name", "rr", "--read-only", "busybox", "true"])?;
    let e = d.docker(&["cp", &s(&file), "rr:/tmp/"])?;
    ensure!(
        e.code != 0 && e.stderr.contains("container rootfs is marked read-only"),
        "{}",
        e.stderr
    );
    Ok(())
}

/// The busybox image's own /etc/passwd, as the container sees it.
fn container_passwd(d: &Berthd, c: &str, t: &Path) -> Result<String> {
    let p = t.join("real-passwd");
    d.docker_ok(&["cp", &format!("{c}:/etc/passwd"), &s(&p)])?;
    Ok(std::fs::read_to_string(p)?)
}

#[test]
fn cve_2018_15664_symlinks_in_the_container_never_lead_out() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let t = tempfile::tempdir()?;
    let canary = t.path().join("canary");
    std::fs::create_dir_all(&canary)?;
    std::fs::write(canary.join("keep"), "untouched\n")?;
    // Plant the links from inside (an archive with `x -> ../../../../etc` is refused, as by
    // Docker): /evil -> /etc (the host's, read naively), /x -> ../../../../etc, /canary -> the
    // canary's absolute host path (which also exists inside, so the write has a place to land).
    // Then stop: the first rounds copy from a stopped container.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "cc",
        "busybox",
        "sh",
        "-c",
        &format!(
            "ln -s /etc /evil && ln -s ../../../../etc /x && ln -s {c} /canary && mkdir -p {c} && touch /ready && exec sleep 300",
            c = s(&canary)
        ),
    ])?;
    ensure!(
        common::wait_until(Duration::from_secs(10), || d
            .docker_ok(&["exec", "cc", "test", "-e", "/ready"])
            .is_ok()),
        "links not planted"
    );
    d.docker_ok(&["stop", "-t", "0", "cc"])?;
    let theirs = container_passwd(&d, "cc", t.path())?;
    let host_passwd = std::fs::read_to_string("/etc/passwd")?;
    ensure!(theirs != host_passwd, "test needs distinct passwd files");

    for (client, running) in [("docker", false), ("berth", false), ("docker", true)] {
        if running {
            d.docker_ok(&["start", "cc"])?;
        }
        for p in ["/evil/passwd", "/x/passwd"] {
            let out = t
                .path()
                .join(format!("out-{client}-{running}-{}", &p[1..2]));
            let args = ["cp", &format!("cc:{p}"), &s(&out)];
            if client == "docker" {
                d.docker_ok(&args)?;
            } else {
                berth(&d, &args)?.ok()?;
            }
            ensure!(
                std::fs::read_to_string(&out)? == theirs,
                "{client} cp c:{p} must read the container's passwd"
            );
        }
        // The write direction: through /canary/ into the rootfs at the canary's path.
        let f = t.path().join(format!("w-{client}-{running}"));
        std::fs::write(&f, "written\n")?;
        let args = ["cp", &s(&f), "cc:/canary/"];
        if client == "docker" {
            d.docker_ok(&args)?;
        } else {
            berth(&d, &args)?.ok()?;
        }
        let names: Vec<_> = std::fs::read_dir(&canary)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()?;
        ensure!(names == ["keep"], "the host canary was written: {names:?}");
        // It landed inside the container, at the canary's path under its root.
        let inside = format!(
            "cc:{}/{}",
            s(&canary),
            f.file_name().and_then(|n| n.to_str()).unwrap_or("")
        );
        let check = t.path().join(format!("check-{client}-{running}"));
        d.docker_ok(&["cp", &inside, &s(&check)])?;
        ensure!(std::fs::read_to_string(&check)? == "written\n");
        // And /evil/ as a destination writes the container's /etc, not the host's.
        let args = ["cp", &s(&f), "cc:/evil/"];
        d.docker_ok(&args)?;
        ensure!(!Path::new("/etc")
            .join(f.file_name().unwrap_or_default())
            .exists());
    }
    ensure!(std::fs::read_to_string("/etc/passwd")? == host_passwd);
    Ok(())
}

/// One tar entry with a raw name (tar builders refuse `..`, which is the point here).
fn tar_entry(name: &str, kind: u8, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    let size = format!("{:011o}", data.len());
    h[124..135].copy_from_slice(size.as_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

fn tar_of(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut t: Vec<u8> = entries.concat();
    t.extend_from_slice(&[0u8; 1024]);
    t
}

#[test]
fn hostile_archives_in_put_are_refused_or_contained() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let t = tempfile::tempdir()?;
    let canary = t.path().join("canary");
    std::fs::create_dir_all(&canary)?;
    d.docker_ok(&["run", "-d", "--name", "cc", "busybox", "sleep", "300"])?;
    d.docker_ok(&["exec", "cc", "mkdir", "-p", "/in/deep"])?;
    let put = |tar: &[u8]| d.http("PUT", "/containers/cc/archive?path=/in/deep", tar);

    // `..` out of the extraction directory: refused.
    let (st, body) = put(&tar_of(&[tar_entry(
        "../../../../../../escape",
        b'0',
        "",
        b"x",
    )]))?;
    ensure!(st == 400, "{st} {body}");
    ensure!(!Path::new("/escape").exists());
    // Absolute names: contained in the extraction directory.
    let (st, body) = put(&tar_of(&[tar_entry("/abs", b'0', "", b"abs\n")]))?;
    ensure!(st == 200, "{st} {body}");
    ensure!(d.docker_ok(&["exec", "cc", "cat", "/in/deep/abs"])? == "abs");
    // A link to the host's canary, then a file through it: never in the canary.
    let (st, _) = put(&tar_of(&[
        tar_entry("l", b'2', &s(&canary), b""),
        tar_entry("l/owned", b'0', "", b"x"),
    ]))?;
    ensure!(
        std::fs::read_dir(&canary)?.next().is_none(),
        "canary written (status {st})"
    );
    // A relative link climbing out: refused; a file through an in-root absolute link stays in.
    let (st, body) = put(&tar_of(&[tar_entry(
        "up",
        b'2',
        "../../../../../../..",
        b"",
    )]))?;
    ensure!(st == 400, "{st} {body}");
    let (st, body) = put(&tar_of(&[
        tar_entry("etcl", b'2', "/etc", b""),
        tar_entry("etcl/planted", b'0', "", b"p\n"),
    ]))?;
    ensure!(st == 200 || st == 400, "{st} {body}");
    ensure!(
        !Path::new("/etc/planted").exists(),
        "the host's /etc was written"
    );
    // A hard link to a host file: refused or contained (never the host's inode).
    let links_before = std::fs::metadata("/etc/passwd")?.nlink();
    let _ = put(&tar_of(&[tar_entry("hl", b'1', "/etc/passwd", b"")]))?;
    ensure!(std::fs::metadata("/etc/passwd")?.nlink() == links_before);
    // The same hostile stream through the docker CLI's `cp -`.
    let e = d.docker_stdin(
        &["cp", "-", "cc:/in/deep"],
        &tar_of(&[tar_entry("../../../../escape2", b'0', "", b"x")]),
    )?;
    ensure!(e.code != 0, "docker cp - accepted a breakout");
    ensure!(!Path::new("/escape2").exists());
    Ok(())
}
