//! The image part of berthd's Engine API as Docker's users meet it: the stock docker CLI against
//! a real berthd and a real docker-registry (Docker Hub names served through
//! `--registry-mirror`), checking what it prints and how it exits. Every test has its own
//! daemon, registry, data root and CLI config, so they run in parallel; drop guards stop them
//! even when a test fails.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::daemon_util::{have, path_str, BerthDaemon};
use common::images::{
    busybox_archive, busybox_id, load_busybox, rootfs_tar, seed_registry, Registry, REGISTRY_PASS,
    REGISTRY_USER,
};

fn tools() -> bool {
    let ok = have("docker-registry") && have("skopeo");
    if !ok {
        eprintln!("skipping: docker-registry and skopeo are needed (scripts/setup.sh)");
    }
    ok
}

/// One HTTP/1.1 request on the socket: (status, body).
fn http(sock: &Path, method: &str, path: &str, body: &[u8]) -> Result<(u16, String)> {
    let mut c = UnixStream::connect(sock)?;
    c.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    c.write_all(body)?;
    let mut resp = Vec::new();
    c.read_to_end(&mut resp)?;
    let resp = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = resp.split_once("\r\n\r\n").context("no header end")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok((status, body.to_string()))
}

#[test]
fn pull_through_the_mirror_then_list_inspect_history_tag_and_remove() -> Result<()> {
    require_root!();
    if !tools() {
        return Ok(());
    }
    let reg = Registry::start(false)?;
    seed_registry(&reg)?;
    let d = BerthDaemon::start(&["--registry-mirror", &reg.url()])?;

    let out = d.docker_ok(&["pull", "busybox"])?;
    ensure!(
        out.contains("latest: Pulling from library/busybox"),
        "{out}"
    );
    ensure!(out.contains(": Pull complete"), "{out}");
    ensure!(out.contains("Digest: sha256:"), "{out}");
    ensure!(
        out.contains("Status: Downloaded newer image for busybox:latest"),
        "{out}"
    );
    ensure!(out.ends_with("docker.io/library/busybox:latest"), "{out}");
    let again = d.docker_ok(&["pull", "busybox:latest"])?;
    ensure!(
        again.contains("Status: Image is up to date for busybox:latest"),
        "{again}"
    );

    // The same image id as the archive that seeded the registry: the config went through intact.
    let id = busybox_id()?;
    let listed = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"])?;
    assert_eq!(listed, format!("busybox:latest {}", &id[7..19]));
    let table = d.docker_ok(&["images"])?;
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    ensure!(
        header.split_whitespace().collect::<Vec<_>>()
            == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"],
        "{table}"
    );
    let row: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    ensure!(
        row.first() == Some(&"busybox") && row.get(1) == Some(&"latest"),
        "{table}"
    );
    let full = d.docker_ok(&["images", "-q", "--no-trunc"])?;
    assert_eq!(full, id);

    let inspect = d.docker_ok(&[
        "image",
        "inspect",
        "busybox",
        "--format",
        "{{.Id}} {{json .Config.Cmd}} {{.Os}} {{.Architecture}} {{len .RootFS.Layers}} {{.RootFS.Type}} {{len .RepoDigests}} {{.Created}}",
    ])?;
    assert_eq!(
        inspect,
        format!("{id} [\"sh\"] linux amd64 1 layers 1 2024-01-02T03:04:05Z")
    );
    let full: serde_json::Value =
        serde_json::from_str(&d.docker_ok(&["image", "inspect", "busybox"])?)?;
    let img = &full[0];
    for k in ["Parent", "Comment", "Author", "DockerVersion"] {
        assert_eq!(img[k], "", "{k} is an empty string, as Docker sends it");
    }
    assert!(img["Config"]["Entrypoint"].is_null() && img["Config"]["Labels"].is_null());
    assert_eq!(img["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert!(img["Size"].as_u64().unwrap_or(0) > 100_000, "{img}");
    assert!(img["Metadata"]["LastTagTime"].is_string());

    let history = d.docker_ok(&["history", "busybox"])?;
    ensure!(history.contains("CMD [\"sh\"]"), "{history}");
    ensure!(history.contains("<missing>"), "{history}");
    ensure!(history.lines().count() == 3, "{history}");
    let created_by = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "busybox",
    ])?;
    ensure!(
        created_by
            .lines()
            .nth(1)
            .unwrap_or("")
            .contains("ADD file:busybox"),
        "{created_by}"
    );

    // Tags: a second name, listed and filtered; removing it only untags.
    d.docker_ok(&["tag", "busybox", "mine/bb:1"])?;
    let names = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])?;
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(names, ["busybox:latest", "mine/bb:1"]);
    let filtered = d.docker_ok(&[
        "images",
        "--filter",
        "reference=mine/*",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ])?;
    assert_eq!(filtered, "mine/bb:1");
    let dangling = d.docker_ok(&["images", "-q", "--filter", "dangling=true"])?;
    assert_eq!(dangling, "");
    let out = d.docker_ok(&["rmi", "mine/bb:1"])?;
    assert_eq!(out, "Untagged: mine/bb:1");

    // The last name: untagged and deleted, layers and all.
    let out = d.docker_ok(&["rmi", "busybox"])?;
    ensure!(out.contains("Untagged: busybox:latest"), "{out}");
    ensure!(out.contains(&format!("Deleted: {id}")), "{out}");
    assert_eq!(d.docker_ok(&["images", "-q"])?, "");
    let layers = std::fs::read_dir(d.data_root().join("layers"))?.count();
    assert_eq!(layers, 0, "the unpacked layer went with the image");

    // Events of what happened, Docker's shape.
    let (s, body) = http(
        &d.sock(),
        "GET",
        "/v1.45/events?since=0&until=9999999999",
        b"",
    )?;
    if s == 200 {
        for action in ["pull", "tag", "untag", "delete"] {
            ensure!(
                body.contains(&format!("\"Action\":\"{action}\"")),
                "no {action} event in {body}"
            );
        }
    }
    Ok(())
}

