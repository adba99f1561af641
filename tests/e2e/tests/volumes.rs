//! Volumes as Docker's users meet them, through the docker CLI against a real berthd: named
//! volumes that outlive their containers, read-only mounts, anonymous volumes from `-v /path`
//! and from the image's VOLUME (with Docker's copy-up of the image's content), `rm -v` and
//! `--rm`, `--volumes-from`, prune, bind-style local volumes, bad input refused with Docker's
//! messages and nothing half-made, and a symlink planted in the image at a volume's path that
//! must never lead the copy-up or the mount out of the container's root.
//!
//! Each test has its own berthd, so the tests run in parallel; the guard cleans up.

#[path = "common/berthd.rs"]
mod berthd;
mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Result};
use berthd::Berthd;

const BB: &str = "busybox";

fn volumes(d: &Berthd) -> Result<Vec<String>> {
    Ok(d.docker_ok(&["volume", "ls", "-q"])?
        .lines()
        .map(str::to_string)
        .collect())
}

fn is_anon(name: &str) -> bool {
    name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit())
}

#[test]
fn named_volume_outlives_its_container_and_ro_refuses_writes() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    ensure!(d.docker_ok(&["volume", "create", "data1"])? == "data1");
    // Creating it again returns it, as Docker.
    ensure!(d.docker_ok(&["volume", "create", "data1"])? == "data1");
    d.docker_ok(&[
        "run",
        "--name",
        "w1",
        "-v",
        "data1:/data",
        BB,
        "sh",
        "-c",
        "echo hi > /data/f",
    ])?;
    d.docker_ok(&["rm", "w1"])?;
    let out = d.docker_ok(&["run", "--rm", "-v", "data1:/data", BB, "cat", "/data/f"])?;
    ensure!(out == "hi", "{out:?}");
    // A volume named in -v that does not exist yet is made on the fly.
    d.docker_ok(&["run", "--rm", "-v", "fresh1:/x", BB, "true"])?;
    ensure!(volumes(&d)?.contains(&"fresh1".to_string()));

    // Read-only: -v :ro and --mount readonly.
    for spec in [
        vec!["-v", "data1:/data:ro"],
        vec!["--mount", "type=volume,source=data1,target=/data,readonly"],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(&spec);
        args.extend([BB, "sh", "-c", "cat /data/f && echo x > /data/g"]);
        let out = d.docker(&args)?;
        ensure!(out.code != 0, "{spec:?}: write succeeded: {out:?}");
        ensure!(out.stdout.contains("hi"), "{out:?}");
        ensure!(
            out.stderr.contains("Read-only file system"),
            "{spec:?}: {out:?}"
        );
    }

    // inspect, ls, the container's Mounts, ps --filter volume=.
    let root = d.data_root();
    let want = format!("local local {}/volumes/data1/_data", root.display());
    let got = d.docker_ok(&[
        "volume",
        "inspect",
        "-f",
        "{{.Driver}} {{.Scope}} {{.Mountpoint}}",
        "data1",
    ])?;
    ensure!(got == want, "{got:?} != {want:?}");
    // Docker shows null for no labels or options.
    let got = d.docker_ok(&[
        "volume",
        "inspect",
        "-f",
        "{{json .Labels}} {{json .Options}}",
        "data1",
    ])?;
    ensure!(got == "null null", "{got:?}");
    let table = d.docker_ok(&["volume", "ls"])?;
    ensure!(table.starts_with("DRIVER    VOLUME NAME"), "{table}");
    ensure!(table.contains("local     data1"), "{table}");
    let id = d.docker_ok(&["create", "--name", "c1", "-v", "data1:/data", BB, "true"])?;
    let mounts = d.inspect(
        "c1",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}} {{.Driver}}{{end}}",
    )?;
    ensure!(mounts == "volume data1 /data true local", "{mounts:?}");
    let ps = d.docker_ok(&["ps", "-a", "-q", "--no-trunc", "--filter", "volume=data1"])?;
    ensure!(ps == id, "{ps:?} != {id:?}");
    let ps = d.docker_ok(&["ps", "-a", "-q", "--filter", "volume=fresh1"])?;
    ensure!(ps.is_empty(), "{ps:?}");

    // In use (even by a stopped container): refused with Docker's message.
    let out = d.docker(&["volume", "rm", "data1"])?;
    ensure!(
        out.code != 0 && out.stderr.contains("remove data1: volume is in use"),
        "{out:?}"
    );
    ensure!(out.stderr.contains(&id), "{out:?}");
    let out = d.docker(&["volume", "rm", "-f", "data1"])?;
    ensure!(out.code != 0, "{out:?}");
    d.docker_ok(&["rm", "c1"])?;
    d.docker_ok(&["volume", "rm", "data1"])?;
    ensure!(!root.join("volumes/data1").exists());
    let out = d.docker(&["volume", "inspect", "data1"])?;
    ensure!(
        out.code != 0 && out.stderr.contains("no such volume"),
        "{out:?}"
    );
    // system df -v lists volumes with their use.
    let df = d.docker_ok(&["system", "df", "-v"])?;
    ensure!(df.contains("fresh1"), "{df}");
    Ok(())
}

