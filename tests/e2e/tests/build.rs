//! Dockerfile builds as users meet them, against a real berthd: `berth build` and the stock
//! `docker build` (classic builder) and `docker-compose build`, on real-world-shaped Dockerfiles
//! whose results are checked the way a user would check them — by running the image and looking
//! inside, and by `docker image inspect`. Also: the layer cache hits and misses exactly where
//! Docker's do, survives a daemon restart and is emptied by `builder prune`; bad Dockerfiles stop
//! with their line, tag nothing and leave no container or mount behind.
//!
//! Each test has its own berthd (guard: `Berthd`, cleaned up even on failure), so they run in
//! parallel. No test asserts on wall time (bench/build.sh measures).

#[path = "common/berthd.rs"]
mod berthd;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use berthd::Berthd;
use common::Out;
use serde_json::Value;

/// Builds run containers and commit layers: generous, never a measure.
const BUILD_TIMEOUT: Duration = Duration::from_secs(240);

/// berth's own CLI: $BERTH_CLI, else target/release/berth.
fn berth_cli() -> Result<PathBuf> {
    let p = std::env::var_os("BERTH_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::workspace().join("target/release/berth"));
    ensure!(
        p.exists(),
        "{} is missing: build it with `cargo build --release -p berth-cli` or set BERTH_CLI",
        p.display()
    );
    Ok(p)
}

/// A build context (and anything else a test writes) in a temporary directory.
struct Ctx {
    dir: tempfile::TempDir,
}

impl Ctx {
    fn new(files: &[(&str, &str)]) -> Result<Self> {
        let c = Self {
            dir: tempfile::Builder::new().prefix("berth-e2e-ctx").tempdir()?,
        };
        for (name, body) in files {
            c.write(name, body)?;
        }
        Ok(c)
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn p(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn write(&self, name: &str, body: &str) -> Result<()> {
        let p = self.dir.path().join(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(&p, body).with_context(|| format!("write {}", p.display()))
    }
}

/// `berth -H <berthd> ARGS` in `cwd`, with `stdin` and extra environment.
fn berth_full(
    d: &Berthd,
    cwd: Option<&Path>,
    args: &[&str],
    stdin: Option<&[u8]>,
    env: &[(&str, &str)],
) -> Result<Out> {
    let mut c = Command::new(berth_cli()?);
    c.env("BERTH_NO_AUTOSTART", "1")
        .args(["-H", &format!("unix://{}", d.sock().display())])
        .args(args);
    if let Some(dir) = cwd {
        c.current_dir(dir);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    common::run_cmd(&mut c, stdin, BUILD_TIMEOUT)
}

fn berth(d: &Berthd, args: &[&str]) -> Result<Out> {
    berth_full(d, None, args, None, &[])
}

/// `berth build ARGS`, failing unless it succeeds (with berthd's log tail on failure).
fn berth_build_ok(d: &Berthd, args: &[&str]) -> Result<Out> {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let out = berth(d, &all)?;
    if out.code != 0 {
        bail!(
            "`berth build {}` exited {}\nstdout:\n{}\nstderr:\n{}\nberthd log (tail):\n{}",
            args.join(" "),
            out.code,
            out.stdout,
            out.stderr,
            berthd::tail(&d.log(), 30)
        );
    }
    Ok(out)
}

/// The stock docker CLI against berthd, in `cwd`; `buildkit`: the DOCKER_BUILDKIT value (None:
/// unset, the CLI's own choice).
fn docker_in(
    d: &Berthd,
    cwd: &Path,
    args: &[&str],
    buildkit: Option<&str>,
    stdin: Option<&[u8]>,
) -> Result<Out> {
    let mut c = d.docker_cmd();
    c.current_dir(cwd).args(args);
    match buildkit {
        Some(v) => c.env("DOCKER_BUILDKIT", v),
        None => c.env_remove("DOCKER_BUILDKIT"),
    };
    common::run_cmd(&mut c, stdin, BUILD_TIMEOUT)
}

/// `docker run --rm --entrypoint sh IMAGE -c SCRIPT`: the script's stdout, trimmed.
fn sh(d: &Berthd, image: &str, script: &str) -> Result<String> {
    let out = common::run_cmd(
        d.docker_cmd()
            .args(["run", "--rm", "--entrypoint", "sh", image, "-c", script]),
        None,
        Duration::from_secs(60),
    )?;
    if out.code != 0 {
        bail!(
            "sh in {image}: `{script}` exited {}\nstdout: {}\nstderr: {}",
            out.code,
            out.stdout,
            out.stderr
        );
    }
    Ok(out.stdout.trim().to_string())
}

/// `docker image inspect` of an image, as JSON.
fn inspect(d: &Berthd, image: &str) -> Result<Value> {
    let out = d.docker_ok(&["image", "inspect", image])?;
    let v: Value = serde_json::from_str(&out)?;
    Ok(v[0].clone())
}

/// The id `--iidfile` wrote.
fn read_iid(p: &Path) -> Result<String> {
    let s = std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()))?;
    ensure!(
        s.starts_with("sha256:") && s.len() == 71 && !s.ends_with('\n'),
        "iidfile holds {s:?}"
    );
    Ok(s)
}

/// How many steps the classic output says came from the cache.
fn using_cache(plain: &str) -> usize {
    plain.matches(" ---> Using cache").count()
}

/// Whether an error message names Dockerfile line `n` (`line 3`, `Dockerfile:3`).
fn names_line(msg: &str, n: usize) -> bool {
    let lower = msg.to_ascii_lowercase();
    [
        format!("line {n}:"),
        format!("line {n} "),
        format!("line {n})"),
    ]
    .iter()
    .any(|p| lower.contains(p.as_str()))
        || lower.ends_with(&format!("line {n}"))
        || msg.contains(&format!("Dockerfile:{n}"))
}

/// Nothing of a build left: no containers, no mounts under the data root.
fn assert_nothing_left(d: &Berthd) -> Result<()> {
    let ps = d.docker_ok(&["ps", "-aq"])?;
    ensure!(ps.is_empty(), "containers left behind by builds: {ps}");
    let root = d.data_root().display().to_string();
    let mut mounts = Vec::new();
    // Mounts may be released just after the build's answer: give them a moment.
    let clean = common::wait_until(Duration::from_secs(5), || {
        mounts = common::berthd_mounts(&d.data_root());
        mounts.is_empty()
    });
    ensure!(clean, "mounts left under {root}: {mounts:#?}");
    // Nor the builds' working directories (their contexts, secrets, layer tars).
    let builds = d.data_root().join("builds");
    let left: Vec<_> = std::fs::read_dir(&builds)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    ensure!(
        left.is_empty(),
        "build directories left in {}: {left:?}",
        builds.display()
    );
    Ok(())
}

/// Non-empty trimmed lines.
fn read_lines(s: &str) -> Vec<String> {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn multi_stage_compile_then_copy_skips_unused_stages_and_honours_target() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let c = Ctx::new(&[
        (
            "Dockerfile",
            r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM ${BASE} AS builder
WORKDIR /src
COPY src/ ./
# "compile": a generated header, the sources joined, a checksum of the result
RUN mkdir -p /out \
 && echo "built-from: $(ls | tr '\n' ' ')" > /out/app.txt \
 && cat main.txt util.txt | tr 'a-z' 'A-Z' >> /out/app.txt \
 && md5sum /out/app.txt | cut -d' ' -f1 > /out/app.md5

FROM busybox AS broken
RUN echo this stage must not run && exit 3

FROM scratch
COPY --from=builder /out/ /opt/app/
COPY --from=builder /bin/busybox /bin/busybox
ENTRYPOINT ["/bin/busybox"]
CMD ["cat", "/opt/app/app.txt"]
"#,
        ),
        ("src/main.txt", "hello\n"),
        ("src/util.txt", "world\n"),
    ])?;
    let out = berth_build_ok(&d, &["-t", "ms:final", &c.p()])?;
    ensure!(
        !out.stdout.contains("this stage must not run") && !out.stdout.contains("exit 3"),
        "the unused stage was built:\n{}",
        out.stdout
    );
    // The final image: FROM scratch, two COPY layers, the artifact and its checksum.
    let run = d.docker_ok(&["run", "--rm", "ms:final"])?;
    ensure!(
        run == "built-from: main.txt util.txt \nHELLO\nWORLD",
        "{run:?}"
    );
    let md5 = d.docker_ok(&["run", "--rm", "ms:final", "md5sum", "/opt/app/app.txt"])?;
    let want = d.docker_ok(&["run", "--rm", "ms:final", "cat", "/opt/app/app.md5"])?;
    ensure!(md5.starts_with(&want), "{md5} vs {want}");
    let root = d.docker_ok(&["run", "--rm", "ms:final", "ls", "/opt/app", "/bin"])?;
    ensure!(
        root == "/bin:\nbusybox\n\n/opt/app:\napp.md5\napp.txt",
        "{root:?}"
    );
    let i = inspect(&d, "ms:final")?;
    ensure!(
        i["RootFS"]["Layers"].as_array().map(Vec::len) == Some(2),
        "{}",
        i["RootFS"]
    );
    ensure!(i["Config"]["Entrypoint"] == serde_json::json!(["/bin/busybox"]));
    ensure!(i["Config"]["Cmd"] == serde_json::json!(["cat", "/opt/app/app.txt"]));
    // The builder stage's WORKDIR stays in the builder.
    ensure!(
        i["Config"]["WorkingDir"].as_str().unwrap_or("").is_empty(),
        "{}",
        i["Config"]["WorkingDir"]
    );

    // --target builds up to that stage only.
    berth_build_ok(&d, &["--target", "builder", "-t", "ms:builder", &c.p()])?;
    let i = inspect(&d, "ms:builder")?;
    ensure!(i["Config"]["WorkingDir"] == "/src", "{}", i["Config"]);
    ensure!(sh(&d, "ms:builder", "cat /out/app.md5 | wc -c")? == "33");

    // Targeting the broken stage runs it, and it fails as written.
    let out = berth(
        &d,
        &["build", "--target", "broken", "-t", "ms:broken", &c.p()],
    )?;
    // As docker build: the exit code of the RUN that failed.
    ensure!(out.code == 3, "{out:?}");
    ensure!(
        out.stdout.contains("this stage must not run"),
        "{}",
        out.stdout
    );
    ensure!(out.stderr.contains("non-zero code: 3"), "{}", out.stderr);
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])?;
    ensure!(!images.contains("ms:broken"), "{images}");
    assert_nothing_left(&d)
}

#[test]
fn arg_and_env_expansion_follow_dockers_rules() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let c = Ctx::new(&[(
        "Dockerfile",
        r#"ARG VERSION=1.0
ARG BASE=busybox
FROM $BASE
# a global ARG is seen after FROM only when declared again
ARG VERSION
ARG NAME=default-name
ARG OVERRIDE=from-arg-default
ENV GREETING="hello ${NAME}"
ENV OVERRIDE=from-env
# ENV wins over an ARG of the same name, whatever --build-arg says
ARG OVERRIDE
ENV FROM_ARG=v${VERSION} WITH_DEFAULT=${MISSING:-fallback} ALT=${NAME:+set} EMPTY_ALT=${MISSING:+set}
LABEL version=$VERSION
WORKDIR /w/${NAME}
RUN echo "v=$VERSION name=$NAME greet=$GREETING ov=$OVERRIDE base=${BASE:-unset}" > /result
"#,
    )])?;
    berth_build_ok(&d, &["-t", "args:default", &c.p()])?;
    ensure!(
        sh(&d, "args:default", "cat /result")?
            == "v=1.0 name=default-name greet=hello default-name ov=from-env base=unset"
    );
    let i = inspect(&d, "args:default")?;
    let env: Vec<String> = serde_json::from_value(i["Config"]["Env"].clone())?;
    for want in [
        "GREETING=hello default-name",
        "OVERRIDE=from-env",
        "FROM_ARG=v1.0",
        "WITH_DEFAULT=fallback",
        "ALT=set",
        "EMPTY_ALT=",
    ] {
        ensure!(env.iter().any(|e| e == want), "{want} not in {env:?}");
    }
    // Build args are not kept in the image.
    ensure!(
        !env.iter()
            .any(|e| e.starts_with("NAME=") || e.starts_with("VERSION=")),
        "{env:?}"
    );
    ensure!(i["Config"]["Labels"]["version"] == "1.0", "{}", i["Config"]);
    ensure!(
        i["Config"]["WorkingDir"] == "/w/default-name",
        "{}",
        i["Config"]
    );
    ensure!(sh(&d, "args:default", "echo \"[$NAME][$VERSION]\"")? == "[][]");

    // --build-arg overrides the defaults, globals included; ENV still wins over OVERRIDE.
    berth_build_ok(
        &d,
        &[
            "-t",
            "args:cli",
            "--build-arg",
            "VERSION=2.0",
            "--build-arg",
            "NAME=cli",
            "--build-arg",
            "OVERRIDE=cli",
            "--build-arg",
            "BASE=busybox:latest",
            &c.p(),
        ],
    )?;
    ensure!(
        sh(&d, "args:cli", "cat /result")?
            == "v=2.0 name=cli greet=hello cli ov=from-env base=unset"
    );
    let i = inspect(&d, "args:cli")?;
    ensure!(i["Config"]["Labels"]["version"] == "2.0");
    ensure!(i["Config"]["WorkingDir"] == "/w/cli");

    // --build-arg NAME takes NAME from the environment; an unset one is left out.
    let out = berth_full(
        &d,
        None,
        &[
            "build",
            "-t",
            "args:env",
            "--build-arg",
            "NAME",
            "--build-arg",
            "BERTH_E2E_SURELY_UNSET",
            &c.p(),
        ],
        None,
        &[("NAME", "from-shell")],
    )?
    .ok()?;
    let _ = out;
    ensure!(sh(&d, "args:env", "cat /result")?.contains("name=from-shell"));
    assert_nothing_left(&d)
}

