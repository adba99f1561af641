"""Drives berthd with the Docker SDK for Python (docker-py 7) and prints one line per check
("ok NAME" or "FAIL NAME: why"), then "done". Run by tests/e2e/tests/docker_py.rs with the
daemon's socket as the only argument; busybox:latest is already loaded.
"""

import sys
import threading
import time

import docker

sock = sys.argv[1]
client = docker.DockerClient(base_url="unix://" + sock, timeout=60)
failures = 0


def check(name, cond, why=""):
    global failures
    if cond:
        print("ok", name, flush=True)
    else:
        failures += 1
        print("FAIL", name + ":", why, flush=True)


def step(name, fn):
    global failures
    try:
        fn()
    except Exception as e:  # a failed step must not hide the others
        failures += 1
        print("FAIL", name + ": exception", repr(e), flush=True)


def ping_version():
    check("ping", client.ping() is True)
    v = client.version()
    check("version", v.get("ApiVersion") == "1.45" and "Version" in v, repr(v))


def images():
    tags = [t for img in client.images.list() for t in img.tags]
    check("images.list", "busybox:latest" in tags, repr(tags))
    img = client.images.get("busybox")
    check("images.get", img.id.startswith("sha256:") and "busybox:latest" in img.tags, repr(img.attrs)[:300])
    try:
        client.images.get("nosuchimage:1")
        check("images.get missing", False, "no error")
    except docker.errors.ImageNotFound:
        check("images.get missing", True)


def run_foreground():
    out = client.containers.run("busybox", ["echo", "hello from py"], remove=True)
    check("run foreground", out == b"hello from py\n", repr(out))
    try:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 3"], remove=True)
        check("run exit status", False, "no ContainerError")
    except docker.errors.ContainerError as e:
        check("run exit status", e.exit_status == 3, repr(e))


def run_detached():
    c = client.containers.run(
        "busybox",
        ["sh", "-c", "echo started; trap 'exit 0' TERM; while true; do sleep 0.1; done"],
        detach=True,
        name="py1",
        environment={"PYVAR": "from-python"},
        labels={"made-by": "docker-py"},
    )
    c.reload()
    check("run detach", c.status == "running" and c.name == "py1", c.status)
    deadline = time.time() + 20
    while b"started" not in c.logs() and time.time() < deadline:
        time.sleep(0.05)
    check("logs", c.logs() == b"started\n", repr(c.logs()))
    r = c.exec_run(["sh", "-c", "echo $PYVAR; exit 4"])
    check("exec_run", r.exit_code == 4 and r.output == b"from-python\n", repr(r))
    r = c.exec_run("id -u", user="65534", workdir="/tmp")
    check("exec_run user", r.exit_code == 0 and r.output == b"65534\n", repr(r))
    listed = [x.name for x in client.containers.list(filters={"label": "made-by=docker-py"})]
    check("containers.list", listed == ["py1"], repr(listed))
    c.stop(timeout=10)
    c.reload()
    check("stop", c.status == "exited", c.status)
    res = c.wait(timeout=30)
    check("wait", res.get("StatusCode") == 0, repr(res))
    c.remove()
    try:
        client.containers.get("py1")
        check("remove", False, "still there")
    except docker.errors.NotFound:
        check("remove", True)


def wait_code():
    c = client.containers.run("busybox", ["sh", "-c", "sleep 0.5; exit 6"], detach=True)
    res = c.wait(timeout=30)
    check("wait exit code", res.get("StatusCode") == 6, repr(res))
    c.remove(force=True)


def events():
    seen = []
    stream = client.events(decode=True, filters={"type": "container"})

    def reader():
        for ev in stream:
            seen.append(ev.get("Action"))
            if ev.get("Action") == "destroy":
                break

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    time.sleep(0.3)
    client.containers.run("busybox", ["true"], remove=True)
    t.join(20)
    stream.close()
    check("events", all(a in seen for a in ("create", "start", "die", "destroy")), repr(seen))


def networks():
    net = client.networks.create("pynet", driver="bridge", labels={"from": "py"})
    try:
        check("networks.create", net.name == "pynet" and net.attrs["Driver"] == "bridge", repr(net.attrs))
        names = [n.name for n in client.networks.list()]
        check("networks.list", all(n in names for n in ("bridge", "host", "none", "pynet")), repr(names))
        srv = client.containers.run(
            "busybox",
            ["sh", "-c", "mkdir -p /w && echo py-net > /w/index.html && exec httpd -f -p 80 -h /w"],
            name="pysrv", network="pynet", detach=True, ports={"80/tcp": ("127.0.0.1", None)},
        )
        try:
            srv.reload()
            host_port = srv.ports["80/tcp"][0]["HostPort"]
            check("ports", host_port.isdigit(), repr(srv.ports))
            out = b""
            for _ in range(30):
                try:
                    out = client.containers.run(
                        "busybox", ["sh", "-c", "timeout 3 wget -qO- http://pysrv/; exit $?"],
                        network="pynet", remove=True,
                    )
                    break
                except docker.errors.ContainerError:
                    time.sleep(0.2)
            check("resolve by name", out == b"py-net\n", repr(out))
            net.reload()
            check("network containers", srv.id in net.attrs.get("Containers", {}), repr(net.attrs))
        finally:
            srv.remove(force=True)
    finally:
        net.remove()
    try:
        client.networks.get("pynet")
        check("networks.remove", False, "still there")
    except docker.errors.NotFound:
        check("networks.remove", True)


def volumes():
    vol = client.volumes.create("pyvol", labels={"from": "py"})
    check("volumes.create", vol.name == "pyvol" and vol.attrs["Driver"] == "local", repr(vol.attrs))
    check("volumes.list", "pyvol" in [v.name for v in client.volumes.list()])
    check("volumes.list filters", [v.name for v in client.volumes.list(filters={"label": "from=py"})] == ["pyvol"])
    client.containers.run("busybox", ["sh", "-c", "echo py-vol > /v/f"], volumes={"pyvol": {"bind": "/v", "mode": "rw"}}, remove=True)
    out = client.containers.run("busybox", ["cat", "/v/f"], volumes=["pyvol:/v:ro"], remove=True)
    check("volume data", out == b"py-vol\n", repr(out))
    c = client.containers.create("busybox", ["true"], volumes=["pyvol:/v"])
    try:
        vol.remove()
        check("volumes.remove in use", False, "removed while in use")
    except docker.errors.APIError as e:
        check("volumes.remove in use", e.status_code == 409 and "in use" in str(e), str(e))
    c.remove()
    vol.remove()
    res = client.volumes.prune()
    check("volumes.prune", "VolumesDeleted" in res and "SpaceReclaimed" in res, repr(res))
    try:
        client.volumes.get("pyvol")
        check("volumes.remove", False, "still there")
    except docker.errors.NotFound:
        check("volumes.remove", True)


for name, fn in [
    ("ping/version", ping_version),
    ("images", images),
    ("run foreground", run_foreground),
    ("run detached", run_detached),
    ("wait", wait_code),
    ("events", events),
    ("networks", networks),
    ("volumes", volumes),
]:
    step(name, fn)
print("done", failures, flush=True)
sys.exit(1 if failures else 0)