#[test]
fn anonymous_volumes_go_with_rm_v_and_run_rm_and_prune() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    d.docker_ok(&[
        "create",
        "--name",
        "a1",
        "-v",
        "/anon",
        "-v",
        "named1:/n",
        BB,
        "true",
    ])?;
    let anon = d.inspect(
        "a1",
        "{{range .Mounts}}{{if eq .Destination \"/anon\"}}{{.Name}}{{end}}{{end}}",
    )?;
    ensure!(is_anon(&anon), "{anon:?}");
    let label = d.docker_ok(&["volume", "inspect", "-f", "{{json .Labels}}", &anon])?;
    ensure!(label == r#"{"com.docker.volume.anonymous":""}"#, "{label}");
    d.docker_ok(&["rm", "-v", "a1"])?;
    let vs = volumes(&d)?;
    ensure!(vs == vec!["named1".to_string()], "{vs:?}");

    // --rm takes its anonymous volumes with it.
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "/anon2",
        BB,
        "sh",
        "-c",
        "echo x > /anon2/f",
    ])?;
    let vs = volumes(&d)?;
    ensure!(vs == vec!["named1".to_string()], "{vs:?}");

    // Without -v the anonymous volume stays; prune takes it (not the named one), -a both.
    d.docker_ok(&[
        "run",
        "--name",
        "b1",
        "-v",
        "/keep",
        BB,
        "sh",
        "-c",
        "echo x > /keep/f",
    ])?;
    d.docker_ok(&["rm", "b1"])?;
    ensure!(volumes(&d)?.len() == 2);
    let dangling = d.docker_ok(&["volume", "ls", "-q", "--filter", "dangling=true"])?;
    ensure!(dangling.lines().count() == 2, "{dangling}");
    let out = d.docker_ok(&["volume", "prune", "-f"])?;
    ensure!(out.contains("Deleted Volumes:"), "{out}");
    ensure!(out.contains("Total reclaimed space: 2B"), "{out}");
    ensure!(volumes(&d)? == vec!["named1".to_string()]);
    d.docker_ok(&["volume", "create", "--label", "keep=1", "labelled"])?;
    let out = d.docker_ok(&["volume", "prune", "-f", "-a", "--filter", "label!=keep"])?;
    ensure!(out.contains("named1"), "{out}");
    ensure!(volumes(&d)? == vec!["labelled".to_string()]);
    let out = d.docker_ok(&["volume", "ls", "--filter", "label=keep=1", "-q"])?;
    ensure!(out == "labelled", "{out:?}");
    Ok(())
}

/// An image whose /data holds content (owned 1000:1000, mode 640, a symlink) under VOLUME.
fn volume_image(d: &Berthd) -> Result<()> {
    d.docker_ok(&[
        "run",
        "--name",
        "base",
        BB,
        "sh",
        "-c",
        "mkdir -p /data/sub && echo seed > /data/sub/f && chown 1000:1000 /data/sub/f && \
         chmod 640 /data/sub/f && ln -s /etc/passwd /data/link",
    ])?;
    d.docker_ok(&["commit", "--change", "VOLUME /data", "base", "vimg"])?;
    d.docker_ok(&["rm", "base"])?;
    Ok(())
}