#[test]
fn dockerignore_and_copy_forms_shape_the_image() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let c = Ctx::new(&[
        (
            "Dockerfile",
            r#"FROM busybox
RUN echo 'appuser:x:1234:2345::/home/appuser:/bin/sh' >> /etc/passwd \
 && echo 'appgroup:x:2345:' >> /etc/group
COPY . /ctx/
COPY --chown=appuser:appgroup src/*.txt /txt/
COPY --chmod=0750 conf/app.conf /etc/app.conf
COPY src/ /srcdir/
COPY --chown=1001:1002 --chmod=640 src/a.txt /owned
COPY src/a.txt src/c.md /multi/
"#,
        ),
        (
            ".dockerignore",
            "# secrets and junk\n*.secret\nlogs/\n!logs/keep.log\nnode_modules\n**/*.tmp\n",
        ),
        ("app.secret", "do-not-ship"),
        ("x.tmp", "tmp"),
        ("logs/a.log", "a"),
        ("logs/keep.log", "kept"),
        ("node_modules/x/y.js", "js"),
        ("src/a.txt", "A\n"),
        ("src/b.txt", "B\n"),
        ("src/c.md", "C\n"),
        ("src/deep/x.tmp", "tmp"),
        ("src/deep/d.txt", "D\n"),
        ("conf/app.conf", "conf=1\n"),
        ("bad.Dockerfile", "FROM busybox\nCOPY app.secret /x\n"),
    ])?;
    berth_build_ok(&d, &["-t", "copies", &c.p()])?;
    let ctx = sh(&d, "copies", "cd /ctx && find . | sort")?;
    ensure!(
        ctx == ".\n./.dockerignore\n./Dockerfile\n./bad.Dockerfile\n./conf\n./conf/app.conf\n./logs\n./logs/keep.log\n./src\n./src/a.txt\n./src/b.txt\n./src/c.md\n./src/deep\n./src/deep/d.txt",
        "COPY . saw:\n{ctx}"
    );
    let txt = sh(
        &d,
        "copies",
        "ls /txt; stat -c '%u:%g %U:%G' /txt/a.txt /txt/b.txt",
    )?;
    ensure!(
        txt == "a.txt\nb.txt\n1234:2345 appuser:appgroup\n1234:2345 appuser:appgroup",
        "{txt}"
    );
    ensure!(sh(&d, "copies", "stat -c %a /etc/app.conf")? == "750");
    ensure!(
        sh(&d, "copies", "cd /srcdir && find . | sort")?
            == ".\n./a.txt\n./b.txt\n./c.md\n./deep\n./deep/d.txt"
    );
    ensure!(sh(&d, "copies", "stat -c '%u:%g %a' /owned; cat /owned")? == "1001:1002 640\nA");
    ensure!(sh(&d, "copies", "ls /multi")? == "a.txt\nc.md");

    // An excluded file cannot be copied.
    let out = berth(
        &d,
        &[
            "build",
            "-f",
            &format!("{}/bad.Dockerfile", c.p()),
            "-t",
            "leak",
            &c.p(),
        ],
    )?;
    ensure!(out.code != 0, "COPY of an excluded file succeeded: {out:?}");
    ensure!(out.stderr.contains("app.secret"), "{}", out.stderr);
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}"])?;
    ensure!(!images.lines().any(|l| l == "leak"), "{images}");
    assert_nothing_left(&d)
}

