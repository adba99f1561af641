//! The parser on every instruction and flag, continuations, directives and quoting: what a
//! Dockerfile author would check against Docker's behaviour.

use berth_build::ast::{
    ArgDecl, CacheSharing, CmdLine, Copy, Dockerfile, Healthcheck, Inst, MountKind, RunNetwork,
};
use berth_build::parse;

fn df(src: &str) -> Dockerfile {
    parse(src).unwrap_or_else(|e| panic!("{e}\n---\n{src}"))
}

/// The instructions of the only stage.
fn insts(body: &str) -> Vec<Inst> {
    let d = df(&format!("FROM alpine\n{body}"));
    d.stages[0]
        .instructions
        .iter()
        .map(|i| i.kind.clone())
        .collect()
}

fn one(body: &str) -> Inst {
    let mut v = insts(body);
    assert_eq!(v.len(), 1, "{body}: {v:?}");
    v.remove(0)
}

fn copy_of(inst: Inst) -> Copy {
    match inst {
        Inst::Copy(c) | Inst::Add(c) => c,
        other => panic!("not COPY/ADD: {other:?}"),
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn from_forms_and_stages() {
    let d = df("ARG BASE=alpine\nFROM --platform=$BUILDPLATFORM ${BASE}:3 AS Build\nRUN make\nfrom scratch\nCOPY --from=build /out /\n");
    assert_eq!(d.meta_args.len(), 1);
    assert_eq!(d.stages.len(), 2);
    let s0 = &d.stages[0];
    assert_eq!(s0.index, 0);
    assert_eq!(
        s0.name.as_deref(),
        Some("build"),
        "stage names are lowercased"
    );
    assert_eq!(s0.image, "${BASE}:3");
    assert_eq!(s0.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(s0.line, 2);
    assert_eq!(
        s0.original,
        "FROM --platform=$BUILDPLATFORM ${BASE}:3 AS Build"
    );
    assert_eq!(s0.instructions.len(), 1);
    let s1 = &d.stages[1];
    assert_eq!(
        (s1.index, s1.name.as_deref(), s1.image.as_str()),
        (1, None, "scratch")
    );
    assert_eq!(s1.line, 4);
    assert_eq!(
        copy_of(s1.instructions[0].kind.clone()).from.as_deref(),
        Some("build")
    );
}

#[test]
fn stage_names() {
    for ok in ["a", "build-1", "x_y.z", "B9"] {
        df(&format!("FROM a AS {ok}\n"));
    }
    for bad in ["1a", "-a", "a/b", "a:b", "é"] {
        let e = parse(&format!("FROM a AS {bad}\n")).unwrap_err();
        assert!(
            e.message.contains("invalid name for build stage"),
            "{bad}: {e}"
        );
    }
    let e = parse("FROM a AS x\nFROM b as X\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("duplicate stage name \"x\""), "{e}");
    let e = parse("FROM a b\n").unwrap_err();
    assert!(e
        .message
        .contains("FROM requires either one or three arguments"));
}

#[test]
fn keywords_are_case_insensitive_and_originals_kept() {
    let d = df("from alpine\nrun echo hi\nWorkDir /app\n");
    let i = &d.stages[0].instructions;
    assert_eq!(i[0].kind, Inst::Run(run_shell("echo hi")));
    assert_eq!(i[0].original, "run echo hi");
    assert_eq!(i[0].line, 2);
    assert_eq!(i[1].kind, Inst::Workdir("/app".into()));
    assert_eq!(i[1].kind.keyword(), "WORKDIR");
}

fn run_shell(s: &str) -> berth_build::ast::Run {
    berth_build::ast::Run {
        cmd: CmdLine::Shell(s.into()),
        mounts: vec![],
        network: None,
        heredocs: vec![],
    }
}

#[test]
fn continuations_comments_and_empty_lines() {
    let src = "FROM alpine\n\n# a comment\nRUN apt-get update && \\\n    # inside\n\n    apt-get install -y \\\n      curl   \\  \n\t  git\nCMD [\"sh\"]\n";
    let d = df(src);
    let i = &d.stages[0].instructions;
    assert_eq!(i.len(), 2);
    assert_eq!(i[0].line, 4);
    assert_eq!(
        i[0].original,
        "RUN apt-get update &&     apt-get install -y       curl   \t  git"
    );
    assert_eq!(
        i[0].kind,
        Inst::Run(run_shell(
            "apt-get update &&     apt-get install -y       curl   \t  git"
        ))
    );
    assert_eq!(i[1].line, 10);
    // CRLF line endings and a trailing continuation at the end of the file.
    let d = df("FROM a\r\nRUN a \\\r\n  b\r\nRUN c \\");
    let i = &d.stages[0].instructions;
    assert_eq!(i[0].kind, Inst::Run(run_shell("a   b")));
    assert_eq!(i[1].kind, Inst::Run(run_shell("c")));
    assert_eq!(i[1].line, 4);
    // A doubled escape at the end is an escaped escape, not a continuation; a line holding
    // only the escape continues.
    let d = df("FROM a\nENV C trailing\\\\\nENV D d\nRUN x \\\n\\\ny\n");
    let i = &d.stages[0].instructions;
    assert_eq!(i.len(), 3);
    assert_eq!(
        i[0].kind,
        Inst::Env(vec![("C".into(), "trailing\\\\".into())])
    );
    assert_eq!(i[2].kind, Inst::Run(run_shell("x y")));
    // Leading whitespace and indented comments are fine.
    let d = df("   FROM a\n   # c\n\tRUN x\n");
    assert_eq!(d.stages[0].instructions[0].line, 3);
}

#[test]
fn backtick_escape_directive() {
    let src = "# escape=`\nFROM mcr.microsoft.com/windows\nRUN dir C:\\ `\n    && echo done\nCOPY C:\\src\\ C:\\dst\\\n";
    let d = df(src);
    assert_eq!(d.escape, '`');
    let i = &d.stages[0].instructions;
    assert_eq!(i[0].kind, Inst::Run(run_shell("dir C:\\     && echo done")));
    let c = copy_of(i[1].kind.clone());
    assert_eq!(c.sources, ["C:\\src\\"]);
    assert_eq!(c.dest, "C:\\dst\\");
    // Directives are case-insensitive but only count before anything else.
    assert_eq!(df("# ESCAPE=`\nFROM a\n").escape, '`');
    assert_eq!(df("\n# escape=`\nFROM a\n").escape, '\\');
    assert_eq!(df("FROM a\n# escape=`\n").escape, '\\');
    assert_eq!(df("# check=skip=all\n# escape=`\nFROM a\n").escape, '`');
    let e = parse("# escape=x\nFROM a\n").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("invalid escape token"), "{e}");
    let e = parse("# escape=`\n# escape=\\\nFROM a\n").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(
        e.message.contains("only one escape parser directive"),
        "{e}"
    );
}

#[test]
fn run_forms_and_flags() {
    assert_eq!(
        one("RUN [\"echo\", \"a b\"]"),
        Inst::Run(berth_build::ast::Run {
            cmd: CmdLine::Exec(strings(&["echo", "a b"])),
            mounts: vec![],
            network: None,
            heredocs: vec![]
        })
    );
    // Not valid JSON: shell form, as written.
    assert_eq!(
        one("RUN [\"echo\", x]"),
        Inst::Run(run_shell("[\"echo\", x]"))
    );
    let Inst::Run(r) = one("RUN --network=none --security=insecure --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1000,gid=1000 pip install x") else { panic!() };
    assert_eq!(r.network, Some(RunNetwork::None));
    assert_eq!(r.cmd, CmdLine::Shell("pip install x".into()));
    let m = &r.mounts[0];
    assert_eq!(m.kind, MountKind::Cache);
    assert_eq!(m.target.as_deref(), Some("/root/.cache"));
    assert_eq!(m.id.as_deref(), Some("pip"));
    assert_eq!(m.sharing, CacheSharing::Locked);
    assert_eq!(
        (m.mode, m.uid, m.gid),
        (Some(0o755), Some(1000), Some(1000))
    );
    assert!(!m.readonly, "cache mounts are writable by default");
    let Inst::Run(r) = one("RUN --network=host --mount=type=bind,from=build,src=/out,dst=/in --mount=type=bind,source=.,target=/ctx,rw true") else { panic!() };
    assert_eq!(r.network, Some(RunNetwork::Host));
    assert_eq!(r.mounts.len(), 2);
    assert_eq!(r.mounts[0].kind, MountKind::Bind);
    assert_eq!(r.mounts[0].from.as_deref(), Some("build"));
    assert_eq!(r.mounts[0].source.as_deref(), Some("/out"));
    assert_eq!(r.mounts[0].target.as_deref(), Some("/in"));
    assert!(r.mounts[0].readonly, "bind mounts are read-only by default");
    assert!(!r.mounts[1].readonly);
    let Inst::Run(r) = one("RUN --mount=type=tmpfs,destination=/tmp,size=64m --mount=type=secret,id=tok,env=TOKEN,required --mount=type=ssh,required=false --mount=type=cache,target=/c,ro --network=default x") else { panic!() };
    assert_eq!(r.network, Some(RunNetwork::Default));
    assert_eq!(r.mounts[0].kind, MountKind::Tmpfs);
    assert_eq!(r.mounts[0].size, Some(64 << 20));
    assert_eq!(r.mounts[0].target.as_deref(), Some("/tmp"));
    assert_eq!(r.mounts[1].kind, MountKind::Secret);
    assert_eq!(r.mounts[1].id.as_deref(), Some("tok"));
    assert_eq!(r.mounts[1].env.as_deref(), Some("TOKEN"));
    assert!(r.mounts[1].required);
    assert!(r.mounts[1].readonly);
    assert_eq!(r.mounts[2].kind, MountKind::Ssh);
    assert!(!r.mounts[2].required);
    assert!(r.mounts[3].readonly, "ro on a cache mount");
    assert_eq!(r.mounts[3].sharing, CacheSharing::Shared);
    // A RUN without a command is accepted, as Docker does.
    assert_eq!(one("RUN"), Inst::Run(run_shell("")));
}

#[test]
fn bad_run_flags() {
    for (line, want) in [
        ("RUN --foo=bar x", "unknown flag: --foo"),
        ("RUN --network=bridge x", "unsupported network mode"),
        ("RUN --network x", "missing a value on flag: --network"),
        ("RUN --security=weird x", "unsupported security mode"),
        ("RUN --mount=type=nfs,target=/x x", "unsupported mount type"),
        ("RUN --mount=type=bind x", "needs a target"),
        (
            "RUN --mount=type=cache,target=/x,sharing=all x",
            "unsupported sharing value",
        ),
        (
            "RUN --mount=type=bind,target=/x,sharing=locked x",
            "invalid cache sharing",
        ),
        (
            "RUN --mount=type=bind,target=/x,mode=0700 x",
            "mode not allowed",
        ),
        (
            "RUN --mount=type=cache,target=/x,mode=99 x",
            "invalid value 99 for mode",
        ),
        (
            "RUN --mount=type=cache,target=/x,uid=me x",
            "invalid value me for uid",
        ),
        (
            "RUN --mount=type=cache,target=/x,size=1m x",
            "unexpected key 'size'",
        ),
        (
            "RUN --mount=type=tmpfs,target=/x,size=lots x",
            "invalid value for size",
        ),
        (
            "RUN --mount=type=bind,target=/x,required x",
            "unexpected key 'required'",
        ),
        (
            "RUN --mount=type=cache,target=/x,bogus=1 x",
            "unexpected key 'bogus'",
        ),
        (
            "RUN --mount=type=cache,target=/x,justaword x",
            "must be a key=value pair",
        ),
        (
            "RUN --mount=type=cache,target=/x,ro=maybe x",
            "invalid value for ro",
        ),
        ("RUN --mount=type=secret x", "invalid secret mount"),
        ("RUN --mount=type=secret,env=A x", "invalid secret mount"),
        (
            "RUN --mount=type=secret,id=a,from=b x",
            "secret mount should not have a from",
        ),
        ("RUN --mount=type=secret,id=a,src=b x", "both source and id"),
        ("RUN [1, 2]", "arrays must be comprised of strings only"),
    ] {
        let e = parse(&format!("FROM a\n\n{line}\n")).unwrap_err();
        assert_eq!(e.line, 3, "{line}");
        assert!(e.message.contains(want), "{line}: {e}");
    }
}

#[test]
fn cmd_entrypoint_shell() {
    assert_eq!(
        one("CMD [\"nginx\", \"-g\", \"daemon off;\"]"),
        Inst::Cmd(CmdLine::Exec(strings(&["nginx", "-g", "daemon off;"])))
    );
    assert_eq!(
        one("CMD echo $HOME"),
        Inst::Cmd(CmdLine::Shell("echo $HOME".into()))
    );
    assert_eq!(one("CMD []"), Inst::Cmd(CmdLine::Exec(vec![])));
    assert_eq!(
        one("ENTRYPOINT [\"/bin/tini\", \"--\"]"),
        Inst::Entrypoint(CmdLine::Exec(strings(&["/bin/tini", "--"])))
    );
    // Single quotes are not JSON: shell form (Docker's rule).
    assert_eq!(
        one("ENTRYPOINT ['a', 'b']"),
        Inst::Entrypoint(CmdLine::Shell("['a', 'b']".into()))
    );
    assert_eq!(
        one("SHELL [\"powershell\", \"-Command\"]"),
        Inst::Shell(strings(&["powershell", "-Command"]))
    );
    for (line, want) in [
        (
            "SHELL /bin/bash -c",
            "SHELL requires the arguments to be in JSON form",
        ),
        ("SHELL []", "SHELL requires at least one argument"),
        ("SHELL", "SHELL requires at least one argument"),
        ("CMD [\"a\", 1]", "strings only"),
        ("CMD --flag", "unknown flag: --flag"),
    ] {
        let e = parse(&format!("FROM a\n{line}\n")).unwrap_err();
        assert!(e.message.contains(want), "{line}: {e}");
        assert_eq!(e.line, 2);
    }
}

#[test]
fn env_and_label_quoting() {
    assert_eq!(
        one("ENV A=1 B=\"two words\" C=three\\ words D='$x' E="),
        Inst::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "\"two words\"".into()),
            ("C".into(), "three\\ words".into()),
            ("D".into(), "'$x'".into()),
            ("E".into(), "".into()),
        ])
    );
    // The old form: the value is the rest of the line, spaces and all.
    assert_eq!(
        one("ENV PATH /usr/local/bin:$PATH  x"),
        Inst::Env(vec![("PATH".into(), "/usr/local/bin:$PATH  x".into())])
    );
    assert_eq!(
        one("ENV A=\"x \\\" y\" B=z"),
        Inst::Env(vec![
            ("A".into(), "\"x \\\" y\"".into()),
            ("B".into(), "z".into())
        ])
    );
    assert_eq!(
        one("LABEL \"com.example.vendor\"=\"ACME Inc\" version=1.0 description=\"multi\\\n   line\""),
        Inst::Label(vec![
            ("\"com.example.vendor\"".into(), "\"ACME Inc\"".into()),
            ("version".into(), "1.0".into()),
            ("description".into(), "\"multi   line\"".into()),
        ])
    );
    assert_eq!(
        one("LABEL maintainer someone@example.com"),
        Inst::Label(vec![("maintainer".into(), "someone@example.com".into())])
    );
    for (line, want) in [
        ("ENV", "ENV requires at least one argument"),
        ("ENV A", "ENV must have two arguments"),
        ("ENV A=1 B", "can't find = in \"B\""),
        ("ENV =x", "ENV names can not be blank"),
        ("LABEL", "LABEL requires at least one argument"),
        ("LABEL a=b c", "can't find = in \"c\""),
    ] {
        let e = parse(&format!("FROM a\n{line}\n")).unwrap_err();
        assert!(e.message.contains(want), "{line}: {e}");
    }
}

