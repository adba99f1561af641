//! One logical line (continuations joined) → one instruction, with BuildKit's rules for each
//! instruction's arguments and flags. Errors are plain messages; the caller adds the line.

use super::words::{
    distance, extract_flags, parse_bool, parse_go_duration, parse_json, parse_ram_bytes,
    parse_words, split_first, split_ws, FlagKind, Flags, Json, NOT_STRINGS,
};
use crate::ast::{
    ArgDecl, CacheSharing, CmdLine, Copy, Healthcheck, Inst, MountKind, Run, RunMount, RunNetwork,
};

/// What one line parsed into.
pub(crate) enum Parsed {
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    Inst(Inst),
}

/// The instruction keywords, upper case.
pub(crate) const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Whether heredocs (`<<EOF`) in this line are collected: RUN, COPY and ADD in shell form,
/// also as an ONBUILD trigger.
pub(crate) fn can_contain_heredoc(parsed: &Parsed) -> bool {
    match parsed {
        Parsed::Inst(Inst::Run(run)) => matches!(run.cmd, CmdLine::Shell(_)),
        Parsed::Inst(Inst::Copy(c) | Inst::Add(c)) => !c.json,
        Parsed::Inst(Inst::Onbuild(trigger)) => {
            let (kw, _) = split_first(trigger.trim());
            matches!(kw.to_ascii_lowercase().as_str(), "run" | "copy" | "add")
                && !trigger_is_json(trigger)
        }
        _ => false,
    }
}

/// Whether an ONBUILD trigger's arguments are a JSON array (then it takes no heredocs).
fn trigger_is_json(trigger: &str) -> bool {
    let (_, rest) = split_first(trigger.trim());
    let (rest, _) = extract_flags(rest.unwrap_or_default());
    matches!(parse_json(rest.trim()), Json::Strings(_))
}

