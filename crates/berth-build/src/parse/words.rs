//! Word-level helpers of the parser: how BuildKit splits an instruction's text into flags,
//! words, JSON arrays and `key=value` pairs, and the small value syntaxes flags use (booleans,
//! Go durations, byte sizes). Everything works on `char`s, never on byte offsets that could fall
//! inside a UTF-8 sequence.

use std::collections::HashMap;

/// The separators of `reWhitespace` (`[\t\v\f\r ]`): what splits an instruction's words.
pub(crate) fn is_sep(c: char) -> bool {
    matches!(c, '\t' | '\u{0b}' | '\u{0c}' | '\r' | ' ')
}

/// Words separated by runs of [`is_sep`] (no quote handling: `COPY "a b" c` is three words).
pub(crate) fn split_ws(s: &str) -> Vec<String> {
    s.split(is_sep)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The first word and the rest after the separators following it (`reWhitespace.Split(s, 2)`).
pub(crate) fn split_first(s: &str) -> (&str, Option<&str>) {
    match s.find(is_sep) {
        Some(i) => {
            let head = s.get(..i).unwrap_or_default();
            let tail = s.get(i..).unwrap_or_default().trim_start_matches(is_sep);
            (head, Some(tail))
        }
        None => (s, None),
    }
}

/// Takes the leading `--flag[=value]` words off an instruction's arguments (BuildKit's
/// `extractBuilderFlags`): quotes inside a flag are removed, `\` escapes the next character.
/// Returns the rest of the line (untrimmed) and the flags as written (`--name=value`).
pub(crate) fn extract_flags(line: &str) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let rest_from = |pos: usize| -> String {
        chars
            .get(pos)
            .and_then(|&(b, _)| line.get(b..))
            .unwrap_or_default()
            .to_string()
    };
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let ch = chars.get(pos).map(|&(_, c)| c);
        if phase == Phase::Spaces {
            let Some(c) = ch else { break };
            if c.is_whitespace() {
                pos += 1;
                continue;
            }
            let next = chars.get(pos + 1).map(|&(_, c)| c);
            if c != '-' || next != Some('-') {
                return (rest_from(pos), words);
            }
            phase = Phase::Word;
        }
        let Some(c) = ch else {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        };
        if phase == Phase::Word {
            if c.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if c == '\'' || c == '"' {
                quote = c;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = c;
            if c == '\\' {
                match chars.get(pos + 1) {
                    None => {
                        pos += 1;
                        continue;
                    }
                    Some(&(_, n)) => {
                        pos += 1;
                        c = n;
                    }
                }
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if c == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = c;
        if c == '\\' {
            match chars.get(pos + 1) {
                None => {
                    phase = Phase::Word;
                    pos += 1;
                    continue;
                }
                Some(&(_, n)) => {
                    pos += 1;
                    c = n;
                }
            }
        }
        word.push(c);
        pos += 1;
    }
    (String::new(), words)
}

/// Splits on whitespace keeping quotes and escapes in the words (BuildKit's `parseWords`, for
/// ARG, ENV and LABEL): `a="x y" b` is two words, `a="x y"` and `b`.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let ch = chars.get(pos).copied();
        if phase == Phase::Spaces {
            let Some(c) = ch else { break };
            if c.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        let Some(mut c) = ch else {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        };
        if phase == Phase::Word {
            if c.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if c == '\'' || c == '"' {
                quote = c;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if c == escape {
                let Some(&n) = chars.get(pos + 1) else {
                    pos += 1;
                    continue; // an escape at the very end is dropped
                };
                word.push(c);
                pos += 1;
                c = n;
            }
            word.push(c);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if c == quote {
            phase = Phase::Word;
        }
        if c == escape && quote != '\'' {
            let Some(&n) = chars.get(pos + 1) else {
                phase = Phase::Word;
                pos += 1;
                continue;
            };
            word.push(c);
            pos += 1;
            c = n;
        }
        word.push(c);
        pos += 1;
    }
    words
}

/// What a JSON-array reading of an instruction's arguments gave.
pub(crate) enum Json {
    /// Not a JSON array (shell form).
    No,
    /// A JSON array of strings (exec form).
    Strings(Vec<String>),
    /// A JSON array with something other than strings: an error in Docker.
    NotStrings,
}

pub(crate) const NOT_STRINGS: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// Reads `rest` as a JSON array of strings, as BuildKit's `parseJSON`.
pub(crate) fn parse_json(rest: &str) -> Json {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Json::No;
    }
    match serde_json::from_str::<Vec<serde_json::Value>>(rest) {
        Err(_) => Json::No,
        Ok(values) => {
            let mut out = Vec::with_capacity(values.len());
            for v in values {
                match v {
                    serde_json::Value::String(s) => out.push(s),
                    _ => return Json::NotStrings,
                }
            }
            Json::Strings(out)
        }
    }
}

/// The type of a builder flag.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum FlagKind {
    Bool,
    Str,
    /// May be repeated; every value kept.
    Strings,
}

/// Parsed builder flags: name → values (a bool flag holds `"true"` or `"false"`).
#[derive(Default, Debug)]
pub(crate) struct Flags {
    values: HashMap<String, Vec<String>>,
}

impl Flags {
    /// Checks `flags` (as written, `--name[=value]`) against the flags the instruction takes
    /// (BuildKit's `BFlags.Parse`).
    pub(crate) fn parse(flags: &[String], known: &[(&str, FlagKind)]) -> Result<Flags, String> {
        let mut out = Flags::default();
        for arg in flags {
            let Some(arg) = arg.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {arg}"));
            };
            if arg.is_empty() {
                return Ok(out);
            }
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            let Some(&(_, kind)) = known.iter().find(|(n, _)| *n == name) else {
                let hint = known
                    .iter()
                    .map(|(n, _)| (distance(name, n), *n))
                    .min_by_key(|(d, _)| *d)
                    .filter(|&(d, _)| d > 0 && d <= 2 && name.chars().count() > 2)
                    .map(|(_, n)| format!(" (did you mean --{n}?)"))
                    .unwrap_or_default();
                return Err(format!("unknown flag: --{name}{hint}"));
            };
            if kind != FlagKind::Strings && out.values.contains_key(name) {
                return Err(format!("duplicate flag specified: --{name}"));
            }
            let value = match (kind, value) {
                (FlagKind::Bool, Some("")) => {
                    return Err(format!("missing a value on flag: --{name}"));
                }
                (FlagKind::Bool, None) => "true".to_string(),
                (FlagKind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                    "true" => "true".to_string(),
                    "false" => "false".to_string(),
                    _ => {
                        return Err(format!(
                            "expecting boolean value for flag --{name}, not: {v}"
                        ))
                    }
                },
                (_, None) => return Err(format!("missing a value on flag: --{name}")),
                (_, Some(v)) => v.to_string(),
            };
            out.values.entry(name.to_string()).or_default().push(value);
        }
        Ok(out)
    }

    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last()).cloned()
    }

    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    pub(crate) fn bool(&self, name: &str) -> bool {
        self.string(name).as_deref() == Some("true")
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `time.ParseDuration`, in nanoseconds (`None` when malformed).
pub(crate) fn parse_go_duration(s: &str) -> Option<f64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0.0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = rest.get(..num_len)?;
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = if num.ends_with('.') {
            num.trim_end_matches('.').parse().ok()?
        } else if num.starts_with('.') {
            format!("0{num}").parse().ok()?
        } else {
            num.parse().ok()?
        };
        rest = rest.get(num_len..)?;
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = rest.get(..unit_len)?;
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = rest.get(unit_len..)?;
    }
    Some(if neg { -total } else { total })
}