#[test]
fn arg_expose_volume_user_workdir_misc() {
    assert_eq!(
        one("ARG A B=2 C=\"x y\""),
        Inst::Arg(vec![
            ArgDecl {
                name: "A".into(),
                default: None
            },
            ArgDecl {
                name: "B".into(),
                default: Some("2".into())
            },
            ArgDecl {
                name: "C".into(),
                default: Some("\"x y\"".into())
            },
        ])
    );
    assert_eq!(
        one("EXPOSE 80/tcp  443 ${PORT}"),
        Inst::Expose(strings(&["80/tcp", "443", "${PORT}"]))
    );
    assert_eq!(
        one("VOLUME /data /logs"),
        Inst::Volume(strings(&["/data", "/logs"]))
    );
    assert_eq!(
        one("VOLUME [\"/data\", \"/my logs\"]"),
        Inst::Volume(strings(&["/data", "/my logs"]))
    );
    assert_eq!(one("USER app:app"), Inst::User("app:app".into()));
    assert_eq!(
        one("WORKDIR \"/my dir\""),
        Inst::Workdir("\"/my dir\"".into())
    );
    assert_eq!(
        one("STOPSIGNAL SIGQUIT"),
        Inst::StopSignal("SIGQUIT".into())
    );
    assert_eq!(
        one("MAINTAINER Jane <jane@example.com>"),
        Inst::Maintainer("Jane <jane@example.com>".into())
    );
    for (line, want) in [
        ("ARG", "ARG requires at least one argument"),
        ("ARG =1", "ARG names can not be blank"),
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("VOLUME", "VOLUME requires at least one argument"),
        (
            "VOLUME [\"\"]",
            "VOLUME specified can not be an empty string",
        ),
        ("USER", "USER requires exactly one argument"),
        ("WORKDIR", "WORKDIR requires exactly one argument"),
        ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
        ("MAINTAINER", "MAINTAINER requires exactly one argument"),
        ("WORKDIR --x=1 /a", "unknown flag: --x"),
    ] {
        let e = parse(&format!("FROM a\n{line}\n")).unwrap_err();
        assert!(e.message.contains(want), "{line}: {e}");
    }
}

