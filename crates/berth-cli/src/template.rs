//! A small subset of Go's text/template, as `--format` uses it: literal text and `{{ ... }}`
//! actions made of a field path (`.`, `.Field`, `.A.B`) or a function call with arguments
//! (`json .`, `join .Names ","`, `index .Labels "k"`, `upper`, `lower`, `title`, `truncate`,
//! `println`). Data is a `serde_json::Value`. Unknown syntax is an error, never a panic.

use anyhow::{bail, Result};
use serde_json::Value;

use crate::format::value_text;

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Field(Vec<String>),
    Str(String),
    Int(i64),
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Action {
        func: Option<String>,
        args: Vec<Arg>,
    },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    pub fn parse(src: &str) -> Result<Self> {
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                bail!("template: unclosed action in {src:?}");
            };
            let inner = after[..end].trim_start_matches('-').trim_end_matches('-');
            parts.push(parse_action(inner.trim())?);
            rest = &after[end + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// Renders against `data`.
    pub fn render(&self, data: &Value) -> Result<String> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Action { func, args } => out.push_str(&call(func.as_deref(), args, data)?),
            }
        }
        Ok(out)
    }

    /// The header line of a `table` template: each field action becomes its column title.
    pub fn header(&self, headers: &[(&str, &str)]) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Action { args, .. } => {
                    let field = args.iter().find_map(|a| match a {
                        Arg::Field(path) if !path.is_empty() => Some(path.join(".")),
                        _ => None,
                    });
                    if let Some(f) = field {
                        let h = headers
                            .iter()
                            .find(|(k, _)| *k == f)
                            .map(|(_, h)| h.to_string())
                            .unwrap_or_else(|| f.to_uppercase());
                        out.push_str(&h);
                    }
                }
            }
        }
        out
    }
}

fn parse_action(s: &str) -> Result<Part> {
    let toks = tokenize(s)?;
    if toks.is_empty() {
        bail!("template: empty action");
    }
    let first = &toks[0];
    if first.starts_with('.') || first.starts_with('"') || first.parse::<i64>().is_ok() {
        if toks.len() != 1 {
            bail!("template: can't give arguments to a non-function {first}");
        }
        return Ok(Part::Action {
            func: None,
            args: vec![parse_arg(first)?],
        });
    }
    match first.as_str() {
        "json" | "join" | "index" | "upper" | "lower" | "title" | "truncate" | "println"
        | "pad" => {}
        other => bail!("template: function {other:?} not defined"),
    }
    let args = toks[1..]
        .iter()
        .map(|t| parse_arg(t))
        .collect::<Result<_>>()?;
    Ok(Part::Action {
        func: Some(first.clone()),
        args,
    })
}

fn tokenize(s: &str) -> Result<Vec<String>> {
    let mut toks = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '"' {
            let mut t = String::from('"');
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some('n') => t.push('\n'),
                        Some('t') => t.push('\t'),
                        Some(o) => t.push(o),
                        None => break,
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    o => t.push(o),
                }
            }
            if !closed {
                bail!("template: unterminated quoted string");
            }
            toks.push(t);
        } else {
            let mut t = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                t.push(c);
                chars.next();
            }
            if t == "|" {
                bail!("template: pipelines are not supported");
            }
            toks.push(t);
        }
    }
    Ok(toks)
}

fn parse_arg(t: &str) -> Result<Arg> {
    if let Some(s) = t.strip_prefix('"') {
        return Ok(Arg::Str(s.to_string()));
    }
    if t == "." {
        return Ok(Arg::Field(Vec::new()));
    }
    if let Some(path) = t.strip_prefix('.') {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        if parts.iter().any(|p| p.is_empty()) {
            bail!("template: bad field {t:?}");
        }
        return Ok(Arg::Field(parts));
    }
    if let Ok(i) = t.parse() {
        return Ok(Arg::Int(i));
    }
    bail!("template: unexpected {t:?}")
}

fn lookup<'a>(data: &'a Value, path: &[String]) -> Result<&'a Value> {
    let mut v = data;
    for p in path {
        v = match v {
            Value::Object(m) => m.get(p).unwrap_or(&Value::Null),
            Value::Null => &Value::Null,
            _ => bail!("template: can't evaluate field {p} in {}", kind(v)),
        };
    }
    Ok(v)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

fn eval(a: &Arg, data: &Value) -> Result<Value> {
    Ok(match a {
        Arg::Field(p) => lookup(data, p)?.clone(),
        Arg::Str(s) => Value::String(s.clone()),
        Arg::Int(i) => Value::from(*i),
    })
}