/// Parses one logical line. `nested` is true for an ONBUILD trigger.
pub(crate) fn parse_line(line: &str, escape: char, nested: bool) -> Result<Parsed, String> {
    let line = line.trim();
    let (keyword, rest) = split_first(line);
    let (rest, flags) = match rest {
        Some(r) => extract_flags(r),
        None => (String::new(), Vec::new()),
    };
    let rest = rest.trim();
    let no_flags = |flags: &[String]| Flags::parse(flags, &[]).map(|_| ());
    let inst = match keyword.to_ascii_lowercase().as_str() {
        "from" => {
            let args = split_ws(rest);
            let name = match args.as_slice() {
                [_] => None,
                [_, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    let lower = name.to_lowercase();
                    if !valid_stage_name(&lower) {
                        return Err(format!(
                            "invalid name for build stage: {name:?}, name can't start with a \
                             number or contain symbols"
                        ));
                    }
                    Some(lower)
                }
                _ => return Err("FROM requires either one or three arguments".to_string()),
            };
            let flags = Flags::parse(&flags, &[("platform", FlagKind::Str)])?;
            let image = args.into_iter().next().unwrap_or_default();
            return Ok(Parsed::From {
                image,
                name,
                platform: flags.string("platform"),
            });
        }
        "run" => Inst::Run(parse_run(rest, &flags)?),
        "cmd" => {
            no_flags(&flags)?;
            Inst::Cmd(cmd_line(rest)?)
        }
        "entrypoint" => {
            no_flags(&flags)?;
            Inst::Entrypoint(cmd_line(rest)?)
        }
        "shell" => {
            no_flags(&flags)?;
            match parse_json(rest) {
                Json::Strings(v) if v.is_empty() => {
                    return Err("SHELL requires at least one argument".to_string())
                }
                Json::Strings(v) => Inst::Shell(v),
                Json::NotStrings => return Err(NOT_STRINGS.to_string()),
                Json::No if rest.is_empty() => {
                    return Err("SHELL requires at least one argument".to_string())
                }
                Json::No => {
                    return Err("SHELL requires the arguments to be in JSON form, \
                                e.g. SHELL [\"/bin/sh\", \"-c\"]"
                        .to_string())
                }
            }
        }
        "label" => {
            let pairs = name_val(rest, "LABEL", escape)?;
            no_flags(&flags)?;
            Inst::Label(pairs)
        }
        "env" => {
            let pairs = name_val(rest, "ENV", escape)?;
            no_flags(&flags)?;
            Inst::Env(pairs)
        }
        "expose" => {
            let ports = split_ws(rest);
            if ports.is_empty() {
                return Err("EXPOSE requires at least one argument".to_string());
            }
            no_flags(&flags)?;
            Inst::Expose(ports)
        }
        "add" | "copy" => {
            if keyword.eq_ignore_ascii_case("add") {
                Inst::Add(parse_copy(rest, &flags, true)?)
            } else {
                Inst::Copy(parse_copy(rest, &flags, false)?)
            }
        }
        "volume" => {
            let (paths, _) = maybe_json_list(rest)?;
            if paths.is_empty() {
                return Err("VOLUME requires at least one argument".to_string());
            }
            no_flags(&flags)?;
            let mut out = Vec::with_capacity(paths.len());
            for p in paths {
                let p = p.trim().to_string();
                if p.is_empty() {
                    return Err("VOLUME specified can not be an empty string".to_string());
                }
                out.push(p);
            }
            Inst::Volume(out)
        }
        "user" => Inst::User(exactly_one(rest, "USER", &flags)?),
        "workdir" => Inst::Workdir(exactly_one(rest, "WORKDIR", &flags)?),
        "stopsignal" => Inst::StopSignal(exactly_one(rest, "STOPSIGNAL", &flags)?),
        "maintainer" => Inst::Maintainer(exactly_one(rest, "MAINTAINER", &flags)?),
        "arg" => {
            let words = parse_words(rest, escape);
            if words.is_empty() {
                return Err("ARG requires at least one argument".to_string());
            }
            no_flags(&flags)?;
            let mut decls = Vec::with_capacity(words.len());
            for w in words {
                let decl = match w.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".to_string()),
                    Some((k, v)) => ArgDecl {
                        name: k.to_string(),
                        default: Some(v.to_string()),
                    },
                    None => ArgDecl {
                        name: w,
                        default: None,
                    },
                };
                decls.push(decl);
            }
            Inst::Arg(decls)
        }
        "onbuild" => {
            if nested {
                return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string());
            }
            if rest.is_empty() {
                return Err("ONBUILD requires at least one argument".to_string());
            }
            no_flags(&flags)?;
            let (trigger_kw, _) = split_first(rest);
            match trigger_kw.to_ascii_uppercase().as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string())
                }
                kw @ ("MAINTAINER" | "FROM") => {
                    return Err(format!("{kw} isn't allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            // The trigger must itself be a valid instruction.
            parse_line(rest, escape, true)?;
            // What follows `ONBUILD` in the line as written (flags and all).
            let trigger = line
                .get(keyword.len()..)
                .unwrap_or_default()
                .trim_start()
                .to_string();
            Inst::Onbuild(trigger)
        }
        "healthcheck" => Inst::Healthcheck(parse_healthcheck(rest, &flags)?),
        _ => return Err(unknown_instruction(keyword)),
    };
    Ok(Parsed::Inst(inst))
}

fn unknown_instruction(keyword: &str) -> String {
    let upper = keyword.to_uppercase();
    let best = KEYWORDS
        .iter()
        .map(|k| (distance(&upper, k), *k))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d > 0 && d <= 2 && upper.chars().count() > 2 => {
            format!("unknown instruction: {keyword} (did you mean {k}?)")
        }
        _ => format!("unknown instruction: {keyword}"),
    }
}

/// `^[a-z][a-z0-9-_.]*$`
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// CMD, ENTRYPOINT, RUN: exec form when the arguments are a JSON array of strings.
fn cmd_line(rest: &str) -> Result<CmdLine, String> {
    if rest.is_empty() {
        return Ok(CmdLine::Shell(String::new()));
    }
    match parse_json(rest) {
        Json::Strings(v) => Ok(CmdLine::Exec(v)),
        Json::NotStrings => Err(NOT_STRINGS.to_string()),
        Json::No => Ok(CmdLine::Shell(rest.to_string())),
    }
}