#[test]
fn copy_and_add() {
    let c = copy_of(one("COPY --from=build --chown=app:app --chmod=0644 --link --parents --exclude=*.md --exclude=.git a b/ /dst/"));
    assert_eq!(c.sources, ["a", "b/"]);
    assert_eq!(c.dest, "/dst/");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("app:app"));
    assert_eq!(c.chmod.as_deref(), Some("0644"));
    assert!(c.link && c.parents && !c.json);
    assert_eq!(c.exclude, ["*.md", ".git"]);
    let c = copy_of(one("COPY [\"a b\", \"c\", \"/d e/\"]"));
    assert!(c.json);
    assert_eq!(c.sources, ["a b", "c"]);
    assert_eq!(c.dest, "/d e/");
    let inst = one(
        "ADD --checksum=sha256:abc --keep-git-dir=true --link=false https://example.com/x.tgz /x",
    );
    assert!(matches!(inst, Inst::Add(_)));
    let c = copy_of(inst);
    assert_eq!(c.checksum.as_deref(), Some("sha256:abc"));
    assert!(c.keep_git_dir && !c.link);
    for (line, want) in [
        ("COPY a", "COPY requires at least two arguments"),
        ("COPY", "COPY requires at least two arguments"),
        ("ADD [\"a\"]", "ADD requires at least two arguments"),
        ("ADD --from=x a b", "unknown flag: --from"),
        ("COPY --checksum=sha256:x a b", "unknown flag: --checksum"),
        ("COPY --from a b", "missing a value on flag: --from"),
        (
            "COPY --link=maybe a b",
            "expecting boolean value for flag --link",
        ),
        (
            "COPY --from=a --from=b a b",
            "duplicate flag specified: --from",
        ),
        ("COPY a <<EOF", "cannot accept a heredoc as a destination"),
    ] {
        let e = parse(&format!("FROM a\n{line}\n")).unwrap_err();
        assert!(e.message.contains(want), "{line}: {e}");
        assert_eq!(e.line, 2);
    }
}

