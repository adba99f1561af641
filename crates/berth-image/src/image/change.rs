//! The `--change` instructions of `docker import` and `docker commit`: the Dockerfile subset
//! CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR and STOPSIGNAL, in shell and JSON
//! forms, applied to an image's container config.
//!
//! It is deliberately small and separate from the Dockerfile parser of the build crate: berth-image
//! must not import berth-build. It never expands variables (Docker does not for `--change`
//! either) and never panics on any input: every rejection names the instruction and what is wrong.

use std::collections::BTreeMap;

use serde_json::Value;

use super::config::ContainerConfig;

/// Why a change instruction was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("change {0:?} is empty: write an instruction such as CMD [\"sh\"]")]
    Empty(String),
    #[error("change {line:?}: {instruction} is not supported by --change: use one of CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL")]
    Unsupported { line: String, instruction: String },
    #[error("change {line:?}: {problem}")]
    Invalid { line: String, problem: String },
}

/// Applies each change in order to `cfg`.
pub fn apply_changes(cfg: &mut ContainerConfig, changes: &[String]) -> Result<(), ChangeError> {
    for c in changes {
        apply_change(cfg, c)?;
    }
    Ok(())
}

/// Applies one change instruction (`CMD ["sh"]`, `ENV A=b`, …) to `cfg`.
pub fn apply_change(cfg: &mut ContainerConfig, line: &str) -> Result<(), ChangeError> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Err(ChangeError::Empty(line.to_string()));
    }
    let (instr, rest) = match trimmed.find(char::is_whitespace) {
        Some(i) => (&trimmed[..i], trimmed[i..].trim()),
        None => (trimmed, ""),
    };
    let invalid = |problem: &str| ChangeError::Invalid {
        line: line.to_string(),
        problem: problem.to_string(),
    };
    let upper = instr.to_ascii_uppercase();
    if rest.is_empty() {
        return Err(invalid(&format!("{upper} needs an argument")));
    }
    match upper.as_str() {
        "CMD" => cfg.cmd = Some(command(rest).map_err(|p| invalid(&p))?),
        "ENTRYPOINT" => cfg.entrypoint = Some(command(rest).map_err(|p| invalid(&p))?),
        "ENV" => {
            let pairs = key_values(rest, "ENV").map_err(|p| invalid(&p))?;
            let env = cfg.env.get_or_insert_with(Vec::new);
            for (k, v) in pairs {
                let entry = format!("{k}={v}");
                let prefix = format!("{k}=");
                match env.iter_mut().find(|e| e.starts_with(&prefix) || **e == k) {
                    Some(e) => *e = entry,
                    None => env.push(entry),
                }
            }
        }
        "LABEL" => {
            let pairs = key_values(rest, "LABEL").map_err(|p| invalid(&p))?;
            let labels = cfg.labels.get_or_insert_with(BTreeMap::new);
            for (k, v) in pairs {
                labels.insert(k, v);
            }
        }
        "EXPOSE" => {
            let ports = cfg.exposed_ports.get_or_insert_with(BTreeMap::new);
            for w in words(rest).map_err(|p| invalid(&p))? {
                ports.insert(port(&w).map_err(|p| invalid(&p))?, empty_object());
            }
        }
        "USER" => cfg.user = Some(single(rest).map_err(|p| invalid(&p))?),
        "WORKDIR" => {
            let dir = single(rest).map_err(|p| invalid(&p))?;
            // A relative WORKDIR is relative to the previous one, as in a Dockerfile.
            let dir = if dir.starts_with('/') {
                dir
            } else {
                let base = cfg.working_dir.clone().unwrap_or_else(|| "/".to_string());
                format!("{}/{dir}", base.trim_end_matches('/'))
            };
            cfg.working_dir = Some(dir);
        }
        "VOLUME" => {
            let list = if rest.starts_with('[') {
                json_array(rest).map_err(|p| invalid(&p))?
            } else {
                words(rest).map_err(|p| invalid(&p))?
            };
            let vols = cfg.volumes.get_or_insert_with(BTreeMap::new);
            for v in list {
                if v.is_empty() {
                    return Err(invalid("VOLUME names an empty path"));
                }
                vols.insert(v, empty_object());
            }
        }
        "STOPSIGNAL" => {
            let s = single(rest).map_err(|p| invalid(&p))?;
            if !valid_signal(&s) {
                return Err(invalid(&format!(
                    "STOPSIGNAL {s:?} is not a signal: use a name such as SIGTERM or a number"
                )));
            }
            cfg.stop_signal = Some(s);
        }
        _ => {
            return Err(ChangeError::Unsupported {
                line: line.to_string(),
                instruction: instr.to_string(),
            })
        }
    }
    Ok(())
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// CMD/ENTRYPOINT: a JSON array (exec form), else the shell form `/bin/sh -c "<rest>"`.
fn command(rest: &str) -> Result<Vec<String>, String> {
    if rest.starts_with('[') {
        if let Ok(v) = json_array(rest) {
            return Ok(v);
        }
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
}

/// A JSON array of strings.
fn json_array(s: &str) -> Result<Vec<String>, String> {
    serde_json::from_str::<Vec<String>>(s)
        .map_err(|e| format!("{s:?} is not a JSON array of strings: {e}"))
}

/// One word (USER, WORKDIR, STOPSIGNAL), quotes removed.
fn single(rest: &str) -> Result<String, String> {
    let w = words(rest)?;
    match w.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(format!("expected one value, got {}", w.len())),
    }
}