/// ADD, COPY, VOLUME: a JSON array or whitespace-separated words; whether it was JSON.
fn maybe_json_list(rest: &str) -> Result<(Vec<String>, bool), String> {
    match parse_json(rest) {
        Json::Strings(v) => Ok((v, true)),
        Json::NotStrings => Err(NOT_STRINGS.to_string()),
        Json::No => Ok((split_ws(rest), false)),
    }
}

fn exactly_one(rest: &str, kw: &str, flags: &[String]) -> Result<String, String> {
    if rest.is_empty() {
        return Err(format!("{kw} requires exactly one argument"));
    }
    Flags::parse(flags, &[])?;
    Ok(rest.to_string())
}

/// ENV and LABEL: `k=v k2="v 2"` or the old `k v w` form (one pair, the value is the rest).
fn name_val(rest: &str, kw: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Err(format!("{kw} requires at least one argument"));
    };
    let pairs = if !first.contains('=') {
        match split_first(rest) {
            (k, Some(v)) if !v.is_empty() => vec![(k.to_string(), v.to_string())],
            _ => return Err(format!("{kw} must have two arguments")),
        }
    } else {
        let mut pairs = Vec::with_capacity(words.len());
        for w in &words {
            let Some((k, v)) = w.split_once('=') else {
                return Err(format!(
                    "Syntax error - can't find = in {w:?}. Must be of the form: name=value"
                ));
            };
            pairs.push((k.to_string(), v.to_string()));
        }
        pairs
    };
    if pairs.iter().any(|(k, _)| k.is_empty()) {
        return Err(format!("{kw} names can not be blank"));
    }
    Ok(pairs)
}

fn parse_copy(rest: &str, flags: &[String], add: bool) -> Result<Copy, String> {
    let kw = if add { "ADD" } else { "COPY" };
    let (args, json) = maybe_json_list(rest)?;
    if args.len() < 2 {
        return Err(format!(
            "{kw} requires at least two arguments, but only one was provided. Destination \
             could not be determined"
        ));
    }
    let known: &[(&str, FlagKind)] = if add {
        &[
            ("chown", FlagKind::Str),
            ("chmod", FlagKind::Str),
            ("link", FlagKind::Bool),
            ("keep-git-dir", FlagKind::Bool),
            ("checksum", FlagKind::Str),
            ("exclude", FlagKind::Strings),
        ]
    } else {
        &[
            ("from", FlagKind::Str),
            ("chown", FlagKind::Str),
            ("chmod", FlagKind::Str),
            ("link", FlagKind::Bool),
            ("parents", FlagKind::Bool),
            ("exclude", FlagKind::Strings),
        ]
    };
    let f = Flags::parse(flags, known)?;
    let mut sources = args;
    let dest = sources.pop().unwrap_or_default();
    if super::heredoc_spec(&dest).ok().flatten().is_some() {
        return Err(format!("{kw} cannot accept a heredoc as a destination"));
    }
    Ok(Copy {
        sources,
        dest,
        from: f.string("from"),
        chown: f.string("chown"),
        chmod: f.string("chmod"),
        link: f.bool("link"),
        parents: f.bool("parents"),
        exclude: f.strings("exclude"),
        checksum: f.string("checksum"),
        keep_git_dir: f.bool("keep-git-dir"),
        json,
        heredocs: Vec::new(),
    })
}

fn parse_run(rest: &str, flags: &[String]) -> Result<Run, String> {
    let f = Flags::parse(
        flags,
        &[
            ("mount", FlagKind::Strings),
            ("network", FlagKind::Str),
            ("security", FlagKind::Str),
        ],
    )?;
    let mut mounts = Vec::new();
    for m in f.strings("mount") {
        mounts.push(parse_mount(&m)?);
    }
    let network = match f.string("network").as_deref() {
        None => None,
        Some("default") => Some(RunNetwork::Default),
        Some("none") => Some(RunNetwork::None),
        Some("host") => Some(RunNetwork::Host),
        Some(other) => {
            return Err(format!(
                "unsupported network mode {other:?}: use default, none or host"
            ))
        }
    };
    match f.string("security").as_deref() {
        None | Some("sandbox" | "insecure") => {}
        Some(other) => {
            return Err(format!(
                "unsupported security mode {other:?}: use sandbox or insecure"
            ))
        }
    }
    Ok(Run {
        cmd: cmd_line(rest)?,
        mounts,
        network,
        heredocs: Vec::new(),
    })
}