#[test]
fn add_archives_and_urls_and_heredocs() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let web = Ctx::new(&[("hello.txt", "hello over http\n"), ("second.txt", "2nd\n")])?;
    let srv = common::http_server::HttpServer::start(web.path())?;
    let staging = Ctx::new(&[
        ("pkg/README", "readme\n"),
        ("pkg/bin/tool", "#!/bin/sh\necho tool-ran\n"),
    ])?;
    std::fs::set_permissions(
        staging.path().join("pkg/bin/tool"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let port = srv.port;
    let c = Ctx::new(&[(
        "Dockerfile",
        &format!(
            r#"FROM busybox
ADD pkg.tar.gz /opt/
ADD http://127.0.0.1:{port}/hello.txt /web/hello.txt
ADD http://127.0.0.1:{port}/second.txt /web/
RUN <<EOF
set -e
echo "line one" > /heredoc.txt
echo "line two" >> /heredoc.txt
EOF
COPY <<EOF /etc/from-heredoc.conf
key=value
EOF
"#
        ),
    )])?;
    common::run_cmd(
        Command::new("tar")
            .args(["--owner=0", "--group=0", "-C"])
            .arg(staging.path())
            .arg("-czf")
            .arg(c.path().join("pkg.tar.gz"))
            .arg("pkg"),
        None,
        Duration::from_secs(30),
    )?
    .ok()?;
    berth_build_ok(&d, &["-t", "adds", &c.p()])?;
    ensure!(sh(&d, "adds", "cat /opt/pkg/README")? == "readme");
    ensure!(sh(&d, "adds", "/opt/pkg/bin/tool")? == "tool-ran");
    ensure!(sh(&d, "adds", "test ! -e /opt/pkg.tar.gz && echo extracted")? == "extracted");
    ensure!(sh(&d, "adds", "cat /web/hello.txt")? == "hello over http");
    ensure!(sh(&d, "adds", "cat /web/second.txt")? == "2nd");
    ensure!(sh(&d, "adds", "cat /heredoc.txt")? == "line one\nline two");
    ensure!(sh(&d, "adds", "cat /etc/from-heredoc.conf")? == "key=value");
    drop(srv);
    assert_nothing_left(&d)
}

#[test]
fn run_mounts_cache_secret_tmpfs_and_bind() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    const SECRET: &str = "s3cret-value-81723";
    let c = Ctx::new(&[
        (
            "Dockerfile",
            r#"FROM busybox
RUN --mount=type=cache,target=/cache,id=e2e-runs \
    date +%s%N >> /cache/runs && wc -l < /cache/runs | tr -d ' ' > /runs-seen
RUN --mount=type=secret,id=token md5sum < /run/secrets/token | cut -c1-32 > /secret-md5
RUN --mount=type=secret,id=token,target=/etc/tok,required=true cat /etc/tok | wc -c | tr -d ' ' > /tok-len
RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/y && test -f /scratch/y && echo tmpfs-ok > /tmpfs-ok
RUN --mount=type=bind,source=data.txt,target=/mnt/data.txt cp /mnt/data.txt /copied-via-bind
RUN --mount=type=bind,source=dir,target=/w,rw echo scribbled > /w/data && echo new > /w/new && cat /w/data > /rw-saw
RUN --mount=type=bind,source=dir,target=/w,rw cat /w/data > /rw-next
COPY dir /dir-after
"#,
        ),
        ("data.txt", "bound-data\n"),
        ("dir/data", "pristine\n"),
    ])?;
    let secret = Ctx::new(&[("token", SECRET)])?;
    let sec = format!("id=token,src={}", secret.path().join("token").display());
    berth_build_ok(&d, &["-t", "mounts", "--secret", &sec, &c.p()])?;
    ensure!(sh(&d, "mounts", "cat /runs-seen")? == "1");
    let got = sh(
        &d,
        "mounts",
        "cat /secret-md5 /tok-len /tmpfs-ok /copied-via-bind",
    )?;
    let md5 = Command::new("sh")
        .args(["-c", &format!("printf %s {SECRET} | md5sum | cut -c1-32")])
        .output()?
        .stdout;
    let md5 = String::from_utf8(md5)?;
    ensure!(
        got == format!("{}\n18\ntmpfs-ok\nbound-data", md5.trim()),
        "{got:?}"
    );
    // A rw bind's writes are seen by its own step only: never by the next step, COPY or the image.
    let rw = sh(
        &d,
        "mounts",
        "cat /rw-saw /rw-next /dir-after/data; ls /dir-after",
    )?;
    ensure!(rw == "scribbled\npristine\npristine\ndata", "{rw:?}");
    ensure!(std::fs::read_to_string(c.path().join("dir/data"))? == "pristine\n");
    // What was mounted is not in the image.
    let left = sh(
        &d,
        "mounts",
        "ls -A /cache /scratch 2>/dev/null | grep -v : | grep . || echo empty",
    )?;
    ensure!(
        left == "empty",
        "mounted content stayed in the image: {left}"
    );
    ensure!(
        sh(
            &d,
            "mounts",
            "cat /run/secrets/token /etc/tok 2>/dev/null; true"
        )?
        .is_empty(),
        "the secret stayed in the image"
    );
    // Nowhere in the image: layers, config, history.
    let tar = c.path().join("mounts.tar");
    d.docker_ok(&["save", "-o", &tar.display().to_string(), "mounts"])?;
    let bytes = std::fs::read(&tar)?;
    ensure!(
        !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
        "the secret is in `docker save` of the image"
    );
    let hist = d.docker_ok(&["history", "--no-trunc", "mounts"])?;
    ensure!(!hist.contains(SECRET), "{hist}");

    // The cache directory persists between builds (a --no-cache rebuild runs the step again).
    berth_build_ok(
        &d,
        &["-t", "mounts", "--no-cache", "--secret", &sec, &c.p()],
    )?;
    ensure!(sh(&d, "mounts", "cat /runs-seen")? == "2");

    // A required secret that was not given fails the build.
    let out = berth(&d, &["build", "-t", "nosecret", &c.p()])?;
    ensure!(out.code != 0, "{out:?}");
    assert_nothing_left(&d)
}