#[test]
fn healthcheck() {
    assert_eq!(
        one("HEALTHCHECK NONE"),
        Inst::Healthcheck(Healthcheck::None)
    );
    assert_eq!(
        one("HEALTHCHECK --interval=30s --timeout=5s --start-period=1m --start-interval=2s --retries=3 CMD curl -f http://localhost/ || exit 1"),
        Inst::Healthcheck(Healthcheck::Cmd {
            cmd: CmdLine::Shell("curl -f http://localhost/ || exit 1".into()),
            interval: Some("30s".into()),
            timeout: Some("5s".into()),
            start_period: Some("1m".into()),
            start_interval: Some("2s".into()),
            retries: Some("3".into()),
        })
    );
    assert_eq!(
        one("healthcheck cmd [\"/bin/check\"]"),
        Inst::Healthcheck(Healthcheck::Cmd {
            cmd: CmdLine::Exec(strings(&["/bin/check"])),
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None,
        })
    );
    for (line, want) in [
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK RUN x", "Unknown type \"RUN\" in HEALTHCHECK"),
        ("HEALTHCHECK --interval=5 CMD x", "invalid duration"),
        (
            "HEALTHCHECK --interval=1us CMD x",
            "cannot be less than 1ms",
        ),
        (
            "HEALTHCHECK --retries=-1 CMD x",
            "--retries cannot be negative",
        ),
        ("HEALTHCHECK --retries=x CMD x", "--retries"),
        ("HEALTHCHECK --every=1s CMD x", "unknown flag: --every"),
    ] {
        let e = parse(&format!("FROM a\n{line}\n")).unwrap_err();
        assert!(e.message.contains(want), "{line}: {e}");
    }
}