#[test]
fn save_load_roundtrip_and_import_of_a_rootfs() -> Result<()> {
    require_root!();
    let d = BerthDaemon::start(&[])?;
    load_busybox(&d)?;
    let id = busybox_id()?;
    let work = tempfile::tempdir()?;
    let saved = work.path().join("saved.tar");
    d.docker_ok(&["save", "-o", &path_str(&saved), "busybox"])?;
    ensure!(std::fs::metadata(&saved)?.len() > 100_000);
    d.docker_ok(&["rmi", "busybox"])?;
    let out = d.docker_ok(&["load", "-i", &path_str(&saved)])?;
    assert_eq!(out, "Loaded image: busybox:latest");
    assert_eq!(d.docker_ok(&["images", "-q", "--no-trunc"])?, id);

    // save to stdout, load from stdin.
    let raw = std::process::Command::new(common::daemon_util::docker_bin())
        .env("DOCKER_HOST", format!("unix://{}", d.sock().display()))
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .args(["save", "busybox"])
        .output()?;
    ensure!(raw.status.success());
    d.docker_ok(&["rmi", "busybox"])?;
    let out = d.docker_stdin(&["load"], &raw.stdout)?.ok()?;
    assert_eq!(out.stdout.trim(), "Loaded image: busybox:latest");

    // Import a rootfs tar with changes and a message.
    let tar = rootfs_tar(work.path())?;
    let tar_bytes = std::fs::read(&tar)?;
    let out = d
        .docker_stdin(
            &[
                "import",
                "--change",
                "CMD [\"sh\"]",
                "--change",
                "ENV A=b",
                "-m",
                "from the e2e test",
                "-",
                "imported:1",
            ],
            &tar_bytes,
        )?
        .ok()?;
    let imported = out.stdout.trim().to_string();
    ensure!(imported.starts_with("sha256:"), "{imported}");
    let cfg = d.docker_ok(&[
        "image",
        "inspect",
        "imported:1",
        "--format",
        "{{.Id}} {{json .Config.Cmd}} {{json .Config.Env}} {{.Comment}}",
    ])?;
    assert_eq!(
        cfg,
        format!("{imported} [\"sh\"] [\"A=b\"] from the e2e test")
    );
    let hist = d.docker_ok(&["history", "--format", "{{.Comment}}", "imported:1"])?;
    assert_eq!(hist, "from the e2e test");

    // Import from a URL: berthd downloads it (a server on 127.0.0.1), same layer as from stdin.
    let srv = common::http_server::HttpServer::start(work.path())?;
    let name = tar
        .file_name()
        .and_then(|n| n.to_str())
        .context("tar name")?;
    let by_url = d.docker_ok(&["import", &srv.url(name), "fromurl:1"])?;
    ensure!(by_url.starts_with("sha256:"), "{by_url}");
    let layers =
        |r: &str| d.docker_ok(&["image", "inspect", r, "--format", "{{json .RootFS.Layers}}"]);
    assert_eq!(layers("fromurl:1")?, layers("imported:1")?);
    let created_by = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.Comment}}",
        "fromurl:1",
    ])?;
    ensure!(
        created_by == format!("Imported from {}", srv.url(name)),
        "{created_by}"
    );
    // A URL that answers 404: the daemon's error, nothing created.
    let out = d.docker(&["import", &srv.url("missing.tar"), "nope:1"])?;
    ensure!(out.code == 1 && out.stderr.contains("404"), "{out:?}");
    ensure!(d.docker(&["image", "inspect", "nope:1"])?.code != 0);
    d.docker_ok(&["rmi", "fromurl:1"])?;

    // Hostile and broken input: refused with a message, nothing half-created.
    let before = d.docker_ok(&["images", "-q", "--no-trunc"])?;
    let out = d.docker_stdin(&["load"], b"this is not a tar")?;
    ensure!(out.code == 1, "{out:?}");
    ensure!(out.stderr.contains("Error response from daemon"), "{out:?}");
    let evil = hostile_archive(work.path())?;
    let out = d.docker(&["load", "-i", &path_str(&evil)])?;
    ensure!(out.code == 1, "{out:?}");
    ensure!(
        out.stderr.contains("unsafe name") || out.stderr.contains("outside"),
        "{out:?}"
    );
    let out = d.docker_stdin(&["import", "-", "bad:1"], b"garbage")?;
    ensure!(out.code == 1, "{out:?}");
    assert_eq!(d.docker_ok(&["images", "-q", "--no-trunc"])?, before);
    assert!(!Path::new("/tmp/berth-e2e-escaped").exists());

    // prune: nothing dangling; -a removes what no container uses.
    let out = d.docker_ok(&["image", "prune", "-f"])?;
    ensure!(out.contains("Total reclaimed space: 0B"), "{out}");
    let df = d.docker_ok(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])?;
    ensure!(df.lines().any(|l| l == "Images 2"), "{df}");
    let out = d.docker_ok(&["image", "prune", "-af"])?;
    ensure!(out.contains("deleted: sha256:"), "{out}");
    assert_eq!(d.docker_ok(&["images", "-q"])?, "");
    Ok(())
}

