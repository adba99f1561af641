//! Executor: the layer cache hits and misses exactly where Docker's does.

mod exec_support;

use exec_support::*;

const DF: &str = "FROM base\nARG VERSION=1\nENV APP=/app\nWORKDIR $APP\nCOPY app.c ./\nRUN cc app.c\nCOPY conf/ /etc/app/\nRUN echo $VERSION\nLABEL x=y\nCMD [\"/app/a.out\"]\n";

fn ctx() -> Ctx {
    Ctx::new(&[
        ("app.c", "int main() {}"),
        ("conf/a.conf", "a=1"),
        ("README.md", "docs"),
    ])
}

/// Which of the 9 non-FROM steps were cached, as a string of `c` (cache) and `x` (executed).
fn pattern(out: &str) -> String {
    let mut p = String::new();
    let mut lines = out.lines().peekable();
    while let Some(l) = lines.next() {
        if l.starts_with("Step ") && !l.contains(" : FROM ") {
            p.push(if lines.peek() == Some(&" ---> Using cache") {
                'c'
            } else {
                'x'
            });
        }
    }
    p
}

#[test]
fn unchanged_rebuild_is_all_cache_and_same_image() {
    let mut be = backend_with_base();
    let ctx = ctx();
    let first = build(&mut be, &ctx, DF);
    assert_eq!(pattern(&first.out), "xxxxxxxxx");
    let commits = be.commits;
    let runs = be.runs.len();
    let rootfs_calls = be.rootfs_calls;
    let t = std::time::Instant::now();
    let second = build(&mut be, &ctx, DF);
    let elapsed = t.elapsed();
    assert_eq!(pattern(&second.out), "ccccccccc");
    assert_eq!(second.id(), first.id());
    assert_eq!(second.ok().cached, 9);
    assert_eq!(second.ok().steps, 0);
    assert_eq!(be.commits, commits);
    assert_eq!(be.runs.len(), runs);
    // No image rootfs is needed (mounted) to decide that COPY and WORKDIR steps are cached.
    assert_eq!(be.rootfs_calls, rootfs_calls);
    assert!(elapsed.as_millis() < 100, "cached rebuild took {elapsed:?}");
}

#[test]
fn editing_an_unused_file_changes_nothing() {
    let mut be = backend_with_base();
    let ctx = ctx();
    let first = build(&mut be, &ctx, DF).id();
    ctx.write("README.md", "other docs");
    ctx.write("new.txt", "new");
    let o = build(&mut be, &ctx, DF);
    assert_eq!(pattern(&o.out), "ccccccccc");
    assert_eq!(o.id(), first);
}

#[test]
fn editing_a_copied_file_misses_that_copy_and_everything_after() {
    let mut be = backend_with_base();
    let ctx = ctx();
    build(&mut be, &ctx, DF).id();
    ctx.write("conf/a.conf", "a=2");
    let o = build(&mut be, &ctx, DF);
    assert_eq!(pattern(&o.out), "cccccxxxx");
    ctx.write("app.c", "int main() { return 1; }");
    let o = build(&mut be, &ctx, DF);
    assert_eq!(pattern(&o.out), "cccxxxxxx");
    // Back to the first content: the first build's layers are hit again.
    ctx.write("app.c", "int main() {}");
    ctx.write("conf/a.conf", "a=1");
    let o = build(&mut be, &ctx, DF);
    assert_eq!(pattern(&o.out), "ccccccccc");
}

#[test]
fn mtime_alone_does_not_miss_but_mode_does() {
    let mut be = backend_with_base();
    let ctx = ctx();
    build(&mut be, &ctx, DF).id();
    // Rewriting the same bytes changes the mtime only.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    ctx.write("app.c", "int main() {}");
    assert_eq!(pattern(&build(&mut be, &ctx, DF).out), "ccccccccc");
    ctx.chmod("app.c", 0o755);
    assert_eq!(pattern(&build(&mut be, &ctx, DF).out), "cccxxxxxx");
}

