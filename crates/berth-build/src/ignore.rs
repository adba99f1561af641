//! `.dockerignore`: Go `filepath.Match` patterns plus `**`, `!` exceptions, last match wins
//! (moby's patternmatcher semantics). Pure; never panics on any input.
//!
//! A pattern is compiled as moby compiles it: `*` and `?` never cross `/`, `**` crosses any number
//! of directories (`**/x` also matches `x`, a trailing `**` matches everything below), `[...]`
//! classes, `\` quoting the next character. A path is excluded when the last pattern matching it
//! or one of its parent directories is not an exception. Matching runs a small NFA over the
//! pattern's tokens, so no input can make it backtrack exponentially.

/// A bad pattern (e.g. an unclosed `[`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid .dockerignore pattern {pattern:?}: {message}")]
pub struct IgnoreError {
    pub pattern: String,
    pub message: String,
}

/// Compiled `.dockerignore` patterns.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

/// One compiled line.
#[derive(Debug, Clone)]
struct Pattern {
    /// The cleaned pattern without its `!`.
    text: String,
    exclusion: bool,
    kind: MatchKind,
    /// The pattern as tokens (used for [`MatchKind::Tokens`]).
    tokens: Vec<Tok>,
    /// One token list per `/`-separated component, `None` for a component holding `**`
    /// (used by [`Matcher::may_include_below`]).
    components: Vec<Option<Vec<Tok>>>,
}

/// moby's shortcuts: a pattern without wildcards is compared exactly, `foo/**` is a prefix,
/// `**/foo` a suffix; everything else goes through the tokens.
#[derive(Debug, Clone, PartialEq)]
enum MatchKind {
    Exact,
    Prefix(String),
    Suffix(String),
    Tokens,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `?`: one character but `/`.
    Any,
    /// `*`: any run of characters without `/`.
    Star,
    /// `**` (or `**/`) inside a pattern: nothing, or anything ending in `/`.
    DoubleStar,
    /// `**` at the end of a pattern: anything.
    Rest,
    Class(Class),
}

#[derive(Debug, Clone, PartialEq)]
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
    }
}

impl Matcher {
    /// Compiles the lines of a `.dockerignore` (comments and blank lines skipped, paths cleaned,
    /// leading `/` dropped).
    pub fn new(lines: &[String]) -> Result<Matcher, IgnoreError> {
        let mut patterns = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let line = if i == 0 {
                line.strip_prefix('\u{feff}').unwrap_or(line)
            } else {
                line
            };
            // Only a '#' in the first column starts a comment.
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exclusion, rest) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if exclusion && rest.is_empty() {
                return Err(IgnoreError {
                    pattern: line.to_string(),
                    message: "illegal exclusion pattern \"!\": name what to re-include".to_string(),
                });
            }
            let mut text = clean(rest);
            if text.len() > 1 {
                if let Some(stripped) = text.strip_prefix('/') {
                    text = stripped.to_string();
                }
            }
            patterns.push(
                Pattern::compile(text, exclusion).map_err(|message| IgnoreError {
                    pattern: line.to_string(),
                    message,
                })?,
            );
        }
        Ok(Matcher { patterns })
    }

    /// Parses a `.dockerignore` file's text.
    pub fn from_text(text: &str) -> Result<Matcher, IgnoreError> {
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        Matcher::new(&lines)
    }

    /// Whether there are no patterns at all (nothing is ever excluded).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether `path` (relative to the context, `/`-separated, no leading `./`) is excluded.
    /// A path inside an excluded directory is excluded unless an exception re-includes it.
    pub fn excluded(&self, path: &str) -> bool {
        let path = clean(path);
        let path = path.strip_prefix('/').unwrap_or(&path);
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => path.get(..i).unwrap_or_default().split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for pattern in &self.patterns {
            // An inclusion can only change an unmatched path, an exception a matched one.
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(path);
            if !hit {
                let mut prefix = String::new();
                for dir in &parents {
                    if !prefix.is_empty() {
                        prefix.push('/');
                    }
                    prefix.push_str(dir);
                    if pattern.matches(&prefix) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }

    /// Whether a directory may hold re-included paths (an `!` pattern could match below it), so
    /// a walker must descend into it even though it is excluded.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let dir = clean(dir);
        let dir = dir.strip_prefix('/').unwrap_or(&dir);
        let dir_parts: Vec<&str> = if dir == "." || dir.is_empty() {
            Vec::new()
        } else {
            dir.split('/').collect()
        };
        self.patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| p.may_match_below(&dir_parts))
    }
}

