//! Executor: stages, ARG/ENV scoping, config instructions, output, errors.

mod exec_support;

use exec_support::*;

#[test]
fn output_is_docker_classic() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[("a.txt", "A")]);
    let o = build(
        &mut be,
        &ctx,
        "FROM base\nENV A=1\nCOPY a.txt /a.txt\nRUN echo hi\n",
    );
    let id = o.id();
    let base = be.names["base"].clone();
    let lines: Vec<&str> = o.out.lines().collect();
    assert_eq!(lines[0], "Step 1/4 : FROM base");
    assert_eq!(lines[1], format!(" ---> {}", &base[7..19]));
    assert_eq!(lines[2], "Step 2/4 : ENV A=1");
    assert!(
        lines[3].starts_with(" ---> ") && lines[3].len() == 18,
        "{}",
        lines[3]
    );
    assert_eq!(lines[4], "Step 3/4 : COPY a.txt /a.txt");
    assert_eq!(lines[6], "Step 4/4 : RUN echo hi");
    assert_eq!(lines[7], " ---> Running in 0123456789ab");
    assert_eq!(*lines.last().unwrap(), format!(" ---> {}", &id[7..19]));
    assert_eq!(o.ok().steps, 3);
    assert_eq!(o.ok().cached, 0);
    let h = be.history(&id);
    assert_eq!(h[0], "/bin/sh -c #(nop)  ENV A=1");
    assert!(h[1].starts_with("/bin/sh -c #(nop) COPY file:"), "{}", h[1]);
    assert!(h[1].ends_with(" in /a.txt "), "{}", h[1]);
    assert_eq!(h[2], "/bin/sh -c echo hi");
}

#[test]
fn only_the_stages_the_target_needs_are_built() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    let df = "FROM base AS unused\nRUN echo unused\n\
              FROM base AS builder\nRUN echo build\n\
              FROM base AS other\nRUN echo other\n\
              FROM base\nCOPY --from=builder /bin/sh /out\nRUN echo final\n";
    let o = build(&mut be, &ctx, df);
    o.id();
    let cmds: Vec<String> = be
        .runs
        .iter()
        .map(|r| r.argv.last().unwrap().clone())
        .collect();
    assert_eq!(cmds, vec!["echo build", "echo final"]);
    // 2 stages: FROM + RUN, FROM + COPY + RUN.
    assert!(
        o.out.starts_with("Step 1/5 : FROM base AS builder\n"),
        "{}",
        o.out
    );
    assert!(o.out.contains("Step 5/5 : RUN echo final"));
    assert!(!o.out.contains("unused"));

    // --target stops at a stage (case-insensitive) and builds its dependencies only.
    let mut be = backend_with_base();
    let o = build_with(&mut be, &ctx, df, |op| op.target = Some("OTHER".into()));
    o.id();
    let cmds: Vec<String> = be
        .runs
        .iter()
        .map(|r| r.argv.last().unwrap().clone())
        .collect();
    assert_eq!(cmds, vec!["echo other"]);

    let o = build_with(&mut be, &ctx, df, |op| op.target = Some("nope".into()));
    assert!(o.err().to_string().contains("\"nope\""), "{}", o.err());
}

#[test]
fn dependencies_by_index_from_and_mount() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    let df = "FROM base\nRUN echo zero\n\
              FROM base AS one\nRUN echo one\n\
              FROM one AS two\nRUN echo two\n\
              FROM base AS skipped\nRUN echo skipped\n\
              FROM base AS three\nRUN echo three\n\
              FROM two\nCOPY --from=0 /bin/sh /x\nRUN --mount=type=bind,from=three,target=/t echo last\n";
    build(&mut be, &ctx, df).id();
    let cmds: Vec<String> = be
        .runs
        .iter()
        .map(|r| r.argv.last().unwrap().clone())
        .collect();
    assert_eq!(
        cmds,
        vec![
            "echo zero",
            "echo one",
            "echo two",
            "echo three",
            "echo last"
        ]
    );
}

#[test]
fn from_an_earlier_stage_inherits_its_config_and_files() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[("f", "data")]);
    let df = "FROM base AS a\nENV X=1\nCOPY f /f\nFROM a\nENV Y=2\n";
    let id = build(&mut be, &ctx, df).id();
    let env = be.config(&id).env.unwrap();
    assert!(env.contains(&"X=1".to_string()) && env.contains(&"Y=2".to_string()));
    assert_eq!(be.read(&id, "/f").as_deref(), Some("data"));
}

