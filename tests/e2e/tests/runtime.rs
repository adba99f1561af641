//! berth-runc end to end, as runc's users drive it: the lifecycle verbs, exec, ps, pause,
//! hooks, namespaces, the spec's mounts and limits, the console socket, and bad input that must
//! fail with one clear line and leave nothing behind.
//!
//! Needs root; skips (with a message) otherwise. Each test has its own state root and ids.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::{Bundle, Out, Runtime};
use serde_json::{json, Value};

fn read_host(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Waits until `file` (a host path) exists; fails after 10 s.
fn wait_file(file: &Path) -> Result<()> {
    ensure!(
        common::wait_until(Duration::from_secs(10), || file.exists()),
        "{} never appeared",
        file.display()
    );
    Ok(())
}

#[test]
fn lifecycle_create_start_kill_delete() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("life");
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'echo usr1 >> /sig' USR1; trap 'echo term >> /sig; exit 0' TERM; \
         echo up > /ready; while :; do sleep 0.05; done",
    ])?;
    b.write()?;
    let bundle = b.path().to_str().unwrap();
    rt.run(&["create", "-b", bundle, &id])?.ok()?;

    let st = rt.state(&id)?;
    for k in [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
    ] {
        ensure!(st.get(k).is_some(), "state lacks {k}: {st}");
    }
    ensure!(st["status"] == "created", "{st}");
    ensure!(st["id"] == id.as_str());
    ensure!(Path::new(st["bundle"].as_str().unwrap()).canonicalize()? == b.path().canonicalize()?);
    ensure!(
        Path::new(st["rootfs"].as_str().unwrap()).canonicalize()? == b.rootfs().canonicalize()?
    );
    ensure!(st["ociVersion"].as_str().unwrap().starts_with("1."));
    ensure!(st["created"].as_str().unwrap().ends_with('Z'));
    let pid = st["pid"].as_i64().context("pid")? as i32;
    ensure!(
        pid > 0 && common::pid_alive(pid),
        "created: init must exist"
    );
    // The user process has not run yet.
    ensure!(!b.rootfs().join("ready").exists());

    rt.run(&["start", &id])?.ok()?;
    wait_file(&b.rootfs().join("ready"))?;
    ensure!(rt.state(&id)?["status"] == "running");
    ensure!(rt.state(&id)?["pid"].as_i64() == Some(pid as i64));
    // start twice is refused.
    ensure!(rt.run(&["start", &id])?.code != 0);

    // Signals by name, with and without SIG, and by number.
    let sig = b.rootfs().join("sig");
    for (n, s) in ["USR1", "SIGUSR1", &libc::SIGUSR1.to_string()]
        .iter()
        .enumerate()
    {
        rt.run(&["kill", &id, s])?.ok()?;
        ensure!(
            common::wait_until(Duration::from_secs(5), || read_host(&sig).lines().count()
                == n + 1),
            "signal {s} not delivered: {:?}",
            read_host(&sig)
        );
    }
    ensure!(rt.run(&["kill", &id, "NOSUCHSIG"])?.code != 0);

    // A running container is not deleted without --force.
    let d = rt.run(&["delete", &id])?;
    ensure!(d.code != 0, "delete of a running container succeeded");
    ensure!(d.stderr.contains("running"), "{}", d.stderr);
    ensure!(rt.state(&id)?["status"] == "running");

    rt.run(&["kill", &id, &libc::SIGTERM.to_string()])?.ok()?;
    ensure!(common::wait_until(Duration::from_secs(5), || {
        rt.state(&id).is_ok_and(|s| s["status"] == "stopped")
    }));
    ensure!(read_host(&sig).ends_with("term\n"));
    ensure!(!common::pid_alive(pid));
    ensure!(rt.state(&id)?["pid"] == 0, "stopped pid as runc prints it");

    rt.run(&["delete", &id])?.ok()?;
    ensure!(rt.run(&["state", &id])?.code != 0);
    ensure!(!rt.state_dir(&id).exists());
    ensure!(common::cgroup_dirs(&id).is_empty());
    Ok(())
}