#[test]
fn config_instructions_show_in_inspect_and_onbuild_fires_in_children() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let c = Ctx::new(&[(
        "Dockerfile",
        r#"FROM busybox
SHELL ["/bin/sh", "-e", "-c"]
RUN echo "$-" > /shell-flags
WORKDIR /app
WORKDIR sub
EXPOSE 8080 53/udp
LABEL org.example.name="berth test" multi="a b"
ENV PATH=/app/bin:$PATH
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi from cmd in $(pwd) as $(id -un)"]
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD true
STOPSIGNAL SIGUSR1
VOLUME ["/data", "/logs"]
ONBUILD RUN echo onbuild-ran > /tmp/onbuild-ran
USER nobody
"#,
    )])?;
    berth_build_ok(&d, &["-t", "cfg", "--label", "from.cli=yes", &c.p()])?;
    let cfg = inspect(&d, "cfg")?["Config"].clone();
    use serde_json::json;
    let checks: Vec<(&str, Value)> = vec![
        ("WorkingDir", json!("/app/sub")),
        ("User", json!("nobody")),
        ("ExposedPorts", json!({"8080/tcp": {}, "53/udp": {}})),
        ("Entrypoint", json!(["/bin/sh", "-c"])),
        ("Cmd", json!(["echo hi from cmd in $(pwd) as $(id -un)"])),
        ("StopSignal", json!("SIGUSR1")),
        ("Volumes", json!({"/data": {}, "/logs": {}})),
        (
            "OnBuild",
            json!(["RUN echo onbuild-ran > /tmp/onbuild-ran"]),
        ),
        ("Shell", json!(["/bin/sh", "-e", "-c"])),
    ];
    for (k, want) in checks {
        ensure!(cfg[k] == want, "{k}: {} (want {want})", cfg[k]);
    }
    ensure!(
        cfg["Labels"]["org.example.name"] == "berth test",
        "{}",
        cfg["Labels"]
    );
    ensure!(cfg["Labels"]["multi"] == "a b", "{}", cfg["Labels"]);
    ensure!(cfg["Labels"]["from.cli"] == "yes", "{}", cfg["Labels"]);
    let env: Vec<String> = serde_json::from_value(cfg["Env"].clone())?;
    let path = "PATH=/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    ensure!(env.iter().any(|e| e == path), "{env:?}");
    let hc = &cfg["Healthcheck"];
    ensure!(hc["Test"] == json!(["CMD-SHELL", "true"]), "{hc}");
    ensure!(hc["Interval"] == json!(5_000_000_000u64), "{hc}");
    ensure!(hc["Timeout"] == json!(2_000_000_000u64), "{hc}");
    ensure!(hc["Retries"] == json!(4), "{hc}");
    // The SHELL was used by the RUN after it.
    let flags = d.docker_ok(&[
        "run",
        "--rm",
        "--user",
        "0",
        "--entrypoint",
        "cat",
        "cfg",
        "/shell-flags",
    ])?;
    ensure!(flags.contains('e'), "{flags}");
    // ENTRYPOINT + CMD + WORKDIR + USER at run time.
    let out = d.docker_ok(&["run", "--rm", "cfg"])?;
    ensure!(out == "hi from cmd in /app/sub as nobody", "{out}");

    // A child image runs the ONBUILD trigger, and does not inherit it.
    let child = Ctx::new(&[("Dockerfile", "FROM cfg\nUSER root\nRUN echo child-step\n")])?;
    berth_build_ok(&d, &["-t", "cfg-child", &child.p()])?;
    let ran = d.docker_ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "cat",
        "cfg-child",
        "/tmp/onbuild-ran",
    ])?;
    ensure!(ran == "onbuild-ran", "{ran}");
    let ob = inspect(&d, "cfg-child")?["Config"]["OnBuild"].clone();
    ensure!(
        ob.is_null() || ob == json!([]),
        "ONBUILD was inherited: {ob}"
    );
    let parent_has = common::run_cmd(
        d.docker_cmd().args([
            "run",
            "--rm",
            "--entrypoint",
            "cat",
            "cfg",
            "/tmp/onbuild-ran",
        ]),
        None,
        Duration::from_secs(60),
    )?;
    ensure!(
        parent_has.code != 0,
        "the trigger ran in the parent: {parent_has:?}"
    );
    assert_nothing_left(&d)
}