#[test]
fn meta_args_only_in_from_unless_redeclared() {
    let mut be = backend_with_base();
    be.add_image("base:2", &[], Default::default());
    let ctx = Ctx::new(&[]);
    let df = "ARG TAG=1\nARG V=meta\nFROM base${TAG:+:2}\nRUN echo [$TAG]\nENV A=[${V}]\nARG V\nENV B=[${V}]\n";
    let o = build_with(&mut be, &ctx, df, |op| {
        op.build_args = args(&[("TAG", "x")])
    });
    let id = o.id();
    assert!(be.image_lookups.contains(&"base:2".to_string()));
    let env = be.config(&id).env.unwrap_or_default();
    assert!(env.contains(&"A=[]".to_string()), "{env:?}");
    assert!(env.contains(&"B=[meta]".to_string()), "{env:?}");
    // RUN sees no TAG: it was not re-declared in the stage.
    assert!(!be.runs[0].env.iter().any(|e| e.starts_with("TAG=")));
    assert!(!o.out.contains("not consumed"));
}

#[test]
fn build_args_override_defaults_env_wins_and_history_records_them() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    let df = "FROM base\nARG A=1\nARG B\nARG C=c\nENV C=env\nRUN make\nENV D=$A-$B-$C\n";
    let o = build_with(&mut be, &ctx, df, |op| {
        op.build_args = args(&[
            ("B", "2"),
            ("UNUSED", "u"),
            ("ZZ", "z"),
            ("http_proxy", "http://p"),
        ]);
    });
    let id = o.id();
    let run = &be.runs[0];
    assert!(run.env.contains(&"A=1".to_string()));
    assert!(run.env.contains(&"B=2".to_string()));
    assert!(run.env.contains(&"C=env".to_string()));
    assert!(!run.env.contains(&"C=c".to_string()));
    assert!(run.env.contains(&"http_proxy=http://p".to_string()));
    let h = be.history(&id);
    assert!(
        h.contains(&"|2 A=1 B=2 /bin/sh -c make".to_string()),
        "{h:?}"
    );
    assert!(
        h.contains(&"/bin/sh -c #(nop)  ENV D=1-2-env".to_string()),
        "{h:?}"
    );
    assert!(!h.iter().any(|l| l.contains("proxy")));
    assert!(
        o.out
            .contains("[Warning] One or more build-args [UNUSED ZZ] were not consumed\n"),
        "{}",
        o.out
    );
}

#[test]
fn env_in_one_instruction_uses_the_previous_values() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    let df = "FROM base\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n";
    let id = build(&mut be, &ctx, df).id();
    let env = be.config(&id).env.unwrap();
    assert!(env.contains(&"abc=bye".to_string()));
    assert!(env.contains(&"def=hello".to_string()));
    assert!(env.contains(&"ghi=bye".to_string()));
    // PATH from the base image is kept, first.
    assert!(env[0].starts_with("PATH="));
}

#[test]
fn platform_args_are_predefined() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    let df = "FROM base\nRUN echo $TARGETARCH\nARG TARGETARCH\nARG TARGETPLATFORM\nRUN echo $TARGETARCH\n";
    let id = build(&mut be, &ctx, df).id();
    assert!(!be.runs[0].env.iter().any(|e| e.starts_with("TARGETARCH=")));
    assert!(be.runs[1].env.contains(&"TARGETARCH=amd64".to_string()));
    assert!(be.runs[1]
        .env
        .contains(&"TARGETPLATFORM=linux/amd64".to_string()));
    let _ = id;
}

#[test]
fn config_instructions_have_dockers_shapes() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    let df = r#"FROM base
ARG P=8080
EXPOSE 80 $P/udp 9000-9002
LABEL version="1.0" "com.example.x"=y
VOLUME /data ["/other"]
USER app
STOPSIGNAL SIGKILL
HEALTHCHECK --interval=30s --timeout=5s --retries=3 CMD curl -f http://localhost/ || exit 1
SHELL ["/bin/bash", "-c"]
CMD echo hi
MAINTAINER someone
"#;
    let id = build(&mut be, &ctx, df).id();
    let c = be.config(&id);
    let ports: Vec<&String> = c.exposed_ports.as_ref().unwrap().keys().collect();
    assert_eq!(
        ports,
        vec!["80/tcp", "8080/udp", "9000/tcp", "9001/tcp", "9002/tcp"]
    );
    let labels = c.labels.unwrap();
    assert_eq!(labels["version"], "1.0");
    assert_eq!(labels["com.example.x"], "y");
    let vols: Vec<&String> = c.volumes.as_ref().unwrap().keys().collect();
    assert_eq!(vols.len(), 2);
    assert_eq!(c.user.as_deref(), Some("app"));
    assert_eq!(c.stop_signal.as_deref(), Some("SIGKILL"));
    assert_eq!(
        c.healthcheck.unwrap(),
        serde_json::json!({
            "Test": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
            "Interval": 30_000_000_000i64,
            "Timeout": 5_000_000_000i64,
            "Retries": 3
        })
    );
    assert_eq!(c.shell.unwrap(), vec!["/bin/bash", "-c"]);
    // CMD shell form after SHELL uses it.
    assert_eq!(c.cmd.unwrap(), vec!["/bin/bash", "-c", "echo hi"]);
    assert_eq!(be.images[&id].author.as_deref(), Some("someone"));
}