#[test]
fn kill_by_name_stops_a_created_container_with_sigkill() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("killc");
    let b = Bundle::new(&["sleep", "1000"])?;
    b.write()?;
    rt.run(&["create", "-b", b.path().to_str().unwrap(), &id])?
        .ok()?;
    rt.run(&["kill", &id, "KILL"])?.ok()?;
    ensure!(common::wait_until(Duration::from_secs(5), || {
        rt.state(&id).is_ok_and(|s| s["status"] == "stopped")
    }));
    rt.run(&["delete", &id])?.ok()?;
    Ok(())
}

#[test]
fn run_propagates_the_exit_code_and_output() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    for code in [0, 3, 42] {
        let id = rt.id("exit");
        let b = Bundle::new(&[
            "sh",
            "-c",
            &format!("echo out-{code}; echo err >&2; exit {code}"),
        ])?;
        let out = rt.run_fg(&b, &id)?;
        ensure!(out.code == code, "run exit {} != {code}: {out:?}", out.code);
        ensure!(out.stdout == format!("out-{code}\n"), "{out:?}");
        ensure!(out.stderr == "err\n", "{out:?}");
        // run without --keep deletes the container.
        ensure!(!rt.state_dir(&id).exists());
    }
    // A process killed by a signal: 128 + signal, like a shell.
    let id = rt.id("exitsig");
    let b = Bundle::new(&["sh", "-c", "sh -c 'kill -9 $$'; exit $?"])?;
    let out = rt.run_fg(&b, &id)?;
    ensure!(out.code == 128 + libc::SIGKILL, "{out:?}");
    Ok(())
}

#[test]
fn exec_joins_namespaces_filesystem_and_cgroup() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("exec");
    let mut b = Bundle::new(&["sh", "-c", "echo from-init > /tmp/marker; sleep 1000"])?;
    b.config["hostname"] = json!("exec-host");
    let pid = rt.run_detached(&b, &id)?;
    wait_file(&b.rootfs().join("tmp/marker"))?;

    let out = rt
        .run(&[
            "exec",
            &id,
            "sh",
            "-c",
            "hostname; cat /tmp/marker; readlink /proc/self/ns/pid; readlink /proc/self/ns/net; \
             readlink /proc/self/ns/mnt; cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/self/cgroup",
        ])?
        .ok()?;
    let lines: Vec<&str> = out.stdout.lines().collect();
    ensure!(lines.len() > 6, "{out:?}");
    ensure!(lines[0] == "exec-host", "{out:?}");
    ensure!(lines[1] == "from-init", "{out:?}");
    let host_ns = |n: &str| std::fs::read_link(format!("/proc/{pid}/ns/{n}")).unwrap();
    ensure!(Path::new(lines[2]) == host_ns("pid"), "pid ns: {out:?}");
    ensure!(Path::new(lines[3]) == host_ns("net"), "net ns: {out:?}");
    ensure!(Path::new(lines[4]) == host_ns("mnt"), "mnt ns: {out:?}");
    let init_cmdline = read_host(Path::new(&format!("/proc/{pid}/cmdline"))).replace('\0', " ");
    ensure!(lines[5] == init_cmdline, "pid 1 is not the init: {out:?}");
    // The exec'd process is in the container's cgroup, in every hierarchy the init is in.
    let init_cg = read_host(Path::new(&format!("/proc/{pid}/cgroup")));
    let exec_cg: Vec<&str> = lines[6..].to_vec();
    ensure!(
        exec_cg.iter().any(|l| l.ends_with(&format!("/berth/{id}"))),
        "{out:?}"
    );
    for l in init_cg.lines() {
        ensure!(
            exec_cg.contains(&l),
            "init cgroup line {l:?} not in exec's {exec_cg:?}"
        );
    }

    // A file written by exec is seen by the container, and exit codes propagate.
    rt.run(&["exec", &id, "sh", "-c", "echo from-exec > /tmp/e"])?
        .ok()?;
    ensure!(read_host(&b.rootfs().join("tmp/e")) == "from-exec\n");
    ensure!(rt.run(&["exec", &id, "sh", "-c", "exit 7"])?.code == 7);

    // exec -d with a pid file; ps --format json lists it beside the init.
    let pidfile = b.path().join("exec.pid");
    rt.run(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ])?
    .ok()?;
    let epid: i32 = read_host(&pidfile).trim().parse()?;
    let ps: Vec<i32> =
        serde_json::from_str(&rt.run(&["ps", "--format", "json", &id])?.ok()?.stdout)?;
    ensure!(
        ps.contains(&pid) && ps.contains(&epid),
        "ps {ps:?}: {pid} {epid}"
    );
    // Exec into a missing container is an error.
    ensure!(rt.run(&["exec", "no-such-container", "true"])?.code != 0);
    Ok(())
}