/// Go's `encoding/csv` for one record: fields split on `,`, a field starting with `"` is
/// quoted (`""` inside is one `"`).
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("invalid mount {s:?}: unterminated quote")),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(_) => return Err(format!("invalid mount {s:?}: extraneous \" in field")),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some('"') => {
                        return Err(format!("invalid mount {s:?}: bare \" in non-quoted field"))
                    }
                    Some(c) => field.push(c),
                }
            }
            fields.push(field);
        }
    }
}

/// `RUN --mount=type=...,target=...` with BuildKit's keys and checks.
fn parse_mount(value: &str) -> Result<RunMount, String> {
    let fields = csv_fields(value)?;
    let mut kind = MountKind::Bind;
    let kind_name = |k: MountKind| match k {
        MountKind::Bind => "bind",
        MountKind::Cache => "cache",
        MountKind::Tmpfs => "tmpfs",
        MountKind::Secret => "secret",
        MountKind::Ssh => "ssh",
    };
    // The type first: other keys' meaning depends on it.
    for field in &fields {
        if let Some((k, v)) = field.split_once('=') {
            if k.eq_ignore_ascii_case("type") {
                kind = match v.to_ascii_lowercase().as_str() {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "tmpfs" => MountKind::Tmpfs,
                    "secret" => MountKind::Secret,
                    "ssh" => MountKind::Ssh,
                    _ => {
                        return Err(format!(
                            "unsupported mount type {v:?}: use bind, cache, tmpfs, secret or ssh"
                        ))
                    }
                };
            }
        }
    }
    let mut m = RunMount {
        kind,
        target: None,
        source: None,
        from: None,
        id: None,
        readonly: false,
        sharing: CacheSharing::Shared,
        mode: None,
        uid: None,
        gid: None,
        required: false,
        size: None,
        env: None,
    };
    let mut ro_auto = true;
    let mut sharing_set = false;
    let secret_or_ssh = matches!(kind, MountKind::Secret | MountKind::Ssh);
    let unexpected = |key: &str| {
        format!(
            "unexpected key '{key}' for mount type '{}'",
            kind_name(kind)
        )
    };
    let invalid = |key: &str, v: &str| format!("invalid value for {key}: {v}");
    for field in &fields {
        let Some((key, v)) = field.split_once('=') else {
            let key = field.to_ascii_lowercase();
            match key.as_str() {
                "" => {}
                "readonly" | "ro" => {
                    m.readonly = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    ro_auto = false;
                }
                "required" if secret_or_ssh => m.required = true,
                "required" => return Err(unexpected(&key)),
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let key = key.to_ascii_lowercase();
        let v = v.to_string();
        match key.as_str() {
            "type" => {}
            "from" => m.from = Some(v),
            "source" | "src" => m.source = Some(v),
            "target" | "dst" | "destination" => m.target = Some(v),
            "readonly" | "ro" => {
                m.readonly = parse_bool(&v).ok_or_else(|| invalid(&key, &v))?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                m.readonly = !parse_bool(&v).ok_or_else(|| invalid(&key, &v))?;
                ro_auto = false;
            }
            "required" if secret_or_ssh => {
                m.required = parse_bool(&v).ok_or_else(|| invalid(&key, &v))?;
            }
            "required" => return Err(unexpected(&key)),
            "size" if kind == MountKind::Tmpfs => {
                m.size = Some(parse_ram_bytes(&v).ok_or_else(|| invalid(&key, &v))?);
            }
            "size" => return Err(unexpected(&key)),
            "id" => m.id = Some(v),
            "sharing" => {
                if kind != MountKind::Cache {
                    return Err(format!(
                        "invalid cache sharing set for {} mount",
                        kind_name(kind)
                    ));
                }
                m.sharing = match v.to_ascii_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => {
                        return Err(format!(
                            "unsupported sharing value {v:?}: use shared, private or locked"
                        ))
                    }
                };
                sharing_set = true;
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&v, 8)
                        .map_err(|_| format!("invalid value {v} for mode"))?,
                );
            }
            "uid" => {
                m.uid = Some(
                    v.parse()
                        .map_err(|_| format!("invalid value {v} for uid"))?,
                );
            }
            "gid" => {
                m.gid = Some(
                    v.parse()
                        .map_err(|_| format!("invalid value {v} for gid"))?,
                );
            }
            "env" => m.env = Some(v),
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    let file_info_allowed = matches!(kind, MountKind::Secret | MountKind::Ssh | MountKind::Cache);
    if !file_info_allowed {
        for (name, set) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if set {
                return Err(format!(
                    "{name} not allowed for \"{}\" type mounts",
                    kind_name(kind)
                ));
            }
        }
    }
    if ro_auto {
        m.readonly = !matches!(kind, MountKind::Cache | MountKind::Tmpfs);
    }
    if sharing_set && kind != MountKind::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            kind_name(kind)
        ));
    }
    match kind {
        MountKind::Secret => {
            if m.from.is_some() {
                return Err("secret mount should not have a from".to_string());
            }
            if m.source.is_none() && m.target.is_none() && m.id.is_none() {
                return Err(
                    "invalid secret mount: one of id, source or target is required".to_string(),
                );
            }
            if m.source.is_some() && m.id.is_some() {
                return Err("both source and id can't be set".to_string());
            }
        }
        MountKind::Ssh => {}
        MountKind::Bind | MountKind::Cache | MountKind::Tmpfs => {
            if m.target.as_deref().unwrap_or_default().is_empty() {
                return Err(format!(
                    "invalid mount: type={} needs a target (target=/path)",
                    kind_name(kind)
                ));
            }
        }
    }
    Ok(m)
}