/// docker/go-units `RAMInBytes`: `1024`, `64m`, `1.5GiB`, `512 kb` (binary multiples).
pub(crate) fn parse_ram_bytes(s: &str) -> Option<u64> {
    let num_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let num = s.get(..num_len)?;
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.contains("..") {
        return None;
    }
    let value: f64 = if num.matches('.').count() > 1 {
        // `\d+(\.\d+)*` allows 1.2.3; Go's ParseFloat would reject it afterwards.
        return None;
    } else {
        num.parse().ok()?
    };
    let mut unit = s.get(num_len..)?;
    unit = unit.strip_prefix(' ').unwrap_or(unit);
    let mut chars = unit.chars().peekable();
    let mult: f64 = match chars.peek().map(|c| c.to_ascii_lowercase()) {
        Some('k') => 1024f64,
        Some('m') => 1024f64.powi(2),
        Some('g') => 1024f64.powi(3),
        Some('t') => 1024f64.powi(4),
        Some('p') => 1024f64.powi(5),
        _ => 1.0,
    };
    if mult != 1.0 {
        chars.next();
    }
    if chars.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'i')) {
        chars.next();
    }
    if chars.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'b')) {
        chars.next();
    }
    if chars.next().is_some() {
        return None;
    }
    let bytes = value * mult;
    if !(0.0..1.8e19).contains(&bytes) {
        return None;
    }
    Some(bytes as u64)
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev.get(j).copied().unwrap_or(0) + usize::from(ca != cb);
            let del = prev.get(j + 1).copied().unwrap_or(0) + 1;
            let ins = cur.get(j).copied().unwrap_or(0) + 1;
            if let Some(c) = cur.get_mut(j + 1) {
                *c = sub.min(del).min(ins);
            }
        }
        prev = cur;
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_taken_off_the_front() {
        let (rest, flags) = extract_flags("--from=build --chown=\"a b\" src dst");
        assert_eq!(flags, ["--from=build", "--chown=a b"]);
        assert_eq!(rest, "src dst");
        let (rest, flags) = extract_flags("--link -- --not-a-flag x");
        assert_eq!(flags, ["--link"]);
        assert_eq!(rest, " --not-a-flag x");
        let (rest, flags) = extract_flags("-x --y");
        assert!(flags.is_empty());
        assert_eq!(rest, "-x --y");
        let (rest, flags) = extract_flags("--a=\\\" --b='c d'");
        assert_eq!(flags, ["--a=\"", "--b=c d"]);
        assert_eq!(rest, "");
        let (rest, flags) = extract_flags("--é=ü ö");
        assert_eq!(flags, ["--é=ü"]);
        assert_eq!(rest, "ö");
    }

    #[test]
    fn words_keep_quotes_and_escapes() {
        assert_eq!(parse_words("a=\"x y\" b", '\\'), ["a=\"x y\"", "b"]);
        assert_eq!(parse_words("a=x\\ y  'c d'", '\\'), ["a=x\\ y", "'c d'"]);
        assert_eq!(parse_words("a='x\\' b", '\\'), ["a='x\\'", "b"]);
        assert_eq!(parse_words("a=`\"x y", '`'), ["a=`\"x", "y"]);
        assert_eq!(parse_words("  ", '\\'), Vec::<String>::new());
        assert_eq!(parse_words("x\\", '\\'), ["x"]);
    }

    #[test]
    fn json_arrays() {
        assert!(matches!(parse_json(r#"["a", "b"]"#), Json::Strings(v) if v == ["a", "b"]));
        assert!(matches!(parse_json(r#" []"#), Json::Strings(v) if v.is_empty()));
        assert!(matches!(parse_json(r#"[1]"#), Json::NotStrings));
        assert!(matches!(parse_json(r#"["a" "#), Json::No));
        assert!(matches!(parse_json(r#"echo ["a"]"#), Json::No));
        assert!(matches!(parse_json(r#"["a"] x"#), Json::No));
    }

    #[test]
    fn values() {
        assert_eq!(parse_go_duration("30s"), Some(30e9));
        assert_eq!(parse_go_duration("1m30s"), Some(90e9));
        assert_eq!(parse_go_duration("1.5h"), Some(5400e9));
        assert_eq!(parse_go_duration("0"), Some(0.0));
        assert_eq!(parse_go_duration("10"), None);
        assert_eq!(parse_go_duration("5x"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_ram_bytes("1024"), Some(1024));
        assert_eq!(parse_ram_bytes("64m"), Some(64 << 20));
        assert_eq!(parse_ram_bytes("1GiB"), Some(1 << 30));
        assert_eq!(parse_ram_bytes("1.5 kb"), Some(1536));
        assert_eq!(parse_ram_bytes("big"), None);
        assert_eq!(parse_ram_bytes("1q"), None);
        assert_eq!(distance("frm", "from"), 1);
        assert_eq!(distance("", "abc"), 3);
    }
}