#[test]
fn pause_freezes_and_resume_thaws() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("pause");
    let b = Bundle::new(&[
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; usleep 5000; done",
    ])?;
    rt.run_detached(&b, &id)?;
    let count = b.rootfs().join("tmp/count");
    let read = || -> u64 { read_host(&count).trim().parse().unwrap_or(0) };
    ensure!(common::wait_until(Duration::from_secs(5), || read() > 2));

    rt.run(&["pause", &id])?.ok()?;
    ensure!(rt.state(&id)?["status"] == "paused");
    let a = read();
    std::thread::sleep(Duration::from_millis(400));
    ensure!(
        read() == a,
        "a paused container made progress: {a} -> {}",
        read()
    );
    // Paused: not deletable without force, not pausable twice.
    ensure!(rt.run(&["delete", &id])?.code != 0);
    ensure!(rt.run(&["pause", &id])?.code != 0);

    rt.run(&["resume", &id])?.ok()?;
    ensure!(rt.state(&id)?["status"] == "running");
    ensure!(common::wait_until(Duration::from_secs(5), || read() > a + 2));
    ensure!(rt.run(&["resume", &id])?.code != 0);
    Ok(())
}

#[test]
fn hooks_run_in_order_with_the_state_on_stdin() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("hooks");
    let mut b = Bundle::new(&["sh", "-c", "echo ran > /hooked/process"])?;
    let rootfs = b.rootfs();
    let marks = rootfs.join("hooked");
    std::fs::create_dir(&marks)?;
    // Each hook appends its name to an order file and saves its stdin.
    // Host-side hooks see the host's paths; startContainer runs after pivot_root, inside the
    // container, so it writes to the same directory through the container's path.
    let hook = |name: &str, dir: &Path| {
        json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {d}/{name}.json; echo {name} >> {d}/order", d = dir.display())],
        })
    };
    b.config["hooks"] = json!({
        "prestart": [hook("prestart", &marks)],
        "createRuntime": [hook("createRuntime", &marks)],
        "createContainer": [hook("createContainer", &marks)],
        "startContainer": [hook("startContainer", Path::new("/hooked"))],
        "poststart": [hook("poststart", &marks)],
        "poststop": [hook("poststop", &marks)],
    });
    b.write()?;
    let bundle = b.path().to_str().unwrap();
    rt.run(&["create", "-b", bundle, &id])?.ok()?;
    let created = ["prestart", "createRuntime", "createContainer"];
    for h in created {
        ensure!(
            marks.join(format!("{h}.json")).exists(),
            "{h} did not run at create"
        );
    }
    ensure!(!marks.join("startContainer.json").exists());
    rt.run(&["start", &id])?.ok()?;
    wait_file(&marks.join("process"))?;
    ensure!(marks.join("poststart.json").exists());
    ensure!(common::wait_until(Duration::from_secs(5), || {
        rt.state(&id).is_ok_and(|s| s["status"] == "stopped")
    }));
    rt.run(&["delete", &id])?.ok()?;
    let order: Vec<String> = read_host(&marks.join("order"))
        .lines()
        .map(String::from)
        .collect();
    let want = [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ];
    // prestart and createRuntime run at the same point; the rest in lifecycle order, except
    // that poststart (run by `start`) and startContainer (run by the init after `start` let it
    // go) may finish in either order, as with runc.
    ensure!(order.len() == 6, "hooks ran {order:?}");
    let pos = |h: &str| order.iter().position(|o| o == h).unwrap_or(usize::MAX);
    ensure!(pos("prestart") < pos("createContainer"), "{order:?}");
    ensure!(pos("createRuntime") < pos("createContainer"), "{order:?}");
    ensure!(pos("createContainer") < pos("startContainer"), "{order:?}");
    ensure!(pos("createContainer") < pos("poststart"), "{order:?}");
    ensure!(pos("poststop") == 5, "{order:?}");
    let pid = {
        let v: Value = serde_json::from_str(&read_host(&marks.join("prestart.json")))?;
        v["pid"].as_i64().unwrap_or(0)
    };
    ensure!(pid > 0, "prestart got no pid");
    for h in want {
        let text = read_host(&marks.join(format!("{h}.json")));
        let v: Value = serde_json::from_str(&text).with_context(|| format!("{h}: {text:?}"))?;
        ensure!(v["id"] == id.as_str(), "{h}: {v}");
        ensure!(v["ociVersion"]
            .as_str()
            .is_some_and(|s| s.starts_with("1.")));
        ensure!(
            Path::new(v["bundle"].as_str().unwrap_or("")).canonicalize()?
                == b.path().canonicalize()?,
            "{h}: {v}"
        );
        let status = v["status"].as_str().unwrap_or("");
        let ok = match h {
            "prestart" | "createRuntime" | "createContainer" | "startContainer" => {
                matches!(status, "creating" | "created")
            }
            "poststart" => matches!(status, "running" | "stopped"),
            _ => status == "stopped",
        };
        ensure!(ok, "{h} got status {status:?}");
        // Host-side hooks get the host pid; the in-container ones get the init's pid as the
        // container sees it (what runc passes too).
        if matches!(h, "prestart" | "createRuntime" | "poststart") {
            ensure!(v["pid"].as_i64() == Some(pid), "{h} pid: {v}");
        }
    }
    Ok(())
}