/// A docker archive with a member that climbs out of it (`../../tmp/berth-e2e-escaped`).
fn hostile_archive(dir: &Path) -> Result<std::path::PathBuf> {
    let tree = dir.join("evil");
    std::fs::create_dir_all(&tree)?;
    std::fs::write(
        tree.join("manifest.json"),
        r#"[{"Config":"c.json","RepoTags":["evil:1"],"Layers":[]}]"#,
    )?;
    std::fs::write(tree.join("x"), b"escaped")?;
    let out = dir.join("evil.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .args([
            "-P",
            "--transform=s,^x$,../../tmp/berth-e2e-escaped,",
            "-cf",
        ])
        .arg(&out)
        .args(["x", "manifest.json"])
        .status()?;
    ensure!(st.success());
    Ok(out)
}

#[test]
fn push_to_a_registry_and_pull_back() -> Result<()> {
    require_root!();
    if !tools() {
        return Ok(());
    }
    let reg = Registry::start(false)?;
    let d = BerthDaemon::start(&[])?;
    load_busybox(&d)?;
    let target = format!("{}/team/bb:v1", reg.addr());
    d.docker_ok(&["tag", "busybox", &target])?;
    let out = d.docker_ok(&["push", &target])?;
    ensure!(
        out.starts_with(&format!(
            "The push refers to repository [{}/team/bb]",
            reg.addr()
        )),
        "{out}"
    );
    ensure!(out.contains(": Pushed"), "{out}");
    let last = out.lines().last().unwrap_or_default();
    ensure!(
        last.starts_with("v1: digest: sha256:") && last.contains(" size: "),
        "{out}"
    );
    let digest = last
        .split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string();
    // RepoDigests: the pushed repository only (a loaded image had none, a local tag adds none).
    d.docker_ok(&["tag", "busybox", "local/only:x"])?;
    let rd = d.docker_ok(&[
        "image",
        "inspect",
        "local/only:x",
        "--format",
        "{{json .RepoDigests}}",
    ])?;
    assert_eq!(rd, format!("[\"{}/team/bb@{digest}\"]", reg.addr()));
    d.docker_ok(&["rmi", "local/only:x"])?;
    // Again: the registry has every layer.
    let out = d.docker_ok(&["push", &target])?;
    ensure!(out.contains(": Layer already exists"), "{out}");

    d.docker_ok(&["rmi", &target, "busybox"])?;
    assert_eq!(d.docker_ok(&["images", "-q"])?, "");
    let out = d.docker_ok(&["pull", &target])?;
    ensure!(out.contains(&format!("Digest: {digest}")), "{out}");
    let inspect = d.docker_ok(&[
        "image",
        "inspect",
        &target,
        "--format",
        "{{.Id}} {{index .RepoDigests 0}}",
    ])?;
    assert_eq!(
        inspect,
        format!("{} {}/team/bb@{digest}", busybox_id()?, reg.addr())
    );
    // Pulling by digest finds the same image.
    let by_digest = format!("{}/team/bb@{digest}", reg.addr());
    let out = d.docker_ok(&["pull", &by_digest])?;
    ensure!(out.contains("Status:"), "{out}");

    // Pushing a name that is not here: Docker's message.
    let out = d.docker(&["push", &format!("{}/nope:1", reg.addr())])?;
    assert_eq!(out.code, 1);
    ensure!(
        out.stderr
            .contains("An image does not exist locally with the tag"),
        "{out:?}"
    );
    Ok(())
}

