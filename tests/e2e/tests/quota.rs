//! Disk quotas as Docker's users meet them: `--storage-opt size=` limits a container's writable
//! layer (berthd gives it a loop-mounted filesystem of that size under its data root), a write
//! past the limit fails with ENOSPC inside the container and nothing else is limited; bad sizes
//! and unknown options are refused at create with nothing made; removal leaves no quota
//! filesystem; `system df -v` measures containers whose layer lives there.
//!
//! Each test has its own berthd and so its own images and loop devices; a loop device is
//! attached with LO_FLAGS_AUTOCLEAR, so the guard's unmount releases it (checked below).

#[path = "common/berthd.rs"]
mod berthd;
mod common;

use std::time::Duration;

use anyhow::{ensure, Result};
use berthd::Berthd;
use common::wait_until;

const BB: &str = "busybox";

/// Loop devices backed by a file under `dir`.
fn loops_backed_by(dir: &std::path::Path) -> Vec<String> {
    let dir = dir.to_string_lossy().to_string();
    std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let back = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            (name.starts_with("loop") && back.trim().starts_with(&dir)).then_some(name)
        })
        .collect()
}

/// The quota filesystems' mount points and images.
fn quota_dirs(d: &Berthd) -> Vec<String> {
    let list = |p: std::path::PathBuf| -> Vec<String> {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("c-") || n.starts_with("v-"))
            .collect()
    };
    let mut v = list(d.data_root().join("quota/mnt"));
    v.extend(list(d.data_root().join("quota")));
    v.sort();
    v
}

#[test]
fn storage_opt_size_limits_the_writable_layer() -> Result<()> {
    let d = Berthd::with_busybox()?;
    let over = d.docker(&[
        "run",
        "--rm",
        "--storage-opt",
        "size=8M",
        BB,
        "sh",
        "-c",
        "dd if=/dev/zero of=/big bs=1M count=20",
    ])?;
    ensure!(
        over.code != 0,
        "a 20M write in an 8M layer succeeded: {over:?}"
    );
    ensure!(
        over.stderr.contains("No space left on device")
            || over.stdout.contains("No space left on device"),
        "{over:?}"
    );
    d.docker_ok(&[
        "run",
        "--rm",
        "--storage-opt",
        "size=8M",
        BB,
        "sh",
        "-c",
        "dd if=/dev/zero of=/ok bs=1M count=4 && sync",
    ])?;
    // Nothing else is limited: a container without a size, and the host next to the XFS.
    d.docker_ok(&[
        "run",
        "--rm",
        BB,
        "sh",
        "-c",
        "dd if=/dev/zero of=/big bs=1M count=20",
    ])?;
    let host_file = d.data_root().join("host-file");
    std::fs::write(&host_file, vec![0u8; 20 << 20])?;
    std::fs::remove_file(&host_file)?;
    // --rm removed both containers' quota filesystems (in the background).
    ensure!(
        wait_until(Duration::from_secs(10), || quota_dirs(&d).is_empty()),
        "left behind: {:?}",
        quota_dirs(&d)
    );
    // A running sized container has one auto-clearing loop device, released by the guard.
    d.docker_ok(&["run", "-d", "--storage-opt", "size=8M", BB, "sleep", "60"])?;
    let loops = loops_backed_by(&d.data_root());
    ensure!(loops.len() == 1, "loop devices: {loops:?}");
    let autoclear = std::fs::read_to_string(format!("/sys/block/{}/loop/autoclear", loops[0]))?;
    ensure!(autoclear.trim() == "1", "autoclear {autoclear:?}");
    let root = d.data_root();
    drop(d);
    ensure!(
        wait_until(Duration::from_secs(10), || loops_backed_by(&root)
            .is_empty()),
        "the guard left loop devices attached: {:?}",
        loops_backed_by(&root)
    );
    Ok(())
}

#[test]
fn bad_storage_opts_are_refused_with_nothing_made() -> Result<()> {
    let d = Berthd::with_busybox()?;
    for (opt, want) in [
        ("size=lots", "invalid size: 'lots'"),
        ("size=0", "invalid size: '0'"),
        ("size=-5M", "invalid size"),
        ("inodes=100", "unknown storage option"),
    ] {
        let o = d.docker(&["create", "--storage-opt", opt, BB, "true"])?;
        ensure!(o.code != 0, "{opt} accepted: {o:?}");
        ensure!(o.stderr.contains(want), "{opt}: {o:?}");
    }
    ensure!(d.docker_ok(&["ps", "-aq"])?.trim().is_empty());
    // Never needed: no quota filesystem made.
    ensure!(quota_dirs(&d).is_empty(), "{:?}", quota_dirs(&d));
    Ok(())
}