#[test]
fn build_args_miss_only_the_runs_that_see_them() {
    let mut be = backend_with_base();
    let ctx = ctx();
    build(&mut be, &ctx, DF).id();
    // A declared arg with a new value: every RUN after the ARG sees it.
    let o = build_with(&mut be, &ctx, DF, |op| {
        op.build_args = args(&[("VERSION", "2")])
    });
    assert_eq!(pattern(&o.out), "ccccxxxxx");
    // An undeclared one: nothing changes (and a warning).
    let o = build_with(&mut be, &ctx, DF, |op| {
        op.build_args = args(&[("OTHER", "2")])
    });
    assert_eq!(pattern(&o.out), "ccccccccc");
    assert!(o
        .out
        .contains("[Warning] One or more build-args [OTHER] were not consumed"));
    // Proxy args are never part of the key.
    let o = build_with(&mut be, &ctx, DF, |op| {
        op.build_args = args(&[("HTTP_PROXY", "http://p:3128")])
    });
    assert_eq!(pattern(&o.out), "ccccccccc");
    assert!(!o.out.contains("Warning"));
}

#[test]
fn arg_declared_late_misses_only_later_runs() {
    let mut be = backend_with_base();
    let ctx = ctx();
    let df = "FROM base\nRUN early\nARG V=1\nRUN late\n";
    build(&mut be, &ctx, df).id();
    let o = build_with(&mut be, &ctx, df, |op| op.build_args = args(&[("V", "2")]));
    assert_eq!(pattern(&o.out), "ccx");
}

#[test]
fn editing_an_instruction_misses_from_there() {
    let mut be = backend_with_base();
    let ctx = ctx();
    build(&mut be, &ctx, DF).id();
    let edited = DF.replace("LABEL x=y", "LABEL x=z");
    let o = build(&mut be, &ctx, &edited);
    assert_eq!(pattern(&o.out), "cccccccxx");
    let edited = DF.replace("RUN cc app.c", "RUN cc -O2 app.c");
    let o = build(&mut be, &ctx, &edited);
    assert_eq!(pattern(&o.out), "ccccxxxxx");
}

#[test]
fn no_cache_executes_everything_but_still_records() {
    let mut be = backend_with_base();
    let ctx = ctx();
    build(&mut be, &ctx, DF).id();
    let o = build_with(&mut be, &ctx, DF, |op| op.no_cache = true);
    assert_eq!(pattern(&o.out), "xxxxxxxxx");
    let last = o.id();
    let o = build(&mut be, &ctx, DF);
    assert_eq!(o.id(), last);
}

#[test]
fn dockerignore_hides_files_from_the_cache_key() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[("src/a.c", "a"), ("src/gen.o", "obj"), (".git/HEAD", "ref")]);
    let df = "FROM base\nCOPY . /src/\n";
    let ignore = vec!["*/*.o".to_string(), ".git".to_string()];
    let id = build_with(&mut be, &ctx, df, |op| op.ignore = ignore.clone()).id();
    assert!(be.read(&id, "/src/src/a.c").is_some());
    assert!(be.read(&id, "/src/src/gen.o").is_none());
    assert!(!be.image_dir(&id).join("src/.git").exists());
    ctx.write("src/gen.o", "obj2");
    ctx.write(".git/HEAD", "other");
    let o = build_with(&mut be, &ctx, df, |op| op.ignore = ignore.clone());
    assert_eq!(pattern(&o.out), "c");
}

#[test]
fn bind_mount_content_is_part_of_the_run_key() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[("src/x", "1"), ("other", "o")]);
    let df = "FROM base\nRUN --mount=type=bind,source=src,target=/src make\n";
    build(&mut be, &ctx, df).id();
    ctx.write("other", "changed");
    assert_eq!(pattern(&build(&mut be, &ctx, df).out), "c");
    ctx.write("src/x", "2");
    assert_eq!(pattern(&build(&mut be, &ctx, df).out), "x");
}