fn parse_healthcheck(rest: &str, flags: &[String]) -> Result<Healthcheck, String> {
    let (typ, cmd) = match rest.find(char::is_whitespace) {
        Some(i) => (
            rest.get(..i).unwrap_or_default(),
            rest.get(i..).unwrap_or_default().trim_start(),
        ),
        None => (rest, ""),
    };
    if typ.is_empty() {
        return Err("HEALTHCHECK requires at least one argument".to_string());
    }
    let typ = typ.to_uppercase();
    if typ == "NONE" {
        if !cmd.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".to_string());
        }
        return Ok(Healthcheck::None);
    }
    let f = Flags::parse(
        flags,
        &[
            ("interval", FlagKind::Str),
            ("timeout", FlagKind::Str),
            ("start-period", FlagKind::Str),
            ("start-interval", FlagKind::Str),
            ("retries", FlagKind::Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(format!("Unknown type {typ:?} in HEALTHCHECK (try CMD)"));
    }
    let cmd = match parse_json(cmd) {
        Json::Strings(v) if v.is_empty() => None,
        Json::Strings(v) => Some(CmdLine::Exec(v)),
        Json::NotStrings => return Err(NOT_STRINGS.to_string()),
        Json::No if cmd.is_empty() => None,
        Json::No => Some(CmdLine::Shell(cmd.to_string())),
    };
    let Some(cmd) = cmd else {
        return Err("Missing command after HEALTHCHECK CMD".to_string());
    };
    for name in ["interval", "timeout", "start-period", "start-interval"] {
        if let Some(v) = f.string(name) {
            if v.is_empty() {
                continue;
            }
            let ns = parse_go_duration(&v)
                .ok_or_else(|| format!("time: invalid duration {v:?} for --{name}"))?;
            if ns != 0.0 && ns < 1e6 {
                return Err(format!("Interval {name:?} cannot be less than 1ms"));
            }
        }
    }
    if let Some(r) = f.string("retries").filter(|r| !r.is_empty()) {
        let n: i32 = r
            .parse()
            .map_err(|_| format!("invalid value {r:?} for --retries: a number is needed"))?;
        if n < 0 {
            return Err(format!("--retries cannot be negative ({n})"));
        }
    }
    Ok(Healthcheck::Cmd {
        cmd,
        interval: f.string("interval"),
        timeout: f.string("timeout"),
        start_period: f.string("start-period"),
        start_interval: f.string("start-interval"),
        retries: f.string("retries"),
    })
}
