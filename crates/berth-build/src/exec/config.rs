//! The image runtime config as Docker's builder updates it: environment lists, exposed ports
//! (`80` → `80/tcp`, ranges expanded), healthchecks with Go durations in nanoseconds.

use std::collections::BTreeMap;

use super::StepError;
use crate::ast::{CmdLine, Healthcheck};
use crate::backend::RunConfig;

/// The value of `name` in a `K=V` list (the last one wins, as in a process environment).
pub(crate) fn env_get<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter().rev().find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        (k == name).then_some(v)
    })
}

/// Sets `name=value` in a `K=V` list, replacing an existing entry in place (Docker keeps the
/// order of first definition).
pub(crate) fn env_set(env: &mut Vec<String>, name: &str, value: &str) {
    let entry = format!("{name}={value}");
    for kv in env.iter_mut() {
        let k = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
        if k == name {
            *kv = entry;
            return;
        }
    }
    env.push(entry);
}

/// The shell of a stage: `SHELL` or `/bin/sh -c`.
pub(crate) fn shell_of(config: &RunConfig) -> Vec<String> {
    match &config.shell {
        Some(s) if !s.is_empty() => s.clone(),
        _ => vec!["/bin/sh".to_string(), "-c".to_string()],
    }
}

/// CMD / ENTRYPOINT / HEALTHCHECK argv: shell form → SHELL + [cmd], exec form as is.
pub(crate) fn cmdline_argv(cmd: &CmdLine, config: &RunConfig) -> Vec<String> {
    match cmd {
        CmdLine::Exec(v) => v.clone(),
        CmdLine::Shell(s) => {
            let mut v = shell_of(config);
            v.push(s.clone());
            v
        }
    }
}

/// Go's `%q` of a string slice: `["a" "b"]`, as moby writes CMD/ENTRYPOINT in history.
pub(crate) fn go_quoted_list(v: &[String]) -> String {
    let parts: Vec<String> = v
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", parts.join(" "))
}

/// EXPOSE words (already expanded) → `port/proto` keys, ranges expanded.
pub(crate) fn parse_ports(words: &[String]) -> Result<Vec<String>, StepError> {
    let mut out = Vec::new();
    for w in words {
        // `ip:hostPort:containerPort/proto` is accepted by Docker's parser; only the container
        // port matters for EXPOSE.
        let spec = w.rsplit(':').next().unwrap_or(w);
        let (ports, proto) = match spec.split_once('/') {
            Some((p, proto)) => (p, proto.to_ascii_lowercase()),
            None => (spec, "tcp".to_string()),
        };
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(StepError::Invalid(format!("invalid proto: {proto}")));
        }
        let bad = || StepError::Invalid(format!("invalid containerPort: {ports}"));
        let (lo, hi) = match ports.split_once('-') {
            Some((a, b)) => (
                a.parse::<u16>().map_err(|_| bad())?,
                b.parse::<u16>().map_err(|_| bad())?,
            ),
            None => {
                let p = ports.parse::<u16>().map_err(|_| bad())?;
                (p, p)
            }
        };
        if hi < lo {
            return Err(StepError::Invalid(format!(
                "invalid range specified for container port: {ports}"
            )));
        }
        for p in lo..=hi {
            out.push(format!("{p}/{proto}"));
        }
    }
    Ok(out)
}

/// Adds ports to the config's ExposedPorts.
pub(crate) fn add_ports(config: &mut RunConfig, ports: &[String]) {
    let map = config.exposed_ports.get_or_insert_with(BTreeMap::new);
    for p in ports {
        map.insert(p.clone(), serde_json::json!({}));
    }
}

/// A Go `time.ParseDuration` string → nanoseconds.
pub(crate) fn parse_duration(s: &str) -> Result<i64, String> {
    let bad = || format!("time: invalid duration {s:?}");
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err(format!("time: missing unit in duration {s:?}")),
            u => return Err(format!("time: unknown unit {u:?} in duration {s:?}")),
        };
        rest = &rest[unit_len..];
        total += n * unit;
    }
    if total > i64::MAX as f64 {
        return Err(bad());
    }
    let ns = total.round() as i64;
    Ok(if neg { -ns } else { ns })
}