#[test]
fn login_checks_credentials_against_the_registry() -> Result<()> {
    require_root!();
    if !tools() {
        return Ok(());
    }
    let reg = Registry::start(true)?;
    let d = BerthDaemon::start(&[])?;
    let out = d.docker(&["login", "-u", REGISTRY_USER, "-p", "wrong", &reg.addr()])?;
    assert_eq!(out.code, 1, "{out:?}");
    ensure!(
        out.stderr.contains("401 Unauthorized"),
        "docker's login failure: {out:?}"
    );
    let out = d.docker_stdin(
        &[
            "login",
            "-u",
            REGISTRY_USER,
            "--password-stdin",
            &reg.addr(),
        ],
        REGISTRY_PASS.as_bytes(),
    )?;
    ensure!(
        out.code == 0 && out.stdout.contains("Login Succeeded"),
        "{out:?}"
    );

    // The CLI now sends the credentials (X-Registry-Auth) with push and pull.
    load_busybox(&d)?;
    let target = format!("{}/private/bb:1", reg.addr());
    d.docker_ok(&["tag", "busybox", &target])?;
    d.docker_ok(&["push", &target])?;
    d.docker_ok(&["rmi", &target, "busybox"])?;
    d.docker_ok(&["pull", &target])?;

    // Without them the registry refuses, and the CLI does not ask for a password.
    d.docker_ok(&["logout", &reg.addr()])?;
    d.docker_ok(&["rmi", &target])?;
    let out = d.docker(&["pull", &target])?;
    assert_eq!(out.code, 1, "{out:?}");
    ensure!(out.stderr.contains("unauthorized"), "{out:?}");
    Ok(())
}