#[test]
fn sized_containers_are_measured_and_cleaned_up() -> Result<()> {
    let d = Berthd::with_busybox()?;
    d.docker_ok(&[
        "run",
        "--name",
        "q1",
        "--storage-opt",
        "size=16M",
        BB,
        "sh",
        "-c",
        "dd if=/dev/zero of=/data bs=1M count=3 && sync",
    ])?;
    let id = d.inspect("q1", "{{.Id}}")?;
    let want = vec![format!("c-{id}"), format!("c-{id}.img")];
    ensure!(quota_dirs(&d) == want, "{:?}", quota_dirs(&d));
    // system df -v: the layer in the XFS is measured (3 MiB written).
    let df = d.docker_ok(&[
        "system",
        "df",
        "-v",
        "--format",
        "{{range .Containers}}{{.Names}} {{.Size}}\n{{end}}",
    ])?;
    let line = df.lines().find(|l| l.starts_with("q1 ")).unwrap_or("");
    ensure!(line.contains("MB") || line.contains("MiB"), "df: {df}");
    let (code, body) = d.http("GET", "/system/df", b"")?;
    ensure!(code == 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body)?;
    let rw = v["Containers"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["Id"] == id.as_str()))
        .and_then(|c| c["SizeRw"].as_i64())
        .unwrap_or(0);
    ensure!(rw >= 3 << 20, "SizeRw {rw}: {body}");
    // A restarted container keeps its quota directory (and its data).
    d.docker_ok(&["start", "-a", "q1"])?;
    ensure!(quota_dirs(&d) == want, "{:?}", quota_dirs(&d));
    d.docker_ok(&["rm", "q1"])?;
    ensure!(
        wait_until(Duration::from_secs(10), || quota_dirs(&d).is_empty()),
        "left behind: {:?}",
        quota_dirs(&d)
    );
    Ok(())
}

#[test]
fn sized_volumes_are_limited_measured_and_cleaned_up() -> Result<()> {
    let d = Berthd::with_busybox()?;
    d.docker_ok(&["volume", "create", "-o", "size=20M", "sized"])?;
    let over = d.docker(&[
        "run",
        "--rm",
        "-v",
        "sized:/data",
        BB,
        "sh",
        "-c",
        "dd if=/dev/zero of=/data/big bs=1M count=30",
    ])?;
    ensure!(
        over.code != 0,
        "a 30M write in a 20M volume succeeded: {over:?}"
    );
    ensure!(over.stderr.contains("No space left on device"), "{over:?}");
    d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "sized:/data",
        BB,
        "sh",
        "-c",
        "rm -f /data/big && dd if=/dev/zero of=/data/ok bs=1M count=10 && sync",
    ])?;
    // The data is where the volume's Mountpoint says, and system df measures it.
    let mp = d.docker_ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "sized"])?;
    ensure!(
        std::fs::metadata(std::path::Path::new(mp.trim()).join("ok"))?.len() == 10 << 20,
        "{mp}"
    );
    let (code, body) = d.http("GET", "/system/df", b"")?;
    ensure!(code == 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body)?;
    let size = v["Volumes"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["Name"] == "sized"))
        .and_then(|x| x["UsageData"]["Size"].as_i64())
        .unwrap_or(0);
    ensure!(size >= 10 << 20, "UsageData.Size {size}: {body}");
    d.docker_ok(&["volume", "rm", "sized"])?;
    ensure!(
        quota_dirs(&d).is_empty(),
        "left behind: {:?}",
        quota_dirs(&d)
    );
    let bad = d.docker(&["volume", "create", "-o", "size=lots", "bad"])?;
    ensure!(bad.code != 0, "{bad:?}");
    Ok(())
}

#[test]
fn quota_filesystems_come_back_after_a_reboot_like_restart() -> Result<()> {
    let mut d = Berthd::with_busybox()?;
    let script = "cat /mark 2>/dev/null; echo kept >/mark; dd if=/dev/zero of=/big bs=1M count=20";
    let first = d.docker(&[
        "run",
        "--name",
        "keep",
        "--storage-opt",
        "size=8M",
        BB,
        "sh",
        "-c",
        script,
    ])?;
    ensure!(
        first.stderr.contains("No space left on device"),
        "{first:?}"
    );
    let id = d.inspect("keep", "{{.Id}}")?;
    d.kill9()?;
    // As after a reboot: the quota filesystem is no longer mounted (its loop device goes).
    let mnt = d.data_root().join(format!("quota/mnt/c-{id}"));
    let c = std::ffi::CString::new(mnt.to_string_lossy().as_bytes())?;
    // SAFETY: umount2 with a NUL-terminated path we own.
    let r = unsafe { libc::umount2(c.as_ptr(), 0) };
    ensure!(
        r == 0,
        "umount {mnt:?}: {}",
        std::io::Error::last_os_error()
    );
    d.restart()?;
    // Remounted at start: the data is there and the limit holds.
    let again = d.docker(&["start", "-a", "keep"])?;
    ensure!(again.stdout.contains("kept"), "{again:?}");
    ensure!(
        again.stderr.contains("No space left on device"),
        "{again:?}"
    );
    Ok(())
}