#[test]
fn image_volume_is_copied_up_and_shared_with_volumes_from() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    volume_image(&d)?;
    let out = d.docker_ok(&[
        "run",
        "--name",
        "u1",
        "vimg",
        "sh",
        "-c",
        "cat /data/sub/f; stat -c '%u:%g %a' /data/sub/f; readlink /data/link; echo more > /data/new",
    ])?;
    ensure!(out == "seed\n1000:1000 640\n/etc/passwd", "{out:?}");
    let mounts = d.inspect("u1", "{{range .Mounts}}{{.Type}} {{.Destination}}{{end}}")?;
    ensure!(mounts == "volume /data", "{mounts:?}");
    // --volumes-from: the same volume, read-write or read-only.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "u1",
        BB,
        "cat",
        "/data/new",
    ])?;
    ensure!(out == "more", "{out:?}");
    let out = d.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        "u1:ro",
        BB,
        "touch",
        "/data/nope",
    ])?;
    ensure!(
        out.code != 0 && out.stderr.contains("Read-only file system"),
        "{out:?}"
    );
    // A bind over the VOLUME path wins: no anonymous volume is made.
    let before = volumes(&d)?.len();
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "cu:/data",
        "vimg",
        "cat",
        "/data/sub/f",
    ])?;
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "cu:/data",
        "vimg",
        "cat",
        "/data/sub/f",
    ])?;
    ensure!(out == "seed", "{out:?}");
    ensure!(volumes(&d)?.len() == before + 1);
    // nocopy: the named volume stays empty.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "cu2:/data:nocopy",
        "vimg",
        "ls",
        "-A",
        "/data",
    ])?;
    ensure!(out.is_empty(), "{out:?}");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=cu3,target=/data,volume-nocopy",
        "vimg",
        "ls",
        "-A",
        "/data",
    ])?;
    ensure!(out.is_empty(), "{out:?}");
    // A bind-style local volume is the directory it names.
    let dir = tempfile::tempdir()?;
    let dev = format!("device={}", dir.path().display());
    d.docker_ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &dev,
        "bindvol",
    ])?;
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "bindvol:/b",
        BB,
        "sh",
        "-c",
        "echo b > /b/f",
    ])?;
    ensure!(std::fs::read_to_string(dir.path().join("f"))? == "b\n");
    d.docker_ok(&["volume", "rm", "bindvol"])?;
    ensure!(
        dir.path().join("f").exists(),
        "removing the volume deleted its device's files"
    );
    Ok(())
}

#[test]
fn a_symlink_planted_at_the_volume_path_stays_inside_the_container() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    d.docker_ok(&[
        "run",
        "--name",
        "evil",
        BB,
        "sh",
        "-c",
        "rm -rf /data && ln -s /etc /data",
    ])?;
    d.docker_ok(&["commit", "--change", "VOLUME /data", "evil", "evilimg"])?;
    let host_marker = std::path::Path::new("/etc/berth-volume-escape");
    let _ = std::fs::remove_file(host_marker);
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        "ev:/data",
        "evilimg",
        "sh",
        "-c",
        "echo pwned > /data/berth-volume-escape; ls /data",
    ])?;
    ensure!(
        !host_marker.exists(),
        "a write went to the host's /etc: {out:?}"
    );
    // The copy-up read the image's /etc, never the host's.
    let data = d.data_root().join("volumes/ev/_data");
    ensure!(data.join("passwd").exists(), "no copy-up: {out:?}");
    for host_only in ["debian_version", "os-release", "machine-id"] {
        ensure!(
            !data.join(host_only).exists(),
            "{host_only} of the host's /etc was copied into the volume"
        );
    }
    // Same for an anonymous volume from the image's VOLUME.
    let out = d.docker(&[
        "run",
        "--rm",
        "evilimg",
        "sh",
        "-c",
        "echo pwned > /data/berth-volume-escape",
    ])?;
    ensure!(
        !host_marker.exists(),
        "a write went to the host's /etc: {out:?}"
    );
    Ok(())
}