/// The 10-step file of the cache tests.
const TEN_STEPS: &str = r#"FROM busybox
ENV APP_HOME=/app
WORKDIR $APP_HOME
COPY app.txt .
RUN cp app.txt app.copy
COPY other.txt .
ARG FLAVOR=plain
RUN echo "flavor=$FLAVOR" > flavor.txt
LABEL stage=test
CMD ["cat", "/app/app.copy"]
"#;

/// `berth build --progress=plain --iidfile`: (image id, steps from the cache, output).
fn plain_build(d: &Berthd, ctx: &Ctx, extra: &[&str]) -> Result<(String, usize, String)> {
    let iid = ctx.path().join("..").join(format!(
        "{}.iid",
        ctx.path().file_name().unwrap_or_default().to_string_lossy()
    ));
    let iid_s = iid.display().to_string();
    let mut args = vec!["--progress=plain", "--iidfile", &iid_s, "-t", "ten"];
    args.extend_from_slice(extra);
    let p = ctx.p();
    args.push(&p);
    let out = berth_build_ok(d, &args)?;
    let id = read_iid(&iid)?;
    let _ = std::fs::remove_file(&iid);
    Ok((id, using_cache(&out.stdout), out.stdout))
}

#[test]
fn the_cache_hits_and_misses_where_dockers_does_and_survives_restarts() -> Result<()> {
    require_root!();
    let mut d = Berthd::with_busybox()?;
    let c = Ctx::new(&[
        ("Dockerfile", TEN_STEPS),
        ("app.txt", "app v1\n"),
        ("other.txt", "other v1\n"),
        ("notes.md", "not copied\n"),
    ])?;
    let (id1, cached, out) = plain_build(&d, &c, &[])?;
    ensure!(
        cached == 0,
        "a first build used the cache {cached} times:\n{out}"
    );
    ensure!(out.contains("Step 10/10 : CMD"), "{out}");

    // Unchanged: every step after FROM from the cache, the same image.
    let (id, cached, out) = plain_build(&d, &c, &[])?;
    ensure!(
        cached == 9 && id == id1,
        "unchanged rebuild: {cached} cached, {id} vs {id1}\n{out}"
    );
    // The readable progress says the same.
    let out = berth_build_ok(&d, &["-t", "ten", &c.p()])?;
    let cached_lines = out
        .stdout
        .lines()
        .filter(|l| l.ends_with("  CACHED"))
        .count();
    ensure!(cached_lines == 9, "{}", out.stdout);
    let summary = out
        .stdout
        .lines()
        .find(|l| l.starts_with("built "))
        .unwrap_or_default();
    ensure!(
        summary.starts_with(&format!("built {id1} in "))
            && summary.ends_with("s: 10 steps, 9 cached"),
        "{}",
        out.stdout
    );
    ensure!(
        out.stdout.lines().any(|l| l == "tagged ten:latest"),
        "{}",
        out.stdout
    );

    // A file nobody copies: nothing misses. A copied file touched but unchanged: nothing misses.
    c.write("notes.md", "edited, still not copied\n")?;
    let (id, cached, out) = plain_build(&d, &c, &[])?;
    ensure!(
        cached == 9 && id == id1,
        "unrelated edit: {cached} cached\n{out}"
    );
    let app = c.path().join("app.txt");
    let f = std::fs::File::options().write(true).open(&app)?;
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(3600))?;
    drop(f);
    let (id, cached, out) = plain_build(&d, &c, &[])?;
    ensure!(
        cached == 9 && id == id1,
        "mtime-only change: {cached} cached\n{out}"
    );

    // other.txt edited: ENV, WORKDIR, COPY app.txt, RUN cp hit; COPY other.txt and on miss.
    c.write("other.txt", "other v2\n")?;
    let (_, cached, out) = plain_build(&d, &c, &[])?;
    ensure!(cached == 4, "other.txt edited: {cached} cached\n{out}");
    // app.txt edited: misses from its COPY on, and the RUN sees the new content.
    c.write("app.txt", "app v2\n")?;
    let (_, cached, out) = plain_build(&d, &c, &[])?;
    ensure!(cached == 2, "app.txt edited: {cached} cached\n{out}");
    ensure!(d.docker_ok(&["run", "--rm", "ten"])? == "app v2");
    c.write("app.txt", "app v1\n")?;
    c.write("other.txt", "other v1\n")?;
    let (id, cached, _) = plain_build(&d, &c, &[])?;
    ensure!(
        cached == 9 && id == id1,
        "back to the first content: {cached} cached"
    );

    // A changed build arg misses from the RUN that sees it; the old value still hits.
    let (id_spicy, cached, out) = plain_build(&d, &c, &["--build-arg", "FLAVOR=spicy"])?;
    ensure!(cached == 6, "FLAVOR changed: {cached} cached\n{out}");
    ensure!(id_spicy != id1);
    ensure!(sh(&d, "ten", "cat /app/flavor.txt")? == "flavor=spicy");
    let (id, cached, _) = plain_build(&d, &c, &[])?;
    ensure!(cached == 9 && id == id1);

    // --no-cache misses everything.
    let (_, cached, out) = plain_build(&d, &c, &["--no-cache"])?;
    ensure!(cached == 0, "--no-cache: {cached} cached\n{out}");

    // The cache is kept across a daemon restart.
    let (id1, _, _) = plain_build(&d, &c, &[])?;
    d.restart()?;
    let (id, cached, out) = plain_build(&d, &c, &[])?;
    ensure!(
        cached == 9 && id == id1,
        "after a restart: {cached} cached\n{out}"
    );

    // builder prune empties it.
    let out = berth(&d, &["builder", "prune", "-af"])?.ok()?;
    ensure!(
        out.stdout
            .lines()
            .last()
            .unwrap_or_default()
            .starts_with("Total reclaimed space: "),
        "{}",
        out.stdout
    );
    let (_, cached, out) = plain_build(&d, &c, &[])?;
    ensure!(cached == 0, "after builder prune: {cached} cached\n{out}");
    // docker's own verb against berthd.
    let out = d.docker_ok(&["builder", "prune", "-af"])?;
    ensure!(out.contains("Total reclaimed space:"), "{out}");
    assert_nothing_left(&d)
}