#[test]
fn bad_input_gets_dockers_messages_and_exit_codes() -> Result<()> {
    require_root!();
    if !tools() {
        return Ok(());
    }
    let reg = Registry::start(false)?;
    let d = BerthDaemon::start(&["--registry-mirror", &reg.url()])?;

    let out = d.docker(&["rmi", "nope"])?;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.one_error_line()?,
        "Error response from daemon: No such image: nope:latest"
    );
    let out = d.docker(&["tag", "nope", "x:1"])?;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.one_error_line()?,
        "Error response from daemon: No such image: nope:latest"
    );
    let out = d.docker(&["image", "inspect", "nope"])?;
    assert_eq!(out.code, 1);
    ensure!(out.stderr.contains("No such image: nope"), "{out:?}");
    let out = d.docker(&["history", "nope:2"])?;
    assert_eq!(out.code, 1);
    ensure!(out.stderr.contains("No such image: nope:2"), "{out:?}");
    let out = d.docker(&["save", "nope"])?;
    assert_eq!(out.code, 1);
    ensure!(out.stderr.contains("No such image: nope:latest"), "{out:?}");

    // Names the CLI does not check itself reach the daemon, which says what Docker says.
    let (s, body) = http(&d.sock(), "GET", "/v1.45/images/BAD/json", b"")?;
    assert_eq!(s, 400, "{body}");
    ensure!(body.contains("invalid reference format"), "{body}");
    let (s, body) = http(
        &d.sock(),
        "POST",
        "/v1.45/images/create?fromImage=Bad%21name&tag=latest",
        b"",
    )?;
    assert_eq!(s, 400, "{body}");
    ensure!(body.contains("invalid reference format"), "{body}");
    let (s, body) = http(&d.sock(), "DELETE", "/v1.45/images/nope", b"")?;
    assert_eq!(s, 404);
    let v: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(v["message"], "No such image: nope:latest");
    let (s, _) = http(&d.sock(), "POST", "/v1.45/auth", b"{not json")?;
    assert_eq!(s, 400);
    let (s, _) = http(
        &d.sock(),
        "GET",
        "/v1.45/images/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
        b"",
    )?;
    assert_eq!(s, 400);
    let (s, body) = http(&d.sock(), "GET", "/v1.45/images/json", b"")?;
    assert_eq!((s, body.trim()), (200, "[]"));

    // The CLI's own reference check, then a tag the mirror does not have.
    let out = d.docker(&["pull", "BAD"])?;
    assert_eq!(out.code, 1);
    ensure!(out.stderr.contains("invalid reference format"), "{out:?}");
    let out = d.docker(&["pull", "busybox:nope"])?;
    assert_eq!(out.code, 1);
    ensure!(
        out.stderr.contains("Error response from daemon")
            && out.stderr.contains("manifest unknown"),
        "{out:?}"
    );
    assert_eq!(d.docker_ok(&["images", "-q"])?, "");
    // The archive the other tests load is well-formed (a guard for the helper itself).
    ensure!(busybox_archive()?.exists());
    Ok(())
}