#[test]
fn bad_volume_input_gets_docker_errors_and_makes_nothing() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    for (args, want) in [
        (
            vec!["volume", "create", "a/b"],
            "includes invalid characters for a local volume name",
        ),
        (vec!["volume", "create", "x"], "volume name is too short"),
        (
            vec!["volume", "create", "-d", "nfs", "x1"],
            "plugin \"nfs\" not found",
        ),
        (
            vec!["volume", "create", "-o", "foo=bar", "x2"],
            "invalid option: \"foo\"",
        ),
        (
            vec![
                "volume",
                "create",
                "-o",
                "type=nfs",
                "-o",
                "o=addr=1.2.3.4",
                "-o",
                "device=:/x",
                "x3",
            ],
            "create x3",
        ),
        (
            vec![
                "volume",
                "create",
                "-o",
                "type=none",
                "-o",
                "o=bind",
                "-o",
                "device=/nonexistent/berth",
                "x4",
            ],
            "No such file",
        ),
        (vec!["volume", "rm", "nosuch"], "no such volume"),
        (vec!["volume", "inspect", "nosuch"], "no such volume"),
        (
            vec!["run", "--rm", "-v", "rel/path:/x", BB, "true"],
            "includes invalid characters",
        ),
        (
            vec![
                "run",
                "--rm",
                "--mount",
                "type=volume,source=../x,target=/y",
                BB,
                "true",
            ],
            "includes invalid characters",
        ),
        (
            vec!["run", "--rm", "-v", "okname:rel", BB, "true"],
            "must be absolute",
        ),
        (
            vec!["run", "--rm", "-v", "okname:/x:bogus", BB, "true"],
            "invalid mode",
        ),
        (
            vec![
                "run", "--rm", "-v", "v1:/same", "-v", "v2:/same", BB, "true",
            ],
            "Duplicate mount point",
        ),
        (
            vec![
                "run",
                "--rm",
                "--mount",
                "type=volume,source=a/b,target=/x",
                BB,
                "true",
            ],
            "invalid characters",
        ),
        (
            vec![
                "run",
                "--rm",
                "--mount",
                "type=volume,source=okv,target=/x,volume-driver=nfs",
                BB,
                "true",
            ],
            "not found",
        ),
        (
            vec![
                "run",
                "--rm",
                "--mount",
                "type=volume,source=okv,target=/x,volume-opt=foo=1",
                BB,
                "true",
            ],
            "invalid option",
        ),
        (
            vec!["run", "--rm", "--volumes-from", "nosuchctr", BB, "true"],
            "No such container",
        ),
    ] {
        let out = d.docker(&args)?;
        ensure!(out.code != 0, "{args:?} succeeded: {out:?}");
        ensure!(
            out.stderr.contains(want),
            "{args:?}: want {want:?} in {}",
            out.stderr
        );
    }
    // The docker CLI turns `-v ../x:/y` into a host path itself; through the API the daemon
    // sees the traversal and refuses it as Docker's does.
    for bind in ["../x:/y", "..:/y", "a/../../b:/y"] {
        let body =
            format!(r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{{"Binds":["{bind}"]}}}}"#);
        let (code, text) = d.http("POST", "/containers/create", body.as_bytes())?;
        ensure!(code == 400, "{bind}: {code} {text}");
        ensure!(
            text.contains("includes invalid characters"),
            "{bind}: {text}"
        );
    }
    ensure!(volumes(&d)?.is_empty(), "{:?}", volumes(&d)?);
    let ps = d.docker_ok(&["ps", "-aq"])?;
    ensure!(ps.is_empty(), "{ps}");
    let left: Vec<_> = std::fs::read_dir(d.data_root().join("volumes"))?
        .flatten()
        .map(|e| e.file_name())
        .collect();
    ensure!(left.is_empty(), "{left:?}");
    Ok(())
}

/// berth's own CLI: $BERTH_CLI, else target/release/berth.
fn berth_cli() -> PathBuf {
    std::env::var_os("BERTH_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::workspace().join("target/release/berth"))
}

#[test]
fn the_berth_cli_prints_what_docker_prints() -> Result<()> {
    require_root!();
    let cli = berth_cli();
    ensure!(
        cli.exists(),
        "{} is missing: build berth-cli or set BERTH_CLI",
        cli.display()
    );
    let d = Berthd::with_busybox()?;
    let berth = |args: &[&str]| {
        common::run_cmd(
            Command::new(&cli)
                .args(["-H", &format!("unix://{}", d.sock().display())])
                .args(args),
            None,
            Duration::from_secs(60),
        )
    };
    let out = berth(&[
        "volume",
        "create",
        "--label",
        "a=b",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        "device=/tmp",
        "bv1",
    ])?
    .ok()?;
    ensure!(out.stdout == "bv1\n", "{out:?}");
    berth(&["volume", "create", "zz9"])?.ok()?;
    berth(&[
        "run", "--name", "u1", "-v", "/anon", "-v", "zz9:/z", "busybox", "true",
    ])?
    .ok()?;
    berth(&[
        "run",
        "--rm",
        "--volumes-from",
        "u1:ro",
        "--mount",
        "type=volume,source=m1,target=/m,volume-nocopy",
        "busybox",
        "true",
    ])?
    .ok()?;
    for args in [
        vec!["volume", "ls"],
        vec!["volume", "ls", "-q"],
        vec![
            "volume",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Labels}}",
        ],
        vec!["volume", "ls", "--filter", "label=a=b"],
        vec!["volume", "ls", "--filter", "dangling=true", "-q"],
        vec!["volume", "inspect", "bv1", "zz9"],
        vec![
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Mountpoint}}",
            "zz9",
        ],
    ] {
        let b = berth(&args)?.ok()?;
        let dk = d.docker_ok(&args)?;
        ensure!(
            b.stdout.trim_end() == dk,
            "{args:?}:\nberth:\n{}\ndocker:\n{dk}",
            b.stdout
        );
    }
    // The same Mounts (key order aside: berth's json template sorts keys).
    let args = ["inspect", "-f", "{{json .Mounts}}", "u1"];
    let b: serde_json::Value = serde_json::from_str(&berth(&args)?.ok()?.stdout)?;
    let dk: serde_json::Value = serde_json::from_str(&d.docker_ok(&args)?)?;
    ensure!(
        b == dk && b.as_array().map(Vec::len) == Some(2),
        "{b}\n{dk}"
    );
    let out = berth(&["volume", "rm", "zz9"])?;
    ensure!(
        out.code == 1 && out.stderr.contains("volume is in use"),
        "{out:?}"
    );
    let out = berth(&["volume", "inspect", "nosuch"])?;
    ensure!(
        out.code == 1 && out.stderr.contains("no such volume"),
        "{out:?}"
    );
    berth(&["rm", "-v", "u1"])?.ok()?;
    let out = berth(&["volume", "prune", "-f"])?.ok()?;
    ensure!(
        out.stdout.ends_with("Total reclaimed space: 0B\n"),
        "{out:?}"
    );
    let out = berth(&["volume", "prune", "-f", "-a"])?.ok()?;
    ensure!(out.stdout.starts_with("Deleted Volumes:\n"), "{out:?}");
    ensure!(volumes(&d)?.is_empty(), "{:?}", volumes(&d)?);
    Ok(())
}

