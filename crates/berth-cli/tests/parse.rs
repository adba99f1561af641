//! What a user sees from argument parsing, through the real binary and without a daemon: help
//! texts, docker's exit code 125 for a bad flag, and the version line. The subcommands' flags are
//! built lazily (clap's `defer`), so these check that nothing of that shows.

use std::process::{Command, Output};

const BERTH: &str = env!("CARGO_BIN_EXE_berth");

fn berth(args: &[&str]) -> Output {
    Command::new(BERTH)
        .args(args)
        .env("BERTH_HOST", "unix:///nonexistent/berth-parse-test.sock")
        .env("BERTH_NO_AUTOSTART", "1")
        .env_remove("DOCKER_HOST")
        .output()
        .expect("run berth")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_flag_prints_the_version() {
    let out = berth(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout),
        format!("berth {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn run_help_names_the_command_and_every_flag_group() {
    for argv in [&["run", "--help"][..], &["container", "run", "--help"]] {
        let out = berth(argv);
        assert_eq!(out.status.code(), Some(0), "{argv:?}");
        let s = text(&out.stdout);
        assert!(
            s.starts_with("Create and run a new container from an image\n\nUsage: berth "),
            "{argv:?}: {s}"
        );
        // Flags of RunArgs itself and of the flattened container options.
        for flag in [
            "--detach",
            "--sig-proxy",
            "--rm",
            "--network <NETWORK>",
            "--pull <PULL>",
        ] {
            assert!(s.contains(flag), "{argv:?} lacks {flag}: {s}");
        }
    }
    let out = berth(&["create", "--help"]);
    assert!(text(&out.stdout).starts_with("Create a new container\n"));
}

#[test]
fn group_help_lists_subcommands_with_their_descriptions() {
    let out = berth(&["container", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let s = text(&out.stdout);
    assert!(
        s.contains("  ls       List containers [aliases: ps, list]"),
        "{s}"
    );
    assert!(
        s.contains("  run      Create and run a new container from an image"),
        "{s}"
    );
    assert!(
        s.contains("  prune    Remove all stopped containers"),
        "{s}"
    );
    let out = berth(&["--help"]);
    let s = text(&out.stdout);
    assert!(
        s.contains("  run        Create and run a new container from an image"),
        "{s}"
    );
    assert!(s.contains("  network    Manage networks"), "{s}");
}

#[test]
fn bad_flags_exit_125_with_clap_s_message() {
    let out = berth(&["run", "--bogus", "busybox"]);
    assert_eq!(out.status.code(), Some(125));
    let e = text(&out.stderr);
    assert!(
        e.starts_with("error: unexpected argument '--bogus' found\n"),
        "{e}"
    );
    assert!(
        e.contains("Usage: berth run [OPTIONS] <IMAGE [COMMAND] [ARG...]>..."),
        "{e}"
    );
    let out = berth(&["run", "--pids-limit", "x", "busybox"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).contains("invalid value 'x' for '--pids-limit <PIDS_LIMIT>'"));
    let out = berth(&["network", "create"]);
    assert_eq!(out.status.code(), Some(125));
    let out = berth(&["bogus"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).starts_with("error: unrecognized subcommand 'bogus'"));
}

#[test]
fn a_group_without_its_verb_prints_its_help() {
    for (group, about) in [
        ("container", "Manage containers"),
        ("image", "Manage images"),
        ("network", "Manage networks"),
        ("volume", "Manage volumes"),
        ("system", "Manage berth"),
        ("builder", "Manage builds"),
    ] {
        let out = berth(&[group]);
        assert_eq!(out.status.code(), Some(0), "{group}");
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(
            all.starts_with(&format!("{about}\n\nUsage: berth {group} <COMMAND>\n")),
            "{group}: {all}"
        );
    }
    let out = berth(&["container", "bogus"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(text(&out.stderr).starts_with("error: unrecognized subcommand 'bogus'"));
}