#[test]
fn healthcheck_exec_and_none() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    let id = build(
        &mut be,
        &ctx,
        "FROM base\nHEALTHCHECK CMD [\"/bin/check\", \"-q\"]\n",
    )
    .id();
    assert_eq!(
        be.config(&id).healthcheck.unwrap(),
        serde_json::json!({"Test": ["CMD", "/bin/check", "-q"]})
    );
    let id = build(&mut be, &ctx, "FROM base\nHEALTHCHECK NONE\n").id();
    assert_eq!(
        be.config(&id).healthcheck.unwrap(),
        serde_json::json!({"Test": ["NONE"]})
    );
}

#[test]
fn entrypoint_resets_inherited_cmd_but_not_one_set_in_the_stage() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    let id = build(&mut be, &ctx, "FROM base\nENTRYPOINT [\"/app\"]\n").id();
    let c = be.config(&id);
    assert_eq!(c.entrypoint.unwrap(), vec!["/app"]);
    assert_eq!(c.cmd, None);
    let id = build(
        &mut be,
        &ctx,
        "FROM base\nCMD [\"--help\"]\nENTRYPOINT /app run\n",
    )
    .id();
    let c = be.config(&id);
    assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "/app run"]);
    assert_eq!(c.cmd.unwrap(), vec!["--help"]);
}

#[test]
fn workdir_is_created_once_and_relative_to_the_previous() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    let id = build(
        &mut be,
        &ctx,
        "FROM base\nWORKDIR /app\nWORKDIR src/../lib\nWORKDIR /tmp\n",
    )
    .id();
    let c = be.config(&id);
    assert_eq!(c.working_dir.as_deref(), Some("/tmp"));
    assert!(be.image_dir(&id).join("app/lib").is_dir());
    let h = be.history(&id);
    assert_eq!(h[1], "/bin/sh -c #(nop)  WORKDIR /app/lib");
    // /tmp exists in the base: config only (same tree as its parent).
    let img = &be.images[&id];
    let parent = img.parent.clone().unwrap();
    assert!(img.layer.is_none());
    assert_eq!(be.images[&parent].layer.as_ref().map(|l| l.len()), Some(2));
    // /app was new: a layer with the directory.
    let first = be.images[&be.images[&parent].parent.clone().unwrap()].clone();
    let layer = first.layer.unwrap();
    assert_eq!(layer.len(), 1);
    assert_eq!(
        (layer[0].path.as_str(), layer[0].kind, layer[0].mode),
        ("app", 'd', 0o755)
    );
}

#[test]
fn onbuild_triggers_run_after_from_and_are_not_inherited() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[("trigger.txt", "t")]);
    let parent = build(
        &mut be,
        &ctx,
        "FROM base\nONBUILD run echo from-trigger\nONBUILD COPY trigger.txt /t.txt\n",
    )
    .id();
    assert_eq!(
        be.config(&parent).on_build.unwrap(),
        vec!["RUN echo from-trigger", "COPY trigger.txt /t.txt"]
    );
    be.names.insert("withtriggers".into(), parent);
    let o = build(&mut be, &ctx, "FROM withtriggers\nENV X=1\n");
    let id = o.id();
    assert!(
        o.out.contains("# Executing 2 build triggers\n"),
        "{}",
        o.out
    );
    assert_eq!(
        be.runs.last().unwrap().argv.last().unwrap(),
        "echo from-trigger"
    );
    assert_eq!(be.read(&id, "/t.txt").as_deref(), Some("t"));
    assert_eq!(be.config(&id).on_build, None);
}

#[test]
fn errors_name_the_line() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[("a", "")]);
    let o = build(&mut be, &ctx, "FROM base\n\nCOPY missing.txt /x\n");
    let e = o.err();
    assert_eq!(e.line(), Some(3));
    assert!(
        e.to_string()
            .contains("file not found in build context or excluded by .dockerignore: stat missing.txt: file does not exist"),
        "{e}"
    );
    let o = build(&mut be, &ctx, "FROM nosuchimage\n");
    assert_eq!(o.err().line(), Some(1));
    let o = build(&mut be, &ctx, "FROM base\nEXPOSE 80\nEXPOSE notaport\n");
    assert_eq!(o.err().line(), Some(3));
    assert!(o.err().to_string().contains("notaport"));
    be.effect = Box::new(|req, _| {
        if req.argv.last().is_some_and(|c| c == "false") {
            return Err(berth_build::BackendError::RunFailed {
                command: req.argv.join(" "),
                code: 1,
            });
        }
        Ok(())
    });
    let o = build(&mut be, &ctx, "FROM base\nRUN true\nRUN false\n");
    assert_eq!(o.err().line(), Some(3));
    assert_eq!(
        o.err().to_string(),
        "The command '/bin/sh -c false' returned a non-zero code: 1"
    );
    let o = build(&mut be, &ctx, "FROM base\nRUN --mount=type=ssh true\n");
    assert!(o.err().to_string().contains("not supported"));
    assert_eq!(o.err().line(), Some(2));
}