/// Splits on unquoted whitespace; `"…"` and `'…'` quote, `\` escapes the next character (not
/// inside single quotes).
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('"'), '"') => quote = None,
            (Some('"'), '\\') | (None, '\\') => match chars.next() {
                Some(n) => {
                    cur.push(n);
                    in_word = true;
                }
                None => return Err("ends with a lone backslash".into()),
            },
            (Some(_), c) => cur.push(c),
            (None, '"') | (None, '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote"));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// ENV/LABEL arguments: `k=v k2="v 2"`, or the legacy `KEY value with spaces` (one pair).
fn key_values(rest: &str, what: &str) -> Result<Vec<(String, String)>, String> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        // Legacy form: the first word is the key, the rest of the line the value.
        let key = first.to_string();
        let value = rest[first.len()..].trim();
        if value.is_empty() {
            return Err(format!("{what} {key} needs a value: write {key}=VALUE"));
        }
        let value = words(value)?.join(" ");
        return Ok(vec![(key, value)]);
    }
    let mut out = Vec::new();
    for w in words(rest)? {
        let Some((k, v)) = w.split_once('=') else {
            return Err(format!("{what} argument {w:?} has no '=': write KEY=VALUE"));
        };
        if k.is_empty() {
            return Err(format!("{what} argument {w:?} has an empty name"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// `80`, `80/tcp`, `53/udp`, `8000-8002` is not expanded here: Docker keeps ranges per port, so
/// ranges are refused rather than guessed.
fn port(w: &str) -> Result<String, String> {
    let (num, proto) = match w.split_once('/') {
        Some((n, p)) => (n, p.to_ascii_lowercase()),
        None => (w, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!(
            "EXPOSE {w:?}: protocol {proto:?} is not tcp, udp or sctp"
        ));
    }
    match num.parse::<u16>() {
        Ok(n) if n > 0 => Ok(format!("{n}/{proto}")),
        _ => Err(format!(
            "EXPOSE {w:?}: {num:?} is not a port number 1-65535"
        )),
    }
}

fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.strip_prefix("SIG").unwrap_or(s);
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'+' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(changes: &[&str]) -> Result<ContainerConfig, ChangeError> {
        let mut c = ContainerConfig::default();
        let v: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut c, &v)?;
        Ok(c)
    }

    #[test]
    fn cmd_and_entrypoint_forms() {
        let c = apply(&[r#"CMD ["/bin/echo", "hi there"]"#, "ENTRYPOINT top -b"]).unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["/bin/echo", "hi there"]);
        assert_eq!(c.entrypoint.unwrap(), vec!["/bin/sh", "-c", "top -b"]);
        // A bracket that is not JSON is shell form, as Docker does.
        let c = apply(&["cmd [not json"]).unwrap();
        assert_eq!(c.cmd.unwrap(), vec!["/bin/sh", "-c", "[not json"]);
    }

    #[test]
    fn env_forms_replace_and_append() {
        let mut c = ContainerConfig {
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            ..Default::default()
        };
        apply_change(&mut c, r#"ENV A=2 B="two words" C=x\ y"#).unwrap();
        apply_change(&mut c, "ENV LEGACY value with  spaces").unwrap();
        assert_eq!(
            c.env.unwrap(),
            vec![
                "PATH=/bin",
                "A=2",
                "B=two words",
                "C=x y",
                "LEGACY=value with spaces"
            ]
        );
    }

    #[test]
    fn expose_label_user_volume_workdir_stopsignal() {
        let c = apply(&[
            "EXPOSE 80 53/udp 443/TCP",
            r#"LABEL a=b "c d"=e"#,
            "USER 1000:1000",
            r#"VOLUME ["/data", "/logs"]"#,
            "VOLUME /cache",
            "WORKDIR /srv",
            "WORKDIR app",
            "STOPSIGNAL SIGQUIT",
        ])
        .unwrap();
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, vec!["443/tcp", "53/udp", "80/tcp"]);
        let labels = c.labels.unwrap();
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["c d"], "e");
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        let vols: Vec<_> = c.volumes.unwrap().into_keys().collect();
        assert_eq!(vols, vec!["/cache", "/data", "/logs"]);
        assert_eq!(c.working_dir.as_deref(), Some("/srv/app"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGQUIT"));
    }

    #[test]
    fn rejections_name_the_problem() {
        for (bad, needle) in [
            ("", "empty"),
            ("RUN echo hi", "not supported"),
            ("FROM busybox", "not supported"),
            ("CMD", "needs an argument"),
            ("EXPOSE 99999", "port number"),
            ("EXPOSE 80/icmp", "protocol"),
            ("ENV =x", "empty name"),
            ("ENV A", "needs a value"),
            ("USER a b", "one value"),
            ("STOPSIGNAL kill me", "one value"),
            ("STOPSIGNAL 999", "not a signal"),
            (r#"LABEL a="unterminated"#, "unterminated"),
            ("VOLUME [\"/a\", 3]", "JSON array"),
            ("ENV A=b\\", "backslash"),
        ] {
            let e = apply(&[bad]).unwrap_err().to_string();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "\u{0}",
            "ENV \u{feff}=1",
            "LABEL ''=x",
            "WORKDIR ''",
            "EXPOSE /",
            "é é",
        ] {
            let _ = apply(&[s]);
        }
    }
}