#[test]
fn the_stock_docker_cli_and_docker_compose_build_against_berthd() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let c = Ctx::new(&[
        (
            "Dockerfile",
            "FROM busybox\nCOPY hello.txt /hello.txt\nRUN wc -c < /hello.txt > /size\nCMD [\"cat\", \"/hello.txt\"]\n",
        ),
        ("hello.txt", "hello from docker build\n"),
    ])?;
    let iid = c.path().with_extension("docker.iid");
    let iid_s = iid.display().to_string();
    // The classic builder, asked for.
    let out = docker_in(
        &d,
        c.path(),
        &[
            "build",
            "-t",
            "dk:one",
            "-t",
            "dk:two",
            "--iidfile",
            &iid_s,
            ".",
        ],
        Some("0"),
        None,
    )?;
    ensure!(
        out.code == 0,
        "{out:?}\nberthd:\n{}",
        berthd::tail(&d.log(), 30)
    );
    ensure!(out.stderr.contains("legacy builder"), "{}", out.stderr);
    ensure!(
        out.stdout.contains("Step 1/4 : FROM busybox"),
        "{}",
        out.stdout
    );
    ensure!(
        out.stdout.contains("Successfully tagged dk:two"),
        "{}",
        out.stdout
    );
    let id = read_iid(&iid)?;
    for t in ["dk:one", "dk:two"] {
        ensure!(inspect(&d, t)?["Id"] == id.as_str(), "{t}");
    }
    ensure!(d.docker_ok(&["run", "--rm", "dk:one"])? == "hello from docker build");
    ensure!(sh(&d, "dk:two", "cat /size")? == "24");
    // As with Docker's classic builder: every step is an image with its parent, so history
    // names each step's image (3 steps after FROM + the base image), the rest is <missing>.
    let ids = d.docker_ok(&["history", "-q", "dk:one"])?;
    let ids: Vec<&str> = ids.lines().collect();
    let named = ids.iter().take_while(|l| **l != "<missing>").count();
    ensure!(named == 4, "history ids: {ids:?}");
    ensure!(ids[0] == &id[7..19], "{ids:?}");
    let parent = d.docker_ok(&["image", "inspect", "-f", "{{.Parent}}", "dk:one"])?;
    ensure!(
        parent.starts_with("sha256:") && parent[7..19] == *ids[1],
        "{parent} {ids:?}"
    );
    // rmi of a built image takes its unnamed step images with it (as Docker), not the base.
    let before = d.docker_ok(&["images", "-aq"])?;
    let chain = Ctx::new(&[(
        "Dockerfile",
        "FROM busybox\nENV CHAIN=1\nRUN echo $CHAIN > /chain\n",
    )])?;
    let out = docker_in(
        &d,
        chain.path(),
        &["build", "-t", "chain:1", "."],
        Some("0"),
        None,
    )?;
    ensure!(out.code == 0, "{out:?}");
    let steps = read_lines(&d.docker_ok(&["history", "-q", "chain:1"])?);
    let out = d.docker_ok(&["rmi", "chain:1"])?;
    for step in &steps[..2] {
        ensure!(
            out.contains(&format!("Deleted: sha256:{step}")),
            "{step} not deleted: {out}"
        );
    }
    ensure!(
        d.docker_ok(&["images", "-aq"])? == before,
        "step images left"
    );
    ensure!(d.docker_ok(&["run", "--rm", "busybox", "true"]).is_ok());
    // An unchanged rebuild: "Using cache" for every step after FROM, the same image.
    let out = docker_in(
        &d,
        c.path(),
        &["build", "-t", "dk:one", "."],
        Some("0"),
        None,
    )?;
    ensure!(out.code == 0, "{out:?}");
    ensure!(using_cache(&out.stdout) == 3, "{}", out.stdout);
    ensure!(
        out.stdout
            .contains(&format!("Successfully built {}", &id[7..19])),
        "{}",
        out.stdout
    );
    std::fs::remove_file(&iid)?;

    // Without DOCKER_BUILDKIT: docker 28 falls back to the classic builder when buildx is
    // missing (and says so); -q prints the id only.
    let buildx = docker_in(&d, c.path(), &["buildx", "version"], None, None)?;
    if buildx.code != 0 {
        let out = docker_in(&d, c.path(), &["build", "-q", "."], None, None)?;
        ensure!(out.code == 0, "{out:?}");
        ensure!(out.stderr.contains("buildx"), "{}", out.stderr);
        ensure!(
            out.stdout.trim() == id,
            "-q printed {:?} (want {id})",
            out.stdout
        );
    } else {
        eprintln!("buildx is installed: the docker CLI would use BuildKit; fallback not checked");
    }

    // A Dockerfile on stdin, no context.
    let out = docker_in(
        &d,
        c.path(),
        &["build", "-t", "dk:stdin", "-"],
        Some("0"),
        Some(b"FROM busybox\nRUN echo from-stdin > /s\n"),
    )?;
    ensure!(out.code == 0, "{out:?}");
    ensure!(sh(&d, "dk:stdin", "cat /s")? == "from-stdin");

    // docker-compose 1.29: `build` and `up` of a service with `build:`.
    let proj = Ctx::new(&[
        (
            "docker-compose.yml",
            r#"version: "3.8"
services:
  app:
    build:
      context: ./app
      args:
        MSG: from-compose
    image: berthcb_app:latest
"#,
        ),
        (
            "app/Dockerfile",
            "FROM busybox\nARG MSG=unset\nRUN echo \"$MSG\" > /msg\nCMD [\"cat\", \"/msg\"]\n",
        ),
    ])?;
    let compose = |args: &[&str]| -> Result<Out> {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(proj.path())
            .env("DOCKER_HOST", format!("unix://{}", d.sock().display()))
            .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
            .env("COMPOSE_DOCKER_CLI_BUILD", "0")
            .env_remove("DOCKER_BUILDKIT")
            .args(["-p", "berthcb"])
            .args(args);
        common::run_cmd(&mut cmd, None, BUILD_TIMEOUT)
    };
    let out = compose(&["build"])?;
    ensure!(
        out.code == 0,
        "{out:?}\nberthd:\n{}",
        berthd::tail(&d.log(), 30)
    );
    ensure!(sh(&d, "berthcb_app:latest", "cat /msg")? == "from-compose");
    let out = compose(&["up"])?;
    ensure!(out.code == 0, "{out:?}");
    ensure!(
        out.stdout.contains("from-compose") || out.stderr.contains("from-compose"),
        "{out:?}"
    );
    compose(&["down"])?.ok()?;
    assert_nothing_left(&d)
}