#[test]
fn scratch_and_labels_option() {
    let mut be = TestBackend::new();
    let ctx = Ctx::new(&[("hello", "hi")]);
    let o = build_with(&mut be, &ctx, "FROM scratch\nCOPY hello /\n", |op| {
        op.labels.insert("team".into(), "core".into());
    });
    let id = o.id();
    assert!(
        o.out.starts_with("Step 1/3 : FROM scratch\n ---> \n"),
        "{}",
        o.out
    );
    assert!(
        o.out.contains("Step 3/3 : LABEL \"team\"='core'"),
        "{}",
        o.out
    );
    assert_eq!(be.config(&id).labels.unwrap()["team"], "core");
    assert_eq!(be.read(&id, "/hello").as_deref(), Some("hi"));
    // An empty scratch stage produces no image.
    let o = build(&mut be, &ctx, "FROM scratch\n");
    assert!(o.err().to_string().contains("No image was generated"));
}

#[test]
fn run_exec_form_and_heredocs() {
    let mut be = backend_with_base();
    let ctx = Ctx::new(&[]);
    let df = "FROM base\nRUN [\"/bin/echo\", \"a b\"]\nRUN <<EOF\necho one\necho two\nEOF\nRUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\nRUN cat <<A > /x\nbody\nA\n";
    let id = build(&mut be, &ctx, df).id();
    assert_eq!(be.runs[0].argv, vec!["/bin/echo", "a b"]);
    assert_eq!(
        be.runs[1].argv,
        vec!["/bin/sh", "-c", "echo one\necho two\n"]
    );
    assert_eq!(be.runs[2].argv, vec!["/dev/pipes/EOF"]);
    assert!(matches!(&be.runs[2].mounts[0],
        berth_build::backend::RunMountSpec::Bind { target, readonly: true, .. } if target == "/dev/pipes"));
    assert_eq!(
        be.runs[3].argv,
        vec!["/bin/sh", "-c", "cat <<A > /x\nbody\nA\n"]
    );
    let h = be.history(&id);
    assert_eq!(h[0], "/bin/echo a b");
}

#[test]
fn run_mounts_resolve_to_host_paths() {
    let mut be = backend_with_base();
    let secret = be.tmp.path().join("s.txt");
    std::fs::write(&secret, "s3cret").unwrap();
    be.secrets.insert("tok".into(), secret.clone());
    let ctx = Ctx::new(&[("src/main.c", "int main;")]);
    let df = "FROM base\nRUN --mount=type=bind,source=src,target=/src --mount=type=cache,target=/root/.cache --mount=type=tmpfs,target=/scratch --mount=type=secret,id=tok --mount=type=secret,id=tok,env=TOKEN --network=none make\n";
    build(&mut be, &ctx, df).id();
    use berth_build::backend::RunMountSpec;
    let r = &be.runs[0];
    assert_eq!(r.network, berth_build::ast::RunNetwork::None);
    assert!(r.env.contains(&"TOKEN=s3cret".to_string()));
    assert_eq!(r.mounts.len(), 4, "{:?}", r.mounts);
    assert_eq!(
        r.mounts[0],
        RunMountSpec::Bind {
            source: ctx.path().join("src"),
            target: "/src".into(),
            readonly: true
        }
    );
    assert!(
        matches!(&r.mounts[1], RunMountSpec::Bind { target, readonly: false, .. } if target == "/root/.cache")
    );
    assert_eq!(
        r.mounts[2],
        RunMountSpec::Tmpfs {
            target: "/scratch".into(),
            size: None
        }
    );
    assert_eq!(
        r.mounts[3],
        RunMountSpec::Bind {
            source: secret,
            target: "/run/secrets/tok".into(),
            readonly: true
        }
    );
    // rw on a bind: a scratch view, its writes thrown away.
    build(
        &mut be,
        &ctx,
        "FROM base\nRUN --mount=type=bind,source=src,target=/src,rw make\n",
    )
    .id();
    assert_eq!(
        be.runs.last().unwrap().mounts,
        vec![RunMountSpec::Scratch {
            source: ctx.path().join("src"),
            target: "/src".into(),
        }]
    );
    let o = build(
        &mut be,
        &ctx,
        "FROM base\nRUN --mount=type=secret,id=missing,required cat x\n",
    );
    assert!(o.err().to_string().contains("missing"), "{}", o.err());
}