#[test]
fn onbuild() {
    assert_eq!(one("ONBUILD RUN make"), Inst::Onbuild("RUN make".into()));
    assert_eq!(
        one("onbuild  COPY --from=x a /b"),
        Inst::Onbuild("COPY --from=x a /b".into())
    );
    for (line, want) in [
        (
            "ONBUILD ONBUILD RUN x",
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        (
            "ONBUILD maintainer x",
            "MAINTAINER isn't allowed as an ONBUILD trigger",
        ),
        ("ONBUILD", "ONBUILD requires at least one argument"),
        ("ONBUILD BOGUS x", "unknown instruction: BOGUS"),
        ("ONBUILD COPY a", "COPY requires at least two arguments"),
    ] {
        let e = parse(&format!("FROM a\n{line}\n")).unwrap_err();
        assert!(e.message.contains(want), "{line}: {e}");
    }
}

#[test]
fn unknown_instructions_and_missing_from() {
    let e = parse("FROM a\nRUN x\nFOO bar\n").unwrap_err();
    assert_eq!(e.line, 3);
    assert!(e.message.starts_with("unknown instruction: FOO"), "{e}");
    let e = parse("FROM a\nRUNN x\n").unwrap_err();
    assert!(e.message.contains("did you mean RUN?"), "{e}");
    let e = parse("# hi\nARG X\n\nRUN x\nFROM a\n").unwrap_err();
    assert_eq!(e.line, 4);
    assert!(
        e.message.contains("no build stage in current context"),
        "{e}"
    );
    let e = parse("ARG X\n").unwrap_err();
    assert!(e.message.contains("no stages"), "{e}");
    let e = parse("# only a comment\n\n").unwrap_err();
    assert!(e.message.contains("file with no instructions"), "{e}");
    let e = parse("").unwrap_err();
    assert_eq!(e.line, 1);
    assert_eq!(
        e.to_string(),
        "dockerfile parse error on line 1: file with no instructions"
    );
}

#[test]
fn utf8_and_bom() {
    let d = df("\u{feff}FROM alpine\nLABEL descr=\"naïve café ☕\"\nRUN echo ü\\\n  ö\n");
    let i = &d.stages[0].instructions;
    assert_eq!(
        i[0].kind,
        Inst::Label(vec![("descr".into(), "\"naïve café ☕\"".into())])
    );
    assert_eq!(i[1].kind, Inst::Run(run_shell("echo ü  ö")));
}