#[test]
fn a_failing_hook_fails_create_and_leaves_nothing() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("badhook");
    let mut b = Bundle::new(&["true"])?;
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/false", "args": ["false"]}]});
    b.write()?;
    let out = rt.run(&["create", "-b", b.path().to_str().unwrap(), &id])?;
    out.one_error_line()?;
    nothing_left(&rt, &id, &b)?;
    Ok(())
}

#[test]
fn user_namespace_maps_root_to_100000() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("userns");
    let shared = tempfile::tempdir()?;
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o777))?;
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; touch /shared/made-inside",
    ])?;
    b.add_namespace("user", None);
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.add_mount(
        json!({"destination": "/shared", "type": "bind", "source": shared.path(),
                       "options": ["rbind", "rw"]}),
    );
    std::fs::create_dir(b.rootfs().join("shared"))?;
    let out = rt.run_fg(&b, &id)?.ok()?;
    check_userns_output(&out, shared.path())?;
    // The same through create + start (the init then waits on the exec fifo as mapped root).
    std::fs::remove_file(shared.path().join("made-inside"))?;
    let id = rt.id("userns-cs");
    b.config["process"]["args"] = json!([
        "sh",
        "-c",
        "{ cat /proc/self/uid_map /proc/self/gid_map; id -u; } > /shared/log; touch /shared/made-inside"
    ]);
    b.write()?;
    rt.run(&["create", "-b", b.path().to_str().unwrap(), &id])?
        .ok()?;
    rt.run(&["start", &id])?.ok()?;
    wait_file(&shared.path().join("made-inside"))?;
    let out = Out {
        code: 0,
        stdout: read_host(&shared.path().join("log")),
        stderr: String::new(),
        what: "create+start".into(),
    };
    check_userns_output(&out, shared.path())
}

fn check_userns_output(out: &Out, shared: &Path) -> Result<()> {
    let maps: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .take(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    ensure!(maps.len() == 2, "{out:?}");
    for m in &maps {
        ensure!(m == &["0", "100000", "65536"], "map {m:?}: {out:?}");
    }
    ensure!(out.stdout.lines().nth(2) == Some("0"), "{out:?}");
    let md = std::fs::metadata(shared.join("made-inside"))?;
    ensure!(
        md.uid() == 100000 && md.gid() == 100000,
        "owner {}:{}",
        md.uid(),
        md.gid()
    );
    Ok(())
}

/// Deletes a named network namespace on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn joins_an_existing_network_namespace_by_path() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("netns");
    let name = format!("berth-e2e-{}", id);
    let st = Command::new("ip").args(["netns", "add", &name]).status()?;
    ensure!(st.success(), "ip netns add");
    let _ns = Netns(name.clone());
    let path = format!("/run/netns/{name}");
    ensure!(Command::new("ip")
        .args(["-n", &name, "addr", "add", "127.0.0.77/8", "dev", "lo"])
        .status()?
        .success());
    let mut b = Bundle::new(&["sh", "-c", "readlink /proc/self/ns/net; ip addr"])?;
    b.add_namespace("network", Some(&path));
    let out = rt.run_fg(&b, &id)?.ok()?;
    let ino = std::fs::metadata(&path)?.ino();
    ensure!(
        out.stdout.lines().next() == Some(&format!("net:[{ino}]")),
        "{out:?} (netns inode {ino})"
    );
    ensure!(out.stdout.contains("127.0.0.77"), "{out:?}");
    Ok(())
}

