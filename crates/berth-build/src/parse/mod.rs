//! Dockerfile text → [`crate::ast::Dockerfile`]. Pure: no I/O, no environment; never panics on
//! any input (fuzzed by `tests/parse_fuzz.rs`).
//!
//! The rules are BuildKit's (its `parser` and `instructions` packages, learned from their
//! behaviour): parser directives only at the very top; a line ending in the escape character
//! continues on the next one, where comment lines and empty lines are skipped; the keyword is
//! case-insensitive; `--flags` come off the front of the arguments; RUN, COPY and ADD in shell
//! form collect heredocs, whose bodies are the lines that follow. The parser is line-oriented
//! and iterative (the only recursion is one level for an ONBUILD trigger), and slices strings
//! only at character boundaries.
//!
//! - [`words`]: flags, words, JSON arrays, small value syntaxes;
//! - [`instruction`]: one logical line → one instruction.

mod instruction;
mod words;

use std::collections::HashSet;

use crate::ast::{Dockerfile, Heredoc, Inst, Instruction, Stage};
use crate::shell;
use instruction::Parsed;

/// A syntax error with the 1-based line it is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error on line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

/// Parses a Dockerfile.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    let lines: Vec<&str> = src.split_inclusive('\n').collect();
    let mut directives = Directives::default();
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut names = HashSet::new();
    let mut seen_instruction = false;

    let mut next = 0; // index of the next unread line
    while let Some(&raw) = lines.get(next) {
        let mut text = trim_newline(raw);
        if next == 0 {
            text = text.strip_prefix('\u{feff}').unwrap_or(text);
        }
        let text = text.trim_start();
        directives.check(text).map_err(|m| err(next + 1, m))?;
        next += 1;
        let start = next; // 1-based line of this instruction
        let text = if text.starts_with('#') { "" } else { text };
        let escape = directives.escape;
        let (first, mut end_of_line) = trim_continuation(text, escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut joined = first.to_string();
        while !end_of_line {
            let Some(&raw) = lines.get(next) else { break };
            let text = trim_newline(raw);
            directives.check(text).map_err(|m| err(next + 1, m))?;
            next += 1;
            let trimmed = text.trim_start();
            // Comment lines and empty lines inside a continuation are skipped.
            if trimmed.starts_with('#') || trimmed.is_empty() {
                continue;
            }
            let (part, eol) = trim_continuation(text, escape);
            joined.push_str(part);
            end_of_line = eol;
        }

        let mut parsed =
            instruction::parse_line(&joined, escape, false).map_err(|m| err(start, m))?;
        seen_instruction = true;

        if instruction::can_contain_heredoc(&parsed) && joined.contains("<<") {
            let specs = heredocs_in_line(&joined).map_err(|m| err(start, m))?;
            let mut docs = Vec::with_capacity(specs.len());
            let mut raw_bodies = Vec::with_capacity(specs.len());
            for spec in specs {
                let mut body = String::new();
                let mut terminated = false;
                while let Some(&raw) = lines.get(next) {
                    next += 1;
                    let mut candidate = trim_newline(raw);
                    if spec.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == spec.name {
                        terminated = true;
                        break;
                    }
                    body.push_str(raw);
                }
                if !terminated {
                    return Err(err(
                        start,
                        format!(
                            "unterminated heredoc: no line {:?} ends the one opened here",
                            spec.name
                        ),
                    ));
                }
                let content = if spec.chomp {
                    chomp_tabs(&body)
                } else {
                    body.clone()
                };
                raw_bodies.push((body, spec.name.clone()));
                docs.push(Heredoc {
                    name: spec.name,
                    content,
                    expand: spec.expand,
                });
            }
            match &mut parsed {
                Parsed::Inst(Inst::Run(run)) => run.heredocs = docs,
                Parsed::Inst(Inst::Copy(c) | Inst::Add(c)) => c.heredocs = docs,
                Parsed::Inst(Inst::Onbuild(trigger)) => {
                    for (body, name) in raw_bodies {
                        trigger.push('\n');
                        trigger.push_str(&body);
                        trigger.push_str(&name);
                    }
                }
                _ => {}
            }
        }

        let original = joined.trim().to_string();
        match parsed {
            Parsed::From {
                image,
                name,
                platform,
            } => {
                if let Some(n) = &name {
                    if !names.insert(n.clone()) {
                        return Err(err(start, format!("duplicate stage name {n:?}")));
                    }
                }
                stages.push(Stage {
                    index: stages.len(),
                    name,
                    image,
                    platform,
                    line: start,
                    original,
                    instructions: Vec::new(),
                });
            }
            Parsed::Inst(kind) => {
                let inst = Instruction {
                    line: start,
                    original,
                    kind,
                };
                match stages.last_mut() {
                    Some(stage) => stage.instructions.push(inst),
                    None if matches!(inst.kind, Inst::Arg(_)) => meta_args.push(inst),
                    None => {
                        return Err(err(
                            start,
                            "no build stage in current context: a Dockerfile must begin with \
                             FROM (only ARG may come before it)",
                        ))
                    }
                }
            }
        }
    }

    if !seen_instruction {
        return Err(err(1, "file with no instructions"));
    }
    if stages.is_empty() {
        return Err(err(
            1,
            "dockerfile contains no stages to build: add a FROM instruction",
        ));
    }
    Ok(Dockerfile {
        escape: directives.escape,
        syntax: directives.syntax,
        meta_args,
        stages,
    })
}

/// Parser directives (`# escape=`, `# syntax=`, `# check=`): only at the top of the file.
struct Directives {
    done: bool,
    seen: HashSet<String>,
    escape: char,
    syntax: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            done: false,
            seen: HashSet::new(),
            escape: '\\',
            syntax: None,
        }
    }
}