#[test]
fn bad_dockerfiles_stop_at_their_line_and_leave_nothing() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    // The tag exists before: a failed build must not move it.
    let good = Ctx::new(&[("Dockerfile", "FROM busybox\nLABEL good=1\n")])?;
    berth_build_ok(&d, &["-t", "bad:keep", &good.p()])?;
    let kept = inspect(&d, "bad:keep")?["Id"].clone();
    // (what, Dockerfile, its failing line, in the message, exit code: docker build's — the
    // failed RUN's own code, else 1)
    let cases: &[(&str, &str, usize, &str, i32)] = &[
        (
            "unknown instruction",
            "FROM busybox\nRUN true\nFROBNICATE now\n",
            3,
            "unknown instruction",
            1,
        ),
        (
            "unterminated heredoc",
            "FROM busybox\nRUN true\nRUN <<EOT\necho never\n",
            3,
            "heredoc",
            1,
        ),
        (
            "bad JSON in SHELL",
            "FROM busybox\nSHELL [\"/bin/sh\", \"-c\"\nRUN true\n",
            2,
            "SHELL",
            1,
        ),
        (
            "COPY of a missing file",
            "FROM busybox\nRUN true\nCOPY nope.txt /nope.txt\n",
            3,
            "nope.txt",
            1,
        ),
        (
            "a FROM platform this host does not have",
            "FROM busybox\nRUN true\nFROM --platform=linux/arm64 busybox\nRUN true\n",
            3,
            "does not match the specified platform (linux/arm64)",
            1,
        ),
        (
            "a failing RUN",
            "FROM busybox\nRUN echo partial > /p\n\nRUN echo about to fail && exit 7\nRUN echo never\n",
            4,
            "non-zero code: 7",
            7,
        ),
    ];
    // Every case is checked, and all that failed are reported together.
    let mut failed = Vec::new();
    for (what, text, line, needle, code) in cases {
        if let Err(e) = bad_case(&d, &kept, text, *line, needle, *code) {
            failed.push(format!("{what}: {e:#}"));
        }
    }
    ensure!(failed.is_empty(), "{}", failed.join("\n\n"));
    Ok(())
}

/// One bad Dockerfile, built by berth and by the docker CLI.
fn bad_case(
    d: &Berthd,
    kept: &Value,
    text: &str,
    line: usize,
    needle: &str,
    code: i32,
) -> Result<()> {
    let c = Ctx::new(&[("Dockerfile", text)])?;
    let out = berth(d, &["build", "-t", "bad:keep", "-t", "bad:new", &c.p()])?;
    ensure!(out.code == code, "exit {} (want {code}): {out:?}", out.code);
    ensure!(out.stderr.contains(needle), "{}", out.stderr);
    ensure!(
        names_line(&out.stderr, line),
        "the error does not name line {line}:\n{}",
        out.stderr
    );
    // The stock CLI gets the same failure.
    let out = docker_in(
        d,
        c.path(),
        &["build", "-t", "bad:new", "."],
        Some("0"),
        None,
    )?;
    ensure!(
        out.code == code,
        "docker build exited {}: {out:?}",
        out.code
    );
    ensure!(out.stderr.contains(needle), "(docker) {}", out.stderr);
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])?;
    ensure!(!images.contains("bad:new"), "tagged anyway: {images}");
    ensure!(inspect(d, "bad:keep")?["Id"] == *kept, "bad:keep moved");
    assert_nothing_left(d)
}