#[test]
fn compose_volumes_and_a_daemon_restart_keep_the_data() -> Result<()> {
    require_root!();
    let mut d = Berthd::with_busybox()?;
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        r#"version: "3.8"
services:
  app:
    image: busybox
    command: ["sh", "-c", "cat /data/f 2>/dev/null; echo run >> /data/f; sleep 60"]
    volumes:
      - appdata:/data
      - /scratch
volumes:
  appdata:
    labels:
      purpose: test
"#,
    )?;
    let sock = d.sock();
    let compose = |args: &[&str]| -> Result<common::Out> {
        let mut c = Command::new("docker-compose");
        c.current_dir(dir.path())
            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
            .args(["-p", "berthvol"])
            .args(args);
        common::run_cmd(&mut c, None, Duration::from_secs(120))
    };
    compose(&["up", "-d"])?.ok()?;
    let vs = volumes(&d)?;
    ensure!(vs.contains(&"berthvol_appdata".to_string()), "{vs:?}");
    let label = d.docker_ok(&[
        "volume",
        "inspect",
        "-f",
        "{{index .Labels \"purpose\"}}",
        "berthvol_appdata",
    ])?;
    ensure!(label == "test", "{label:?}");
    compose(&["down", "-t", "1"])?.ok()?;
    // The named volume outlives `down` (and a daemon restart); `down -v` removes it.
    // (The anonymous /scratch stays too: `down` without -v keeps it, as with Docker.)
    let after_down = volumes(&d)?;
    ensure!(after_down.contains(&"berthvol_appdata".to_string()));
    let anon: Vec<String> = after_down.into_iter().filter(|v| is_anon(v)).collect();
    ensure!(anon.len() == 1, "{anon:?}");
    d.restart()?;
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "berthvol_appdata:/data",
        BB,
        "cat",
        "/data/f",
    ])?;
    ensure!(out == "run", "{out:?}");
    compose(&["up", "-d"])?.ok()?;
    compose(&["down", "-v", "-t", "1"])?.ok()?;
    let vs = volumes(&d)?;
    ensure!(vs == anon, "{vs:?}");
    Ok(())
}

#[test]
fn a_missing_host_directory_of_dash_v_is_created_as_docker_does() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let host = tempfile::tempdir()?;
    let src = host.path().join("made/by/berth");
    let bind = format!("{}:/x", src.display());
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo hi > /x/f",
    ])?;
    let got = std::fs::read_to_string(src.join("f"))?;
    anyhow::ensure!(got == "hi\n", "{got:?}");
    // --mount type=bind keeps refusing a missing source.
    let missing = host.path().join("nope");
    let out = d.docker(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,source={},target=/y", missing.display()),
        "busybox",
        "true",
    ])?;
    anyhow::ensure!(
        out.code != 0 && out.stderr.contains("does not exist"),
        "{out:?}"
    );
    anyhow::ensure!(!missing.exists());
    Ok(())
}