impl Directives {
    /// Looks at a line while directives may still come; the first line that is not a known
    /// directive ends them.
    fn check(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some((name, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let name = name.to_ascii_lowercase();
        if !matches!(name.as_str(), "escape" | "syntax" | "check") {
            self.done = true;
            return Ok(());
        }
        if !self.seen.insert(name.clone()) {
            return Err(format!("only one {name} parser directive can be used"));
        }
        match name.as_str() {
            "escape" => {
                self.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(format!(
                            "invalid escape token '{value}' does not match ` or \\"
                        ))
                    }
                }
            }
            "syntax" => self.syntax = Some(value.to_string()),
            _ => {}
        }
        Ok(())
    }
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` → (name, value).
fn directive(line: &str) -> Option<(&str, &str)> {
    let ws = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\u{0c}');
    let rest = line.strip_prefix('#')?.trim_start_matches(ws);
    let mut name_len = 0;
    for (i, c) in rest.char_indices() {
        let ok = if i == 0 {
            c.is_ascii_alphabetic()
        } else {
            c.is_ascii_alphanumeric()
        };
        if !ok {
            break;
        }
        name_len = i + c.len_utf8();
    }
    if name_len == 0 {
        return None;
    }
    let name = rest.get(..name_len)?;
    let rest = rest.get(name_len..)?.trim_start_matches(ws);
    let value = rest.strip_prefix('=')?.trim_matches(ws);
    if value.is_empty() {
        return None;
    }
    Some((name, value))
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

/// Removes a trailing escape character (and blanks after it): (the text, whether the
/// instruction ends on this line). As in BuildKit, a doubled escape at the end (`a\\`) is an
/// escaped escape, not a continuation; a line holding only the escape is one.
fn trim_continuation(s: &str, escape: char) -> (&str, bool) {
    let t = s.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(head) if !head.ends_with(escape) => (head, false),
        Some(_) | None => (s, true),
    }
}

/// `<<-` bodies: leading tabs removed from every line.
fn chomp_tabs(body: &str) -> String {
    body.split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

/// A heredoc opener found in an instruction's line.
#[derive(Debug, PartialEq)]
pub(crate) struct HeredocSpec {
    name: String,
    chomp: bool,
    expand: bool,
}

/// The heredocs a line opens, in order: its words (quotes and escapes kept) of the form
/// `[n]<<[-]NAME`. A line whose quotes do not balance opens none, as in BuildKit.
fn heredocs_in_line(line: &str) -> Result<Vec<HeredocSpec>, String> {
    let opts = shell::Options {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset: true,
    };
    let Ok((_, words)) = shell::process_with(line, &|_| None, '\\', opts) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for w in words {
        if let Some(spec) = heredoc_spec(&w)? {
            out.push(spec);
        }
    }
    Ok(out)
}

/// Reads one word as a heredoc opener (`^(\d*)<<(-?)([^<]*)$`); the name is the word with
/// quotes removed, and a quoted name means the body is not expanded.
pub(crate) fn heredoc_spec(word: &str) -> Result<Option<HeredocSpec>, String> {
    let after_fd = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(after) = after_fd.strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match after.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, after),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let plain = shell::Options {
        raw_quotes: false,
        raw_escapes: false,
        skip_unset: true,
    };
    let raw = shell::Options {
        raw_quotes: true,
        ..plain
    };
    let (_, words) =
        shell::process_with(rest, &|_| None, '\\', plain).map_err(|e| e.message.clone())?;
    let [name] = words.as_slice() else {
        return Ok(None);
    };
    let (_, raw_words) =
        shell::process_with(rest, &|_| None, '\\', raw).map_err(|e| e.message.clone())?;
    let [raw_name] = raw_words.as_slice() else {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    };
    let quotes = |s: &str| s.chars().filter(|&c| c == '\'' || c == '"').count();
    Ok(Some(HeredocSpec {
        name: name.clone(),
        chomp,
        expand: quotes(name) == quotes(raw_name),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_read_at_the_top_only() {
        assert_eq!(directive("# escape=`"), Some(("escape", "`")));
        assert_eq!(directive("#ESCAPE = \\ "), Some(("ESCAPE", "\\")));
        assert_eq!(
            directive("# syntax=docker/dockerfile:1"),
            Some(("syntax", "docker/dockerfile:1"))
        );
        assert_eq!(directive("# not a directive"), None);
        assert_eq!(directive("# 1x=y"), None);
        let df = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN x `\n  y\n").unwrap();
        assert_eq!(df.escape, '`');
        assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
        let df = parse("# comment\n# escape=`\nFROM a\nRUN x \\\n").unwrap();
        assert_eq!(df.escape, '\\');
        assert_eq!(df.stages[0].instructions[0].original, "RUN x");
    }

    #[test]
    fn heredoc_words() {
        let spec = |w: &str| heredoc_spec(w).unwrap();
        assert_eq!(
            spec("<<EOF"),
            Some(HeredocSpec {
                name: "EOF".into(),
                chomp: false,
                expand: true
            })
        );
        assert_eq!(
            spec("<<-'EOF'"),
            Some(HeredocSpec {
                name: "EOF".into(),
                chomp: true,
                expand: false
            })
        );
        assert_eq!(
            spec("3<<\"E\"OF"),
            Some(HeredocSpec {
                name: "EOF".into(),
                chomp: false,
                expand: false
            })
        );
        assert_eq!(spec("<<"), None);
        assert_eq!(spec("a<<EOF"), None);
        assert_eq!(spec("<<<EOF"), None);
        assert_eq!(chomp_tabs("\t\ta\n\tb\n c\n"), "a\nb\n c\n");
    }
}