#[test]
fn hostname_domainname_and_sysctl() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("uts");
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "hostname; cat /proc/sys/kernel/domainname; cat /proc/sys/net/ipv4/ip_forward",
    ])?;
    b.config["hostname"] = json!("e2e-host");
    b.config["domainname"] = json!("e2e.example");
    let host_fwd = read_host(Path::new("/proc/sys/net/ipv4/ip_forward"));
    let want = if host_fwd.trim() == "1" { "0" } else { "1" };
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": want});
    let out = rt.run_fg(&b, &id)?.ok()?;
    ensure!(
        out.stdout == format!("e2e-host\ne2e.example\n{want}\n"),
        "{out:?}"
    );
    ensure!(read_host(Path::new("/proc/sys/net/ipv4/ip_forward")) == host_fwd);
    Ok(())
}

#[test]
fn rlimits_are_applied() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("rlimit");
    let mut b = Bundle::new(&["sh", "-c", "ulimit -n; ulimit -Hn"])?;
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 777, "hard": 888}]);
    let out = rt.run_fg(&b, &id)?.ok()?;
    ensure!(out.stdout == "777\n888\n", "{out:?}");
    Ok(())
}

#[test]
fn readonly_rootfs_refuses_writes() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("rootro");
    let mut b = Bundle::new(&["sh", "-c", "touch /written; echo rc=$?"])?;
    b.config["root"]["readonly"] = json!(true);
    let out = rt.run_fg(&b, &id)?.ok()?;
    ensure!(out.stdout.trim() != "rc=0", "{out:?}");
    ensure!(out.stderr.contains("Read-only file system"), "{out:?}");
    ensure!(!b.rootfs().join("written").exists());
    Ok(())
}

#[test]
fn bind_mounts_ro_rw_and_tmpfs_options() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("mounts");
    let ro = tempfile::tempdir()?;
    let rw = tempfile::tempdir()?;
    std::fs::write(ro.path().join("file"), "host-ro\n")?;
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /ro/file; echo x > /ro/new || echo ro-refused; echo inside > /rw/new && echo rw-ok; \
         grep ' /scratch ' /proc/self/mountinfo; printf '#!/bin/sh\\necho ran\\n' > /scratch/s; \
         chmod +x /scratch/s; /scratch/s || echo noexec-refused",
    ])?;
    b.add_mount(json!({"destination": "/ro", "type": "bind", "source": ro.path(), "options": ["bind", "ro"]}));
    b.add_mount(json!({"destination": "/rw", "type": "bind", "source": rw.path(), "options": ["rbind", "rw"]}));
    b.add_mount(
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=1770"]}),
    );
    let out = rt.run_fg(&b, &id)?.ok()?;
    let l: Vec<&str> = out.stdout.lines().collect();
    ensure!(l.first() == Some(&"host-ro"), "{out:?}");
    ensure!(l.contains(&"ro-refused") && l.contains(&"rw-ok"), "{out:?}");
    ensure!(!ro.path().join("new").exists());
    ensure!(read_host(&rw.path().join("new")) == "inside\n");
    let mi = l
        .iter()
        .find(|l| l.contains(" /scratch "))
        .context("no /scratch mount")?;
    for opt in ["noexec", "nosuid", "nodev", "size=1024k", "mode=1770"] {
        ensure!(mi.contains(opt), "tmpfs lacks {opt}: {mi}");
    }
    ensure!(
        l.contains(&"noexec-refused") && !l.contains(&"ran"),
        "{out:?}"
    );
    // The mount points were made inside the rootfs; nothing was mounted on the host.
    ensure!(b.rootfs().join("scratch").is_dir());
    ensure!(common::host_mounts_mentioning(b.path().to_str().unwrap()).is_empty());
    Ok(())
}