/// Go prints a missing map entry as "<no value>".
fn text(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        v => value_text(v),
    }
}

fn call(func: Option<&str>, args: &[Arg], data: &Value) -> Result<String> {
    let vals: Vec<Value> = args.iter().map(|a| eval(a, data)).collect::<Result<_>>()?;
    let arg = |i: usize| -> Result<&Value> {
        vals.get(i)
            .ok_or_else(|| anyhow::anyhow!("template: wrong number of args"))
    };
    Ok(match func {
        None => text(arg(0)?),
        Some("json") => serde_json::to_string(arg(0)?)?,
        Some("join") => {
            let sep = value_text(arg(1)?);
            match arg(0)? {
                Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join(&sep),
                v => value_text(v),
            }
        }
        Some("index") => {
            let mut v = arg(0)?.clone();
            for k in &vals[1..] {
                v = match (&v, k) {
                    (Value::Object(m), k) => m.get(&value_text(k)).cloned().unwrap_or(Value::Null),
                    (Value::Array(a), Value::Number(n)) => n
                        .as_u64()
                        .and_then(|i| a.get(i as usize).cloned())
                        .unwrap_or(Value::Null),
                    _ => Value::Null,
                };
            }
            match v {
                Value::Null => String::new(),
                v => value_text(&v),
            }
        }
        Some("upper") => value_text(arg(0)?).to_uppercase(),
        Some("lower") => value_text(arg(0)?).to_lowercase(),
        Some("title") => {
            let s = value_text(arg(0)?);
            let mut c = s.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect(),
                None => s,
            }
        }
        Some("truncate") => {
            let n = arg(1)?.as_u64().unwrap_or(0) as usize;
            value_text(arg(0)?).chars().take(n).collect()
        }
        Some("pad") => {
            let s = value_text(arg(0)?);
            let l = arg(1)?.as_u64().unwrap_or(0) as usize;
            let r = arg(2)?.as_u64().unwrap_or(0) as usize;
            format!("{}{s}{}", " ".repeat(l.min(1024)), " ".repeat(r.min(1024)))
        }
        Some("println") => {
            let s: Vec<String> = vals.iter().map(value_text).collect();
            format!("{}\n", s.join(" "))
        }
        Some(other) => bail!("template: function {other:?} not defined"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r(t: &str, d: &Value) -> String {
        Template::parse(t).unwrap().render(d).unwrap()
    }

    #[test]
    fn fields_and_text() {
        let d = json!({"ID": "abc", "State": {"Status": "running", "Pid": 7}});
        assert_eq!(r("{{.ID}}\t{{.State.Status}}", &d), "abc\trunning");
        assert_eq!(r("pid={{ .State.Pid }}", &d), "pid=7");
        assert_eq!(r("{{.Missing}}", &d), "<no value>");
        assert_eq!(r("plain", &d), "plain");
    }

    #[test]
    fn functions() {
        let d = json!({"Names": ["a", "b"], "Labels": {"k": "v"}, "C": {"X": 1}});
        assert_eq!(r("{{json .C}}", &d), "{\"X\":1}");
        assert_eq!(r("{{json .}}", &json!({"a": 1})), "{\"a\":1}");
        assert_eq!(r("{{join .Names \",\"}}", &d), "a,b");
        assert_eq!(r("{{index .Labels \"k\"}}", &d), "v");
        assert_eq!(r("{{index .Labels \"none\"}}", &d), "");
        assert_eq!(r("{{upper \"ab\"}}", &d), "AB");
        assert_eq!(r("{{truncate \"abcdef\" 3}}", &d), "abc");
    }

    #[test]
    fn errors_not_panics() {
        assert!(Template::parse("{{.ID").is_err());
        assert!(Template::parse("{{nope .ID}}").is_err());
        assert!(Template::parse("{{.ID | json}}").is_err());
        assert!(Template::parse("{{}}").is_err());
        assert!(Template::parse("{{\"x}}").is_err());
        assert!(Template::parse("{{.A..B}}").is_err());
        let t = Template::parse("{{.A.B}}").unwrap();
        assert!(t.render(&json!({"A": "s"})).is_err());
        let t = Template::parse("{{index .A 1 2}}").unwrap();
        assert_eq!(t.render(&json!({"A": [1, [2]]})).unwrap(), "");
    }

    #[test]
    fn headers() {
        let t = Template::parse("{{.ID}}\t{{.Names}}\t{{.Other}}").unwrap();
        assert_eq!(
            t.header(&[("ID", "CONTAINER ID"), ("Names", "NAMES")]),
            "CONTAINER ID\tNAMES\tOTHER"
        );
    }
}
