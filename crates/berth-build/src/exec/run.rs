//! RUN: the process (shell or exec form, heredocs), its environment (ENV plus the build args in
//! scope, proxies unrecorded), its mounts resolved to host paths, and the history text and cache
//! key Docker's classic builder would record (`|2 A=1 B=2 /bin/sh -c make`).

use std::os::unix::fs::PermissionsExt;

use super::config::{env_get, shell_of};
use super::fsroot::{clean_rel, Root};
use super::{copy, heredoc_marker, Action, Builder, Prepared, State, StepError, PROXY_ARGS};
use crate::ast::{CmdLine, MountKind, Run, RunNetwork};
use crate::backend::{RunMountSpec, RunRequest};
use crate::shell;

/// Where a `#!` heredoc script is bound in the container (BuildKit's place for them).
const PIPES_DIR: &str = "/dev/pipes";

/// Expands `$VAR`, `${VAR}`, `${VAR:-x}`… in a heredoc body as a shell would in an unquoted
/// heredoc: quotes stay as they are, `\$` and `\\` are escapes.
pub(crate) fn expand_heredoc(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, StepError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && matches!(chars.get(i + 1), Some('$') | Some('\\')) {
            out.push(chars[i + 1]);
            i += 2;
            continue;
        }
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        let token_end = match chars.get(i + 1) {
            Some('{') => {
                let mut depth = 0usize;
                let mut j = i + 1;
                let mut end = None;
                while j < chars.len() {
                    match chars[j] {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(j + 1);
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                end
            }
            Some(ch) if ch.is_ascii_alphabetic() || *ch == '_' => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                Some(j)
            }
            _ => None,
        };
        match token_end {
            Some(end) => {
                let token: String = chars[i..end].iter().collect();
                let v = shell::expand(&token, lookup, '\\').map_err(|e| {
                    StepError::Invalid(format!("failed to process {token:?}: {}", e.message))
                })?;
                out.push_str(&v);
                i = end;
            }
            None => {
                out.push('$');
                i += 1;
            }
        }
    }
    Ok(out)
}

fn network_of(flag: Option<RunNetwork>, opt: Option<&str>) -> RunNetwork {
    if let Some(n) = flag {
        return n;
    }
    match opt {
        Some("none") => RunNetwork::None,
        Some("host") => RunNetwork::Host,
        _ => RunNetwork::Default,
    }
}