#[test]
fn masked_and_readonly_paths() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("mask");
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo [$(cat /secret-dir/secret)] [$(cat /secret-file)]; \
         echo 1 > /proc/sys/kernel/ns_last_pid || echo sys-refused; \
         echo x > /ro-dir/f || echo rodir-refused",
    ])?;
    std::fs::create_dir(b.rootfs().join("secret-dir"))?;
    std::fs::write(b.rootfs().join("secret-dir/secret"), "s1")?;
    std::fs::write(b.rootfs().join("secret-file"), "s2")?;
    std::fs::create_dir(b.rootfs().join("ro-dir"))?;
    let masked = b.config["linux"]["maskedPaths"].as_array_mut().unwrap();
    masked.push(json!("/secret-dir"));
    masked.push(json!("/secret-file"));
    let ro = b.config["linux"]["readonlyPaths"].as_array_mut().unwrap();
    ro.push(json!("/ro-dir"));
    let out = rt.run_fg(&b, &id)?.ok()?;
    let l: Vec<&str> = out.stdout.lines().collect();
    ensure!(
        l.first() == Some(&"[] []"),
        "masked content visible: {out:?}"
    );
    ensure!(
        l.contains(&"sys-refused") && l.contains(&"rodir-refused"),
        "{out:?}"
    );
    // The host files are untouched.
    ensure!(read_host(&b.rootfs().join("secret-file")) == "s2");
    Ok(())
}

#[test]
fn cgroup_limits_update_and_stats() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("cgroup");
    let mut b = Bundle::new(&["sleep", "1000"])?;
    let limit: i64 = 64 << 20;
    b.config["linux"]["resources"]["memory"] = json!({"limit": limit});
    b.config["linux"]["resources"]["pids"] = json!({"limit": 50});
    b.config["linux"]["resources"]["cpu"] = json!({"shares": 512});
    let pid = rt.run_detached(&b, &id)?;
    let mem = common::cgroup_dir("memory", &id).context("no memory cgroup")?;
    let memfile = if mem.join("memory.limit_in_bytes").exists() {
        mem.join("memory.limit_in_bytes")
    } else {
        mem.join("memory.max")
    };
    ensure!(
        read_host(&memfile).trim() == limit.to_string(),
        "{}",
        read_host(&memfile)
    );
    let pids = common::cgroup_dir("pids", &id).context("no pids cgroup")?;
    ensure!(read_host(&pids.join("pids.max")).trim() == "50");
    ensure!(common::pids_in_cgroup_of(&id).contains(&pid));

    // update --resources - changes the limit.
    let new: i64 = 96 << 20;
    rt.run_stdin(
        &["update", "--resources", "-", &id],
        json!({"memory": {"limit": new}}).to_string().as_bytes(),
    )?
    .ok()?;
    ensure!(
        read_host(&memfile).trim() == new.to_string(),
        "{}",
        read_host(&memfile)
    );

    // events --stats: one JSON event with the memory limit and pid count.
    let ev: Value = serde_json::from_str(&rt.run(&["events", "--stats", &id])?.ok()?.stdout)?;
    ensure!(ev["type"] == "stats" && ev["id"] == id.as_str(), "{ev}");
    ensure!(ev["data"]["memory"]["usage"]["limit"] == new, "{ev}");
    ensure!(
        ev["data"]["memory"]["usage"]["usage"].as_u64() > Some(0),
        "{ev}"
    );
    ensure!(ev["data"]["pids"]["current"] == 1, "{ev}");
    ensure!(ev["data"]["pids"]["limit"] == 50, "{ev}");
    ensure!(
        ev["data"]["cpu"]["usage"]["total"].as_u64().is_some(),
        "{ev}"
    );
    Ok(())
}

/// Receives one fd over SCM_RIGHTS from a connected unix stream.
fn recv_fd(sock: &std::os::unix::net::UnixStream) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut buf = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::c_int>() as u32) } as usize;
    let mut cbuf = vec![0u8; space];
    // SAFETY: msghdr is plain data; all-zero is a valid starting value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg points at our live buffers for the duration of the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        bail!("recvmsg: {}", std::io::Error::last_os_error());
    }
    // SAFETY: msg was filled by recvmsg; CMSG_FIRSTHDR checks the control length.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    ensure!(!cmsg.is_null(), "no control message on the console socket");
    // SAFETY: cmsg is non-null and within cbuf.
    let (level, typ) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
    ensure!(level == libc::SOL_SOCKET && typ == libc::SCM_RIGHTS);
    // SAFETY: an SCM_RIGHTS message carries at least one int; read it unaligned.
    let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::c_int) };
    // SAFETY: the kernel installed this fd for us; we own it now.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