impl Pattern {
    fn compile(text: String, exclusion: bool) -> Result<Pattern, String> {
        let chars: Vec<char> = text.chars().collect();
        let (tokens, kind) = tokenize(&chars, true)?;
        let kind = match kind {
            KindHint::Exact => MatchKind::Exact,
            KindHint::Prefix => {
                MatchKind::Prefix(text.strip_suffix("**").unwrap_or(&text).to_string())
            }
            KindHint::Suffix => {
                MatchKind::Suffix(text.strip_prefix("**").unwrap_or(&text).to_string())
            }
            KindHint::Tokens => MatchKind::Tokens,
        };
        let components = text
            .split('/')
            .map(|part| {
                if part.contains("**") {
                    None
                } else {
                    let chars: Vec<char> = part.chars().collect();
                    tokenize(&chars, false).ok().map(|(t, _)| t)
                }
            })
            .collect();
        Ok(Pattern {
            text,
            exclusion,
            kind,
            tokens,
            components,
        })
    }

    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            MatchKind::Exact => path == self.text,
            MatchKind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            MatchKind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix.strip_prefix('/').is_some_and(|rest| path == rest)
            }
            MatchKind::Tokens => run(&self.tokens, path),
        }
    }

    /// Whether this pattern could match `dir` itself, a parent, or some path below it.
    fn may_match_below(&self, dir: &[&str]) -> bool {
        let mut prefix = String::new();
        for part in dir {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            if self.matches(&prefix) {
                return true;
            }
        }
        for (i, comp) in self.components.iter().enumerate() {
            let Some(comp) = comp else {
                return true; // `**` here: anything deeper may match
            };
            let Some(part) = dir.get(i) else {
                return true; // the pattern goes deeper than dir, its head matched
            };
            if !run(comp, part) {
                return false;
            }
        }
        false
    }
}

enum KindHint {
    Exact,
    Prefix,
    Suffix,
    Tokens,
}

/// Turns a pattern into tokens, validating it as Go's `filepath.Match` would (unclosed or
/// empty classes, a trailing `\`). `whole` says whether `**` is special (a whole pattern) or
/// not (one path component, where it is two stars).
fn tokenize(chars: &[char], whole: bool) -> Result<(Vec<Tok>, KindHint), String> {
    let mut toks = Vec::new();
    let mut kind = KindHint::Exact;
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        let first = i == 0;
        i += 1;
        match c {
            '*' if whole && chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    if matches!(kind, KindHint::Exact) {
                        kind = KindHint::Prefix;
                    } else {
                        kind = KindHint::Tokens;
                    }
                    toks.push(Tok::Rest);
                } else {
                    toks.push(Tok::DoubleStar);
                    kind = KindHint::Tokens;
                }
                if first {
                    kind = KindHint::Suffix;
                }
            }
            '*' => {
                toks.push(Tok::Star);
                kind = KindHint::Tokens;
            }
            '?' => {
                toks.push(Tok::Any);
                kind = KindHint::Tokens;
            }
            '\\' => match chars.get(i) {
                Some(&n) => {
                    toks.push(Tok::Lit(n));
                    i += 1;
                    kind = KindHint::Tokens;
                }
                None => return Err("a trailing \\ escapes nothing".to_string()),
            },
            '[' => {
                let (class, next) = parse_class(chars, i)?;
                toks.push(Tok::Class(class));
                i = next;
                kind = KindHint::Tokens;
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    Ok((toks, kind))
}