/// HEALTHCHECK → Docker's HealthConfig JSON (zero durations and retries left out).
pub(crate) fn healthcheck_json(hc: &Healthcheck) -> Result<serde_json::Value, StepError> {
    let (cmd, interval, timeout, start_period, start_interval, retries) = match hc {
        Healthcheck::None => return Ok(serde_json::json!({ "Test": ["NONE"] })),
        Healthcheck::Cmd {
            cmd,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        } => (
            cmd,
            interval,
            timeout,
            start_period,
            start_interval,
            retries,
        ),
    };
    let test: Vec<String> = match cmd {
        CmdLine::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
        CmdLine::Exec(v) => {
            let mut t = vec!["CMD".to_string()];
            t.extend(v.iter().cloned());
            t
        }
    };
    let mut obj = serde_json::Map::new();
    obj.insert("Test".to_string(), serde_json::json!(test));
    for (flag, key, value) in [
        ("interval", "Interval", interval),
        ("timeout", "Timeout", timeout),
        ("start-period", "StartPeriod", start_period),
        ("start-interval", "StartInterval", start_interval),
    ] {
        let Some(v) = value else { continue };
        let ns = parse_duration(v).map_err(StepError::Invalid)?;
        if ns != 0 && ns < 1_000_000 {
            return Err(StepError::Invalid(format!(
                "Interval {flag:?} cannot be less than 1ms"
            )));
        }
        if ns < 0 {
            return Err(StepError::Invalid(format!(
                "Interval {flag:?} cannot be negative"
            )));
        }
        if ns != 0 {
            obj.insert(key.to_string(), serde_json::json!(ns));
        }
    }
    if let Some(r) = retries {
        let n: i64 = r
            .parse()
            .map_err(|_| StepError::Invalid(format!("invalid --retries value {r:?}")))?;
        if n < 0 {
            return Err(StepError::Invalid(
                "--retries cannot be negative".to_string(),
            ));
        }
        if n != 0 {
            obj.insert("Retries".to_string(), serde_json::json!(n));
        }
    }
    Ok(serde_json::Value::Object(obj))
}

/// A signal name or number for STOPSIGNAL (`SIGTERM`, `TERM`, `9`, `SIGRTMIN+3`).
pub(crate) fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s).to_ascii_uppercase();
    const NAMES: &[&str] = &[
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "UNUSED", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU",
        "XFSZ",
    ];
    if NAMES.contains(&name.as_str()) {
        return true;
    }
    for base in ["RTMIN", "RTMAX"] {
        if let Some(rest) = name.strip_prefix(base) {
            let rest = rest.trim_start_matches(['+', '-']);
            return rest.is_empty() || rest.parse::<u32>().is_ok_and(|n| n <= 30);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_like_docker() {
        let w = |v: &[&str]| parse_ports(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(w(&["80"]).unwrap(), vec!["80/tcp"]);
        assert_eq!(w(&["53/UDP"]).unwrap(), vec!["53/udp"]);
        assert_eq!(
            w(&["8000-8002/tcp"]).unwrap(),
            vec!["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert!(w(&["abc"]).is_err());
        assert!(w(&["80/xyz"]).is_err());
        assert!(w(&["90-80"]).is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("30s").unwrap(), 30_000_000_000);
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000_000);
        assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(parse_duration("0").unwrap(), 0);
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("abc").is_err());
    }

    #[test]
    fn env_list_replaces_in_place() {
        let mut env = vec!["A=1".to_string(), "B=2".to_string()];
        env_set(&mut env, "A", "3");
        env_set(&mut env, "C", "x=y");
        assert_eq!(env, vec!["A=3", "B=2", "C=x=y"]);
        assert_eq!(env_get(&env, "C"), Some("x=y"));
        assert_eq!(env_get(&env, "D"), None);
    }

    #[test]
    fn signals() {
        assert!(valid_signal("SIGTERM"));
        assert!(valid_signal("KILL"));
        assert!(valid_signal("9"));
        assert!(valid_signal("SIGRTMIN+3"));
        assert!(!valid_signal("SIGFOO"));
        assert!(!valid_signal(""));
    }
}