#[test]
fn console_socket_receives_the_pty_master() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("tty");
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "tty; echo hello-from-the-tty; test -t 0 && echo stdin-is-tty",
    ])?;
    b.config["process"]["terminal"] = json!(true);
    b.write()?;
    let sock_path = b.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path)?;
    let t = std::thread::spawn(move || -> Result<String> {
        let (conn, _) = listener.accept()?;
        let master = recv_fd(&conn)?;
        let mut f = std::fs::File::from(master);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match std::io::Read::read(&mut f, &mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                // EIO: every slave fd is closed (the container exited).
                Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(String::from_utf8_lossy(&out).into_owned())
    });
    rt.run(&[
        "run",
        "-d",
        "--console-socket",
        sock_path.to_str().unwrap(),
        "-b",
        b.path().to_str().unwrap(),
        &id,
    ])?
    .ok()?;
    let out = t.join().unwrap()?;
    ensure!(out.contains("/dev/pts/"), "{out:?}");
    ensure!(out.contains("hello-from-the-tty\r\n"), "{out:?}");
    ensure!(out.contains("stdin-is-tty"), "{out:?}");
    Ok(())
}

#[test]
fn spec_and_features_print_json() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let dir = tempfile::tempdir()?;
    rt.run(&["spec", "--bundle", dir.path().to_str().unwrap()])?
        .ok()?;
    let spec: Value = serde_json::from_str(&read_host(&dir.path().join("config.json")))?;
    ensure!(spec["ociVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("1.")));
    ensure!(spec["process"]["args"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    ensure!(spec["root"]["path"] == "rootfs", "{spec}");
    ensure!(spec["linux"]["namespaces"]
        .as_array()
        .is_some_and(|n| n.iter().any(|n| n["type"] == "mount")));
    // A second spec does not overwrite.
    let again = rt.run(&["spec", "--bundle", dir.path().to_str().unwrap()])?;
    again.one_error_line()?;

    let f: Value = serde_json::from_str(&rt.run(&["features"])?.ok()?.stdout)?;
    ensure!(f["ociVersionMin"]
        .as_str()
        .is_some_and(|v| v.starts_with("1.")));
    ensure!(f["ociVersionMax"]
        .as_str()
        .is_some_and(|v| v.starts_with("1.")));
    let ns: Vec<&str> = f["linux"]["namespaces"]
        .as_array()
        .context("namespaces")?
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for n in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"] {
        ensure!(ns.contains(&n), "features lacks namespace {n}");
    }
    ensure!(f["hooks"].as_array().is_some_and(|h| h.len() == 6));
    Ok(())
}

// ---- bad input: one clear line, non-zero exit, nothing left behind ----

/// Fails if container `id` left a state dir, a cgroup, a process or a mount.
fn nothing_left(rt: &Runtime, id: &str, b: &Bundle) -> Result<()> {
    ensure!(
        !rt.state_dir(id).exists(),
        "state dir left: {}",
        rt.state_dir(id).display()
    );
    ensure!(
        common::cgroup_dirs(id).is_empty(),
        "cgroup left: {:?}",
        common::cgroup_dirs(id)
    );
    ensure!(common::pids_in_cgroup_of(id).is_empty(), "process left");
    // No process runs with its root or cwd in the bundle.
    let bpath = b.path().to_str().unwrap().to_string();
    for e in std::fs::read_dir("/proc")?.flatten() {
        if e.file_name()
            .to_str()
            .is_some_and(|s| s.parse::<u32>().is_ok())
        {
            for link in ["root", "cwd"] {
                if let Ok(t) = std::fs::read_link(e.path().join(link)) {
                    ensure!(
                        !t.to_string_lossy().starts_with(&bpath),
                        "process {:?} still in the bundle",
                        e.path()
                    );
                }
            }
        }
    }
    let mounts = common::host_mounts_mentioning(&bpath);
    ensure!(mounts.is_empty(), "mounts left: {mounts:?}");
    let exe = common::host_mounts_mentioning(".berth-runc-exe");
    ensure!(exe.is_empty(), "binary bind mount left: {exe:?}");
    Ok(())
}

/// Runs `create` of `b` as `id`; checks the failure and returns its one stderr line.
fn create_fails(rt: &Runtime, b: &Bundle, id: &str) -> Result<String> {
    let out: Out = rt.run(&["create", "-b", b.path().to_str().unwrap(), id])?;
    let line = out.one_error_line()?;
    nothing_left(rt, id, b)?;
    // run fails the same way.
    let out = rt.run(&["run", "-b", b.path().to_str().unwrap(), id])?;
    out.one_error_line()?;
    nothing_left(rt, id, b)?;
    Ok(line)
}

#[test]
fn bad_input_malformed_config() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("badjson");
    let b = Bundle::new(&["true"])?;
    std::fs::write(
        b.path().join("config.json"),
        "{\"ociVersion\": \"1.0.2\", \"process\": ",
    )?;
    let line = create_fails(&rt, &b, &id)?;
    ensure!(line.contains("config.json"), "{line}");
    Ok(())
}

#[test]
fn bad_input_missing_rootfs() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("noroot");
    let b = Bundle::new(&["true"])?;
    b.write()?;
    std::fs::remove_dir_all(b.rootfs())?;
    let line = create_fails(&rt, &b, &id)?;
    ensure!(line.contains("rootfs"), "{line}");
    Ok(())
}