/// A `[...]` class starting after the `[` at `i`; returns it and the index after the `]`.
fn parse_class(chars: &[char], mut i: usize) -> Result<(Class, usize), String> {
    let unclosed = || "unclosed or empty character class [...]".to_string();
    let mut class = Class {
        negated: false,
        ranges: Vec::new(),
    };
    if chars.get(i) == Some(&'^') {
        class.negated = true;
        i += 1;
    }
    loop {
        match chars.get(i) {
            Some(']') if !class.ranges.is_empty() => return Ok((class, i + 1)),
            None => return Err(unclosed()),
            _ => {}
        }
        let (lo, next) = class_char(chars, i).ok_or_else(unclosed)?;
        i = next;
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            let (h, next) = class_char(chars, i + 1).ok_or_else(unclosed)?;
            hi = h;
            i = next;
        }
        class.ranges.push((lo, hi));
    }
}

/// One (possibly `\`-escaped) character of a class; `-` and `]` need escaping.
fn class_char(chars: &[char], i: usize) -> Option<(char, usize)> {
    match chars.get(i)? {
        '-' | ']' => None,
        '\\' => chars.get(i + 1).map(|&c| (c, i + 2)),
        &c => Some((c, i + 1)),
    }
}

/// Runs the tokens as an NFA over `s`; true when the whole of `s` matches.
fn run(toks: &[Tok], s: &str) -> bool {
    let n = toks.len();
    // state i: about to match toks[i]; n: done. `inner[i]`: inside a DoubleStar's `.*/`.
    let mut cur = vec![false; n + 1];
    let mut inner = vec![false; n + 1];
    cur[0] = true;
    close(toks, &mut cur);
    for c in s.chars() {
        let mut next = vec![false; n + 1];
        let mut next_inner = vec![false; n + 1];
        for i in 0..n {
            let (here, in_ds) = (cur[i], inner[i]);
            if !here && !in_ds {
                continue;
            }
            let Some(tok) = toks.get(i) else { continue };
            match tok {
                Tok::Lit(l) if here && *l == c => next[i + 1] = true,
                Tok::Any if here && c != '/' => next[i + 1] = true,
                Tok::Star if here && c != '/' => next[i] = true,
                Tok::Rest if here => next[i] = true,
                Tok::Class(class) if here && class.matches(c) => next[i + 1] = true,
                Tok::DoubleStar => {
                    next_inner[i] = true;
                    if c == '/' {
                        next[i + 1] = true;
                    }
                }
                _ => {}
            }
        }
        close(toks, &mut next);
        if !next.iter().any(|&b| b) && !next_inner.iter().any(|&b| b) {
            return false;
        }
        cur = next;
        inner = next_inner;
    }
    cur[n]
}

