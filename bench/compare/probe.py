#!/usr/bin/env python3
"""probe.py — the timing steps of bench/compare that a shell does badly. Each prints one JSON object.

  http --port P --timeout S [--kill] -- CMD...
      Spawns CMD and polls http://127.0.0.1:P/ until a reply that starts with "HTTP/1." (a proxy that
      accepts and then closes does not count): {"ms": spawn → first reply, "rc": CMD's exit code or
      null, "out": CMD's stdout}. --kill: CMD keeps running (a VM); it is terminated after the reply.
  boot --timeout S --marker M -- CMD...
      Spawns CMD (a VM writing its serial console to stdout), notes when a line containing M
      appears and when CMD exits: {"init_ms", "exit_ms", "rc", "tail"}; killed at the timeout.
  qmp --timeout S -- CMD...
      CMD is QEMU with `-qmp stdio`: {"ready_ms": spawn → QMP greeting, "exit_ms": → exit after quit}.
  cpu --secs S [PID...]
      Samples /proc/stat and the PIDs' utime+stime (/proc/PID/stat) over S seconds:
      {"host_busy_pct": busy share of all CPUs, "procs_pct": the PIDs' CPU as % of all CPUs,
       "procs": how many PIDs were still there at the end}.
"""
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time


def out(obj):
    print(json.dumps(obj))


def split_cmd(argv):
    if "--" not in argv:
        sys.exit("probe: missing -- before the command")
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def opts(args):
    o = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("--kill",):
            o[a[2:]] = True
            i += 1
        else:
            o[a[2:]] = args[i + 1]
            i += 2
    return o


def http_once(port):
    """One GET; True when the reply starts like HTTP."""
    s = socket.socket()
    s.settimeout(0.5)
    try:
        s.connect(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        return s.recv(16).startswith(b"HTTP/1.")
    except OSError:
        return False
    finally:
        s.close()


def cmd_http(argv):
    o, cmd = split_cmd(argv)
    o = opts(o)
    port, timeout = int(o["port"]), float(o["timeout"])
    # CMD's output goes to files, not pipes: a detached container (crun run -d) inherits them.
    so_f, se_f = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=so_f, stderr=se_f, start_new_session=True)
    ms = None
    while time.monotonic() - t0 < timeout:
        if http_once(port):
            ms = (time.monotonic() - t0) * 1e3
            break
        if not o.get("kill") and p.poll() not in (None, 0):
            break  # a detaching client that failed: no server will come
        time.sleep(0.003)
    if o.get("kill"):
        os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
    so_f.seek(0)
    se_f.seek(0)
    stdout, stderr = so_f.read().decode(errors="replace"), se_f.read().decode(errors="replace")
    out({"ms": ms, "rc": p.returncode, "out": stdout.strip()[-200:], "err": stderr.strip()[-300:]})


def cmd_boot(argv):
    o, cmd = split_cmd(argv)
    o = opts(o)
    timeout, marker = float(o["timeout"]), o["marker"].encode()
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                         start_new_session=True)
    buf = b""
    init_ms = None
    fd = p.stdout.fileno()
    while True:
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            break
        r, _, _ = select.select([fd], [], [], min(left, 0.5))
        if r:
            chunk = os.read(fd, 65536)
            if not chunk:
                p.wait()
                break
            buf += chunk
            if init_ms is None and marker in buf:
                init_ms = (time.monotonic() - t0) * 1e3
            buf = buf[-8192:]
    exit_ms = (time.monotonic() - t0) * 1e3
    timed_out = exit_ms >= timeout * 1e3
    tail = [l for l in buf.decode(errors="replace").replace("\r", "").splitlines() if l.strip()][-4:]
    out({"init_ms": init_ms, "exit_ms": None if timed_out else exit_ms, "rc": p.returncode,
         "timed_out": timed_out, "tail": " | ".join(tail)[-400:]})


def cmd_qmp(argv):
    o, cmd = split_cmd(argv)
    o = opts(o)
    timeout = float(o["timeout"])
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    ready_ms = None
    fd = p.stdout.fileno()
    buf = b""
    while time.monotonic() - t0 < timeout:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            if b'"QMP"' in buf:
                ready_ms = (time.monotonic() - t0) * 1e3
                break
    if ready_ms is not None:
        try:
            p.stdin.write(b'{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n')
            p.stdin.flush()
        except BrokenPipeError:
            pass  # QEMU is gone already: its exit code and stderr say why
    try:
        _, err = p.communicate(timeout=max(1.0, timeout - (time.monotonic() - t0)))
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        _, err = p.communicate()
    exit_ms = (time.monotonic() - t0) * 1e3
    out({"ready_ms": ready_ms, "exit_ms": exit_ms, "rc": p.returncode, "err": err.decode(errors="replace")[-300:]})


def proc_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    except (OSError, IndexError, ValueError):
        return None


def host_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v[:8]), idle  # user..steal (guest time is already inside user)


def cmd_cpu(argv):
    o = opts(argv[:2])
    secs = float(o["secs"])
    pids = [int(p) for p in argv[2:] if p]
    ncpu = os.cpu_count() or 1
    before = {p: proc_ticks(p) for p in pids}
    t0, i0 = host_ticks()
    time.sleep(secs)
    t1, i1 = host_ticks()
    after = {p: proc_ticks(p) for p in pids}
    hz = os.sysconf("SC_CLK_TCK")
    used = sum(after[p] - before[p] for p in pids if before[p] is not None and after[p] is not None)
    alive = sum(1 for p in pids if after[p] is not None)
    total = t1 - t0
    out({"host_busy_pct": 100.0 * (total - (i1 - i0)) / total if total else None,
         "procs_pct": 100.0 * used / hz / secs / ncpu, "procs": alive, "secs": secs, "cpus": ncpu})


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sub, argv = sys.argv[1], sys.argv[2:]
    {"http": cmd_http, "boot": cmd_boot, "qmp": cmd_qmp, "cpu": cmd_cpu}[sub](argv)


if __name__ == "__main__":
    main()