#[test]
fn bad_input_unknown_namespace() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("badns");
    let mut b = Bundle::new(&["true"])?;
    b.add_namespace("bogus", None);
    b.write()?;
    let line = create_fails(&rt, &b, &id)?;
    ensure!(line.contains("bogus"), "{line}");
    Ok(())
}

#[test]
fn bad_input_missing_program() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("noprog");
    let b = Bundle::new(&["/no/such-program", "arg"])?;
    b.write()?;
    let line = create_fails(&rt, &b, &id)?;
    ensure!(line.contains("/no/such-program"), "{line}");
    let id = rt.id("noprog2");
    let b = Bundle::new(&["no-such-program-in-path"])?;
    b.write()?;
    let line = create_fails(&rt, &b, &id)?;
    ensure!(line.contains("no-such-program-in-path"), "{line}");
    Ok(())
}

#[test]
fn bad_input_bad_id() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let b = Bundle::new(&["true"])?;
    b.write()?;
    let parent = rt.root.path().parent().unwrap();
    for bad in ["../x", "a/b", ".."] {
        let out = rt.run(&["create", "-b", b.path().to_str().unwrap(), bad])?;
        let line = out.one_error_line()?;
        ensure!(line.contains(bad), "{bad:?}: {line}");
        ensure!(!parent.join("x").exists() && !rt.root.path().join("a").exists());
        ensure!(common::cgroup_dirs("x").is_empty());
    }
    ensure!(
        std::fs::read_dir(rt.root.path())
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
    Ok(())
}

#[test]
fn bad_input_id_already_in_use() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("dup");
    let b1 = Bundle::new(&["sleep", "1000"])?;
    let pid = rt.run_detached(&b1, &id)?;
    let b2 = Bundle::new(&["true"])?;
    b2.write()?;
    let out = rt.run(&["create", "-b", b2.path().to_str().unwrap(), &id])?;
    let line = out.one_error_line()?;
    ensure!(line.contains(&id), "{line}");
    // The first container is untouched.
    let st = rt.state(&id)?;
    ensure!(st["status"] == "running" && st["pid"] == pid, "{st}");
    ensure!(Path::new(st["bundle"].as_str().unwrap()).canonicalize()? == b1.path().canonicalize()?);
    ensure!(common::pids_in_cgroup_of(&id) == vec![pid]);
    ensure!(common::host_mounts_mentioning(b2.path().to_str().unwrap()).is_empty());
    Ok(())
}

#[test]
fn bad_input_non_root_without_user_namespace() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("nonroot");
    let b = Bundle::new(&["true"])?;
    b.write()?;
    let state = tempfile::tempdir()?;
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o777))?;
    let out = common::run_cmd(
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&rt.bin)
            .arg("--root")
            .arg(state.path().join("root"))
            .args(["run", "-b", b.path().to_str().unwrap(), &id]),
        None,
        Duration::from_secs(30),
    )?;
    let line = out.one_error_line()?;
    ensure!(
        line.contains("root") || line.contains("user namespace"),
        "{line}"
    );
    ensure!(!state.path().join("root").join(&id).exists());
    nothing_left(&rt, &id, &b)?;
    Ok(())
}