/// Epsilon moves: `*`, `**` and a trailing `**` may match nothing.
fn close(toks: &[Tok], states: &mut [bool]) {
    for i in 0..toks.len() {
        if states.get(i) == Some(&true)
            && matches!(toks.get(i), Some(Tok::Star | Tok::DoubleStar | Tok::Rest))
        {
            if let Some(s) = states.get_mut(i + 1) {
                *s = true;
            }
        }
    }
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|&p| p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Matcher {
        Matcher::from_text(text).unwrap()
    }

    #[test]
    fn clean_is_go_like() {
        assert_eq!(clean("a//b/./c/"), "a/b/c");
        assert_eq!(clean("./a/../b"), "b");
        assert_eq!(clean("../a"), "../a");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("/"), "/");
    }

    #[test]
    fn comments_blank_lines_and_cleaning() {
        let mx = m("# comment\n\n  node_modules  \n/build/\n./dist/../out\n #x\n");
        assert!(mx.excluded("node_modules"));
        assert!(mx.excluded("node_modules/a/b.js"));
        assert!(mx.excluded("build"));
        assert!(mx.excluded("build/x"));
        assert!(mx.excluded("out/y"));
        assert!(!mx.excluded("dist"));
        assert!(!mx.excluded("comment"));
        assert!(
            mx.excluded("#x"),
            "a '#' after blanks is a pattern, as in moby"
        );
        assert!(
            !mx.excluded("src/node_modules"),
            "patterns are anchored at the root"
        );
    }

    #[test]
    fn wildcards() {
        let mx = m("*.log\nsrc/?.tmp\ndata[0-9]\n[^a]x");
        assert!(mx.excluded("a.log"));
        assert!(!mx.excluded("dir/a.log"), "* does not cross /");
        assert!(mx.excluded("src/a.tmp"));
        assert!(!mx.excluded("src/ab.tmp"));
        assert!(mx.excluded("data7"));
        assert!(!mx.excluded("datax"));
        assert!(mx.excluded("bx"));
        assert!(!mx.excluded("ax"));
    }

    #[test]
    fn double_star() {
        let mx = m("**/*.go\nlogs/**\n**/tmp\na/**/z");
        assert!(mx.excluded("x.go"));
        assert!(mx.excluded("a/b/c/x.go"));
        assert!(mx.excluded("logs/x/y"));
        assert!(mx.excluded("tmp"));
        assert!(mx.excluded("q/r/tmp/file"));
        assert!(mx.excluded("a/z"));
        assert!(mx.excluded("a/b/c/z"));
        assert!(!mx.excluded("b/z"));
        assert!(!mx.excluded("x.gox"));
        assert!(m("**").excluded("any/thing"));
    }

    #[test]
    fn exceptions_last_match_wins() {
        let mx = m("*.md\n!README.md\nREADME-secret.md\ndocs\n!docs/keep");
        assert!(mx.excluded("CHANGES.md"));
        assert!(!mx.excluded("README.md"));
        assert!(mx.excluded("README-secret.md"));
        assert!(mx.excluded("docs/a"));
        assert!(!mx.excluded("docs/keep"));
        assert!(
            !mx.excluded("docs/keep/inner"),
            "an exception covers what is below it"
        );
        let mx = m("!a\n*");
        assert!(
            mx.excluded("a"),
            "a later pattern overrides an earlier exception"
        );
    }

    #[test]
    fn may_include_below() {
        let mx = m("docs\n!docs/keep/x.txt\nlib\n!lib/*/k");
        assert!(mx.may_include_below("docs"));
        assert!(mx.may_include_below("docs/keep"));
        assert!(!mx.may_include_below("docs/other"));
        assert!(!mx.may_include_below("src"));
        assert!(m("src\n!**/important").may_include_below("src/deep/er"));
        assert!(mx.may_include_below("lib"));
        assert!(mx.may_include_below("lib/a"));
        assert!(!m("docs").may_include_below("docs"));
        assert!(!m("docs\n!other/x").may_include_below("docs"));
        assert!(m("docs\n!docs").may_include_below("docs/x"));
    }

    #[test]
    fn bad_patterns() {
        assert!(Matcher::from_text("[abc").is_err());
        assert!(Matcher::from_text("[]").is_err());
        assert!(Matcher::from_text("a\\").is_err());
        assert!(Matcher::from_text("!").is_err());
        assert!(Matcher::from_text("[a-]").is_err());
        let e = Matcher::from_text("x\n[z").unwrap_err();
        assert_eq!(e.pattern, "[z");
    }

    #[test]
    fn escapes_and_utf8() {
        let mx = m("\u{feff}a\\*b\nünï*");
        assert!(mx.excluded("a*b"));
        assert!(!mx.excluded("axb"));
        assert!(mx.excluded("ünïcode"));
        assert!(!m("").excluded("x"));
        assert!(m("").is_empty());
    }
}