impl Builder<'_> {
    pub(crate) fn prepare_run(&mut self, st: &State, r: &Run) -> Result<Prepared, StepError> {
        let shell = shell_of(&st.config);
        let mut mounts = Vec::new();
        let mut key_extra = String::new();
        let mut cleanup = Vec::new();
        let argv: Vec<String> = match &r.cmd {
            CmdLine::Exec(v) => v.clone(),
            CmdLine::Shell(s) => {
                let alone = match (r.heredocs.as_slice(), heredoc_marker(s)) {
                    ([h], Some(name)) if h.name == name => Some(h),
                    _ => None,
                };
                if let Some(h) = alone {
                    if h.content.starts_with("#!") {
                        // A script with its own interpreter: bound read-only and executed.
                        let dir = self.tmp_path("heredoc");
                        cleanup.push(dir.clone());
                        let ioerr =
                            |e: std::io::Error| StepError::Io(format!("{}: {e}", dir.display()));
                        std::fs::create_dir_all(&dir).map_err(ioerr)?;
                        let file = dir.join(&h.name);
                        std::fs::write(&file, &h.content).map_err(ioerr)?;
                        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755))
                            .map_err(ioerr)?;
                        mounts.push(RunMountSpec::Bind {
                            source: dir,
                            target: PIPES_DIR.to_string(),
                            readonly: true,
                        });
                        key_extra.push_str(&format!("heredoc-script={:?};", h.content));
                        vec![format!("{PIPES_DIR}/{}", h.name)]
                    } else {
                        let mut v = shell.clone();
                        v.push(h.content.clone());
                        v
                    }
                } else if r.heredocs.is_empty() {
                    let mut v = shell.clone();
                    v.push(s.clone());
                    v
                } else {
                    // The shell understands heredocs: hand it the text as written.
                    let mut script = s.clone();
                    script.push('\n');
                    for h in &r.heredocs {
                        script.push_str(&h.content);
                        script.push_str(&h.name);
                        script.push('\n');
                    }
                    let mut v = shell.clone();
                    v.push(script);
                    v
                }
            }
        };
        if argv.is_empty() {
            return Err(StepError::Invalid("RUN requires a command".to_string()));
        }

        // Environment: the image's, the args in scope (ENV wins), then undeclared proxies.
        let args = st.args_in_scope();
        let mut env: Vec<String> = st.config.env.clone().unwrap_or_default();
        env.extend(args.iter().cloned());
        for p in PROXY_ARGS {
            if st.declared(p) || env_get(&env, p).is_some() {
                continue;
            }
            if let Some(v) = self.given_arg(p) {
                env.push(format!("{p}={v}"));
            }
        }

        for m in &r.mounts {
            let target = match &m.target {
                Some(t) => Some(self.expand(st, t)?),
                None => None,
            };
            let need_target = |what: &str| {
                target.clone().ok_or_else(|| {
                    StepError::Invalid(format!("mount type={what} requires a target"))
                })
            };
            match m.kind {
                MountKind::Bind => {
                    let target = need_target("bind")?;
                    let source = match &m.source {
                        Some(s) => self.expand(st, s)?,
                        None => String::new(),
                    };
                    let rel = clean_rel(&source).ok_or_else(|| {
                        StepError::Invalid(format!(
                            "forbidden path outside the build context: {source}"
                        ))
                    })?;
                    let (root, ident, ignore) = match &m.from {
                        Some(f) => {
                            let (root, ident) = self.source_root(st, f)?;
                            (root, ident, false)
                        }
                        None => (
                            Root::context(self.opts.context.clone()),
                            String::new(),
                            true,
                        ),
                    };
                    let found = root.resolve(&rel, true)?.ok_or_else(|| {
                        StepError::Invalid(format!(
                            "failed to compute cache key: {source:?} not found"
                        ))
                    })?;
                    let content = if ignore {
                        copy::hash_tree(&root, &rel, Some(&self.ignore))?
                    } else {
                        ident
                    };
                    key_extra.push_str(&format!(
                        "bind:{target}:{}:{rel}:{content}:{};",
                        m.from.as_deref().unwrap_or(""),
                        m.readonly
                    ));
                    mounts.push(if m.readonly {
                        RunMountSpec::Bind {
                            source: found.host,
                            target,
                            readonly: true,
                        }
                    } else {
                        RunMountSpec::Scratch {
                            source: found.host,
                            target,
                        }
                    });
                }
                MountKind::Cache => {
                    let target = need_target("cache")?;
                    let id = match &m.id {
                        Some(id) => self.expand(st, id)?,
                        None => target.clone(),
                    };
                    let dir = self.backend.cache_mount_dir(&id)?;
                    key_extra.push_str(&format!("cache:{target}:{id}:{};", m.readonly));
                    mounts.push(RunMountSpec::Bind {
                        source: dir,
                        target,
                        readonly: m.readonly,
                    });
                }
                MountKind::Tmpfs => {
                    let target = need_target("tmpfs")?;
                    key_extra.push_str(&format!("tmpfs:{target}:{:?};", m.size));
                    mounts.push(RunMountSpec::Tmpfs {
                        target,
                        size: m.size,
                    });
                }
                MountKind::Secret => {
                    let id = match (&m.id, &target) {
                        (Some(id), _) => self.expand(st, id)?,
                        (None, Some(t)) => t.rsplit('/').next().unwrap_or(t).to_string(),
                        (None, None) => {
                            return Err(StepError::Invalid(
                                "secret mount requires an id or a target".to_string(),
                            ))
                        }
                    };
                    key_extra.push_str(&format!("secret:{id}:{target:?}:{:?};", m.env));
                    let Some(path) = self.backend.secret(&id)? else {
                        if m.required {
                            return Err(StepError::Invalid(format!("secret {id} not found")));
                        }
                        continue;
                    };
                    if let Some(var) = &m.env {
                        let value = std::fs::read_to_string(&path)
                            .map_err(|e| StepError::Io(format!("read secret {id}: {e}")))?;
                        env.push(format!("{var}={value}"));
                    }
                    if m.env.is_none() || target.is_some() {
                        mounts.push(RunMountSpec::Bind {
                            source: path,
                            target: target.unwrap_or_else(|| format!("/run/secrets/{id}")),
                            readonly: true,
                        });
                    }
                }
                MountKind::Ssh => {
                    return Err(StepError::Invalid(
                        "RUN --mount=type=ssh is not supported by berth (no SSH agent forwarding); use a secret mount instead".to_string(),
                    ));
                }
            }
        }

        let network = network_of(r.network, self.opts.network.as_deref());
        key_extra.push_str(&format!("network={network:?};"));

        let mut recorded = Vec::new();
        if !args.is_empty() {
            recorded.push(format!("|{}", args.len()));
            recorded.extend(args.iter().cloned());
        }
        recorded.extend(argv.iter().cloned());
        let created_by = recorded.join(" ");

        let req = RunRequest {
            argv,
            env,
            user: st.config.user.clone().filter(|u| !u.is_empty()),
            workdir: st.config.working_dir.clone(),
            network,
            mounts,
        };
        Ok(Prepared {
            created_by,
            extra: key_extra,
            config: st.config.clone(),
            author: st.author.clone(),
            action: Action::Run(req),
            cleanup,
        })
    }
}