#[test]
fn the_berth_cli_sends_contexts_as_docker_does() -> Result<()> {
    require_root!();
    let d = Berthd::with_busybox()?;
    let c = Ctx::new(&[
        ("a.txt", "A\n"),
        ("Dockerfile", "FROM busybox\nRUN false\n"),
    ])?;
    let elsewhere = Ctx::new(&[(
        "Build.dockerfile",
        "FROM busybox\nCOPY . /ctx/\nRUN ls -A /ctx > /listing\n",
    )])?;
    // -f outside the context: sent under a generated name that COPY . does not see.
    let f = elsewhere
        .path()
        .join("Build.dockerfile")
        .display()
        .to_string();
    berth_build_ok(&d, &["-f", &f, "-t", "cli:outside", &c.p()])?;
    ensure!(sh(&d, "cli:outside", "cat /listing")? == "Dockerfile\na.txt");
    // `<Dockerfile>.dockerignore` next to it wins over the context's (never sent, never seen).
    std::fs::write(
        elsewhere.path().join("Build.dockerfile.dockerignore"),
        "a.txt\n",
    )?;
    berth_build_ok(&d, &["-f", &f, "-t", "cli:own-ignore", &c.p()])?;
    let listing = sh(&d, "cli:own-ignore", "cat /listing")?;
    ensure!(listing == "Dockerfile", "{listing}");
    std::fs::create_dir_all(c.path().join("sub"))?;
    std::fs::write(
        c.path().join("sub/Dockerfile"),
        "FROM busybox\nCOPY . /ctx/\nRUN ls -A /ctx > /listing\n",
    )?;
    std::fs::write(
        c.path().join("sub/Dockerfile.dockerignore"),
        "a.txt\nDockerfile\n",
    )?;
    berth_build_ok(
        &d,
        &[
            "-f",
            &format!("{}/sub/Dockerfile", c.p()),
            "-t",
            "cli:sub",
            &c.p(),
        ],
    )?;
    let listing = sh(&d, "cli:sub", "cat /listing")?;
    ensure!(listing == "sub", "{listing}");
    std::fs::remove_dir_all(c.path().join("sub"))?;
    // -f relative to the current directory, as docker.
    let out = berth_full(
        &d,
        Some(elsewhere.path()),
        &["build", "-f", "Build.dockerfile", "-t", "cli:rel", &c.p()],
        None,
        &[],
    )?;
    ensure!(out.code == 0, "{out:?}");
    // -f - : the Dockerfile from stdin, the context from the directory.
    let out = berth_full(
        &d,
        None,
        &["build", "-f", "-", "-t", "cli:stdin-df", &c.p()],
        Some(b"FROM busybox\nCOPY a.txt /a\n"),
        &[],
    )?;
    ensure!(out.code == 0, "{out:?}");
    ensure!(sh(&d, "cli:stdin-df", "cat /a")? == "A");
    // - : a Dockerfile alone on stdin.
    let out = berth_full(
        &d,
        None,
        &["build", "-t", "cli:stdin", "-"],
        Some(b"FROM busybox\nRUN echo alone > /alone\n"),
        &[],
    )?;
    ensure!(out.code == 0, "{out:?}");
    ensure!(sh(&d, "cli:stdin", "cat /alone")? == "alone");
    // - : a tar context on stdin (as GNU tar writes it).
    let tarred = Ctx::new(&[
        ("Dockerfile", "FROM busybox\nCOPY b.txt /b\n"),
        ("b.txt", "B\n"),
    ])?;
    let tar_bytes = Command::new("tar")
        .arg("-C")
        .arg(tarred.path())
        .args(["-cf", "-", "."])
        .output()?
        .stdout;
    let out = berth_full(
        &d,
        None,
        &["build", "-t", "cli:tar", "-"],
        Some(&tar_bytes),
        &[],
    )?;
    ensure!(out.code == 0, "{out:?}");
    ensure!(sh(&d, "cli:tar", "cat /b")? == "B");
    // --compress: the same context gzipped on the way.
    let out = berth(
        &d,
        &["build", "--compress", "-f", &f, "-t", "cli:gz", &c.p()],
    )?;
    ensure!(out.code == 0, "{out:?}");

    // -q prints the id only; --iidfile writes it.
    let iid = c.path().with_extension("cli.iid");
    let iid_s = iid.display().to_string();
    let out = berth(&d, &["build", "-q", "--iidfile", &iid_s, "-f", &f, &c.p()])?.ok()?;
    let id = read_iid(&iid)?;
    ensure!(out.stdout == format!("{id}\n"), "{out:?}");
    ensure!(out.stderr.is_empty(), "{out:?}");
    // A failed build leaves no stale iidfile.
    let out = berth(&d, &["build", "-q", "--iidfile", &iid_s, &c.p()])?;
    ensure!(out.code == 1 && !iid.exists(), "{out:?}");
    ensure!(out.stderr.contains("non-zero code"), "{out:?}");

    // The daemon out of reach: 125, as docker's run does.
    let out = common::run_cmd(
        Command::new(berth_cli()?)
            .env("BERTH_NO_AUTOSTART", "1")
            .args(["-H", "unix:///nonexistent/berth-e2e.sock", "build", &c.p()]),
        None,
        Duration::from_secs(30),
    )?;
    ensure!(out.code == 125, "{out:?}");
    ensure!(out.stderr.contains("Cannot connect"), "{out:?}");
    // Flag errors: 125.
    let out = berth(&d, &["build", "-t", "Not A Tag", &c.p()])?;
    ensure!(out.code == 125, "{out:?}");
    // No such context: 1.
    let out = berth(&d, &["build", "/nonexistent/berth-e2e-ctx"])?;
    ensure!(out.code == 1 && out.stderr.contains("not found"), "{out:?}");
    assert_nothing_left(&d)
}
