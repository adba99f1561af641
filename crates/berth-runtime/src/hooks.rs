//! OCI hooks: run a hook program with the container's state on its stdin, its own args and env,
//! and an optional timeout; a failing or hanging hook fails the lifecycle step it belongs to.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

use crate::error::{Result, RuntimeError};

/// Runs every hook in order; stops at the first failure.
pub fn run_all(hooks: &[Hook], state: &serde_json::Value) -> Result<()> {
    let input = serde_json::to_vec(state).unwrap_or_default();
    for h in hooks {
        run(h, &input)?;
    }
    Ok(())
}

/// Runs one hook.
pub fn run(h: &Hook, state: &[u8]) -> Result<()> {
    let path = h.path().display().to_string();
    let fail = |msg: String| RuntimeError::Hook {
        path: path.clone(),
        msg,
    };
    let mut cmd = Command::new(h.path());
    if let Some(args) = h.args() {
        if let Some((first, rest)) = args.split_first() {
            cmd.arg0(first).args(rest);
        }
    }
    cmd.env_clear();
    for kv in h.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook may exit without reading its stdin; that is not an error.
        let _ = stdin.write_all(state);
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) => {}
            Err(e) => return Err(fail(format!("cannot wait: {e}"))),
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(fail(format!(
                "timed out after {}s",
                h.timeout().unwrap_or(0)
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if status.success() {
        return Ok(());
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    Err(fail(format!("{status}: {}", err.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: serde_json::Value) -> Hook {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn hook_gets_state_on_stdin_args_and_env() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let h = hook(serde_json::json!({
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("cat > {}; echo \" $0 $FOO\" >> {}", out.display(), out.display())],
            "env": ["FOO=bar"]
        }));
        run_all(&[h], &serde_json::json!({"id": "c1"})).unwrap();
        let got = std::fs::read_to_string(out).unwrap();
        assert!(got.starts_with(r#"{"id":"c1"}"#), "{got}");
        assert!(got.ends_with(" sh bar\n"), "{got}");
    }

    #[test]
    fn failing_missing_and_slow_hooks_are_errors() {
        let fail = hook(
            serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 3"]}),
        );
        let e = run(&fail, b"{}").unwrap_err().to_string();
        assert!(e.contains("boom") && e.contains('3'), "{e}");
        let missing = hook(serde_json::json!({"path": "/nonexistent/hook"}));
        assert!(run(&missing, b"{}")
            .unwrap_err()
            .to_string()
            .contains("/nonexistent/hook"));
        let slow =
            hook(serde_json::json!({"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}));
        assert!(run(&slow, b"{}")
            .unwrap_err()
            .to_string()
            .contains("timed out"));
    }
}
