//! Docker's word expansion for Dockerfile arguments: `$VAR`, `${VAR}`, `${VAR:-word}`,
//! `${VAR:+word}`, `${VAR-word}`, `${VAR+word}`, `${VAR?msg}`, `${VAR#pat}`, `${VAR%pat}`,
//! `${VAR/pat/repl}`, single and double quotes, the escape character.
//!
//! The rules are those of BuildKit's `shell.Lex` (`ProcessWord` / `ProcessWords`), learned from its
//! behaviour: quotes are removed, a variable's value is inserted as is by [`expand`], while
//! [`expand_words`] splits on whitespace that is neither quoted nor escaped — including whitespace
//! that came out of a variable's value (`ENV A="x y"` then `EXPOSE $A` is two words).
//! Pure; never panics on any input, and bounds its recursion so that hostile nesting is an error,
//! not a stack overflow.

/// A word that cannot be expanded (an unterminated `${`, a bad modifier, an unclosed quote).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ShellError {
    pub message: String,
}

/// How deep `${a:-${b:-...}}` may nest before it is refused.
const MAX_DEPTH: usize = 64;

/// Expands one word (quotes removed, variables substituted) as Docker's `ProcessWord` does.
/// `lookup` answers a variable's value (`None` = unset).
pub fn expand(
    word: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<String, ShellError> {
    process(word, lookup, escape).map(|(result, _)| result)
}

/// Expands a text and splits it into words on unquoted whitespace (Docker's `ProcessWords`),
/// for instructions whose arguments are a list (`EXPOSE`, `VOLUME`, `COPY` sources, …).
/// Empty words (`""`) are dropped, as Docker does.
pub fn expand_words(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<String>, ShellError> {
    process(text, lookup, escape).map(|(_, words)| words)
}

fn process(
    source: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<(String, Vec<String>), ShellError> {
    process_with(source, lookup, escape, Options::default())
}

/// Variations of the lexer used by the parser (heredoc detection), as BuildKit's `Lex` flags.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Options {
    /// Keep quote characters in the result.
    pub raw_quotes: bool,
    /// Keep escape characters in the result.
    pub raw_escapes: bool,
    /// Leave references to unset variables as written.
    pub skip_unset: bool,
}

/// [`expand`] and [`expand_words`] in one, with [`Options`]: (the word, the split words).
pub(crate) fn process_with(
    source: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
    opts: Options,
) -> Result<(String, Vec<String>), ShellError> {
    let mut lex = Lexer {
        chars: source.chars().collect(),
        pos: 0,
        escape,
        lookup,
        depth: 0,
        raw_escapes: opts.raw_escapes,
        raw_quotes: opts.raw_quotes,
        skip_unset: opts.skip_unset,
    };
    lex.process_until(None, opts.raw_escapes)
        .map_err(|message| ShellError {
            message: format!("failed to process {source:?}: {message}"),
        })
}

/// Words being split: the current word, whether a word has started (an empty quoted string
/// starts one but is dropped at the end if still empty), and the finished words.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    /// A character that splits on whitespace.
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
    depth: usize,
    /// Whether escape characters are kept (set for the duration of one `process_until`).
    raw_escapes: bool,
    raw_quotes: bool,
    skip_unset: bool,
}

type LexResult<T> = Result<T, String>;

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn env(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// Processes up to `stop` (consumed) or the end of the text (`stop` = None). With
    /// `raw_escapes` the escape character is kept in the result (patterns of `#`, `%`, `/`).
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> LexResult<(String, Vec<String>)> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("substitutions nested too deeply".to_string());
        }
        let saved = std::mem::replace(&mut self.raw_escapes, raw_escapes);
        let r = self.process_until_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        r
    }

    fn process_until_inner(&mut self, stop: Option<char>) -> LexResult<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            match ch {
                '$' => {
                    let value = self.dollar()?;
                    result.push_str(&value);
                    words.add_string(&value);
                }
                '\'' => {
                    let value = self.single_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                '"' => {
                    let value = self.double_quote()?;
                    result.push_str(&value);
                    words.add_raw_string(&value);
                }
                _ => {
                    self.pos += 1;
                    if ch == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // An escape at the very end is dropped.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        match stop {
            Some(c) => Err(format!(
                "unexpected end of statement while looking for matching {c}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    /// `'...'`: everything literal up to the next `'`.
    fn single_quote(&mut self) -> LexResult<String> {
        self.pos += 1;
        let mut out = String::new();
        if self.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_string(),
                    )
                }
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    /// `"..."`: literal except `$` and the escape character before `"`, `$` or itself.
    fn double_quote(&mut self) -> LexResult<String> {
        self.pos += 1;
        let mut out = String::new();
        if self.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_string(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let value = self.dollar()?;
                    out.push_str(&value);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.escape {
                        if self.raw_escapes {
                            out.push(ch);
                        }
                        match self.peek() {
                            // An escape right before the end: dropped (the missing quote errs next).
                            None => continue,
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                ch = n;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(ch);
                }
            }
        }
    }

    /// A variable name after `$`: letters, digits, `_`; or a run of digits; or one special
    /// parameter character (`$@`, `$#`, …, which are never set here).
    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.pos += 1;
        }
        name
    }

    fn dollar(&mut self) -> LexResult<String> {
        self.pos += 1; // the '$'
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.env(&name) {
                Some(v) => v,
                None if self.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1; // the '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".to_string()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_string()),
            Some(_) => {}
        }
        let name = self.name();
        let Some(mut ch) = self.next() else {
            return Err("syntax error: missing '}'".to_string());
        };
        let mut modifier = ch.to_string();
        let mut null_is_unset = false;
        match ch {
            '}' => Ok(match self.env(&name) {
                Some(v) => v,
                None if self.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                if ch == ':' {
                    null_is_unset = true;
                    let Some(c) = self.next() else {
                        return Err("syntax error: missing '}'".to_string());
                    };
                    ch = c;
                    modifier.push(c);
                }
                let raw = ch == '#' || ch == '%';
                let word = self.word_until('}', raw, "syntax error: missing '}'")?;
                let value = self.env(&name);
                if value.is_none() && self.skip_unset {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let empty_or_unset = match &value {
                    None => true,
                    Some(v) => null_is_unset && v.is_empty(),
                };
                match ch {
                    '-' => Ok(if empty_or_unset {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if empty_or_unset { String::new() } else { word }),
                    '?' => match value {
                        None => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be unset"
                            } else {
                                &word
                            }
                        )),
                        Some(v) if null_is_unset && v.is_empty() => Err(format!(
                            "{name}: {}",
                            if word.is_empty() {
                                "is not allowed to be empty"
                            } else {
                                &word
                            }
                        )),
                        Some(v) => Ok(v),
                    },
                    '#' | '%' => {
                        let value = value.unwrap_or_default();
                        let (greedy, pat) = match word.strip_prefix(ch) {
                            Some(rest) => (true, rest),
                            None => (false, word.as_str()),
                        };
                        let pattern = Pattern::compile(pat)?;
                        Ok(if ch == '#' {
                            pattern.trim_prefix(&value, greedy)
                        } else {
                            pattern.trim_suffix(&value, greedy)
                        })
                    }
                    _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
                }
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pat = self.word_until('/', true, "syntax error: missing '/' in ${}")?;
                let repl = self.word_until('}', true, "syntax error: missing '}'")?;
                let Some(value) = self.env(&name) else {
                    if self.skip_unset {
                        return Ok(format!("${{{name}/{pat}/{repl}}}"));
                    }
                    return Ok(String::new());
                };
                let pattern = Pattern::compile(&pat)?;
                Ok(pattern.replace(&value, &repl, all))
            }
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }

    /// The word of a modifier, up to `stop`; at the end of the text, `missing` is the error.
    fn word_until(&mut self, stop: char, raw: bool, missing: &str) -> LexResult<String> {
        match self.process_until(Some(stop), raw) {
            Ok((w, _)) => Ok(w),
            Err(e) if self.peek().is_none() && e.starts_with("unexpected end") => {
                Err(missing.to_string())
            }
            Err(e) => Err(e),
        }
    }
}

/// A shell pattern of `${VAR#pat}`, `${VAR%pat}`, `${VAR/pat/repl}`: `*`, `?`, literals; `\`
/// quotes `*`, `?`, `\` and (dropped) `}` and `/`. Like Docker's regexp translation, `*` and `?`
/// do not match a newline.
#[derive(Debug, Clone)]
struct Pattern(Vec<Tok>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

impl Pattern {
    fn compile(pat: &str) -> LexResult<Pattern> {
        let chars: Vec<char> = pat.chars().collect();
        let mut toks = Vec::new();
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            i += 1;
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                '\\' => match chars.get(i) {
                    Some('}' | '/') => {}
                    Some(&n @ ('*' | '?' | '\\')) => {
                        toks.push(Tok::Lit(n));
                        i += 1;
                    }
                    Some(n) => {
                        return Err(format!(
                            "invalid pattern ({pat}) in substitution: invalid escape '\\{n}'"
                        ))
                    }
                    None => {
                        return Err(format!(
                            "invalid pattern ({pat}) in substitution: trailing escape"
                        ))
                    }
                },
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern(toks))
    }

    /// The lengths of the prefixes of `s` that the whole pattern matches: (shortest, longest).
    /// One NFA pass over `s`, stopping when no state is left: O(len(s) × len(pattern)).
    fn prefix_matches(toks: &[Tok], s: &[char]) -> (Option<usize>, Option<usize>) {
        let n = toks.len();
        let close = |states: &mut Vec<bool>| {
            for i in 0..n {
                if states.get(i) == Some(&true) && toks.get(i) == Some(&Tok::Star) {
                    if let Some(next) = states.get_mut(i + 1) {
                        *next = true;
                    }
                }
            }
        };
        let mut states = vec![false; n + 1];
        if let Some(first) = states.first_mut() {
            *first = true;
        }
        close(&mut states);
        let (mut shortest, mut longest) = (None, None);
        let mut len = 0;
        loop {
            if states.get(n) == Some(&true) {
                shortest = shortest.or(Some(len));
                longest = Some(len);
            }
            let Some(&c) = s.get(len) else { break };
            let mut next = vec![false; n + 1];
            for (i, tok) in toks.iter().enumerate() {
                if states.get(i) != Some(&true) {
                    continue;
                }
                let target = match tok {
                    Tok::Lit(l) if *l == c => i + 1,
                    Tok::Any if c != '\n' => i + 1,
                    Tok::Star if c != '\n' => i,
                    _ => continue,
                };
                if let Some(t) = next.get_mut(target) {
                    *t = true;
                }
            }
            close(&mut next);
            if !next.iter().any(|&b| b) {
                break;
            }
            states = next;
            len += 1;
        }
        (shortest, longest)
    }

    fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let (shortest, longest) = Self::prefix_matches(&self.0, &v);
        match if greedy { longest } else { shortest } {
            Some(end) => v.get(end..).unwrap_or_default().iter().collect(),
            None => value.to_string(),
        }
    }

    /// Suffixes are prefixes of the reversed value under the reversed pattern.
    fn trim_suffix(&self, value: &str, greedy: bool) -> String {
        let mut v: Vec<char> = value.chars().collect();
        v.reverse();
        let mut toks = self.0.clone();
        toks.reverse();
        let (shortest, longest) = Self::prefix_matches(&toks, &v);
        match if greedy { longest } else { shortest } {
            Some(len) => {
                let keep = v.len().saturating_sub(len);
                v.reverse();
                v.get(..keep).unwrap_or_default().iter().collect()
            }
            None => value.to_string(),
        }
    }

    /// Leftmost, longest match at or after `from`: (start, end).
    fn find(&self, v: &[char], from: usize) -> Option<(usize, usize)> {
        (from..=v.len()).find_map(|start| {
            let rest = v.get(start..).unwrap_or_default();
            Self::prefix_matches(&self.0, rest)
                .1
                .map(|len| (start, start + len))
        })
    }

    fn replace(&self, value: &str, repl: &str, all: bool) -> String {
        let v: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut pos = 0;
        while let Some((start, end)) = self.find(&v, pos) {
            out.extend(v.get(pos..start).unwrap_or_default());
            out.push_str(repl);
            if end == start {
                // An empty match: keep the next character and move past it.
                if let Some(&c) = v.get(end) {
                    out.push(c);
                }
                pos = end + 1;
            } else {
                pos = end;
            }
            if !all || pos > v.len() {
                break;
            }
        }
        out.extend(v.get(pos.min(v.len())..).unwrap_or_default());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env() -> HashMap<String, String> {
        [
            ("A", "a"),
            ("B", "x y"),
            ("EMPTY", ""),
            ("P", "/usr/local/bin/tool.tar.gz"),
            ("Ü", "umlaut"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn ex(word: &str) -> String {
        let e = env();
        expand(word, &|k| e.get(k).cloned(), '\\').unwrap_or_else(|e| panic!("{word}: {e}"))
    }

    fn ex_err(word: &str) -> String {
        let e = env();
        expand(word, &|k| e.get(k).cloned(), '\\')
            .expect_err(word)
            .message
    }

    fn words(text: &str) -> Vec<String> {
        let e = env();
        expand_words(text, &|k| e.get(k).cloned(), '\\').unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn plain_variables() {
        assert_eq!(ex("$A"), "a");
        assert_eq!(ex("${A}"), "a");
        assert_eq!(ex("x$A.y"), "xa.y");
        assert_eq!(ex("$Ab"), "");
        assert_eq!(ex("${A}b"), "ab");
        assert_eq!(ex("$UNSET"), "");
        assert_eq!(ex("$Ü"), "umlaut");
        assert_eq!(ex("$B"), "x y");
        assert_eq!(ex("$1x"), "x");
        assert_eq!(ex("$$"), "");
    }

    #[test]
    fn dollar_before_non_name_is_literal() {
        assert_eq!(ex("$"), "$");
        assert_eq!(ex("a$"), "a$");
        assert_eq!(ex("$/x"), "$/x");
        assert_eq!(ex("$ x"), "$ x");
        assert_eq!(ex("$."), "$.");
    }

    #[test]
    fn modifiers() {
        assert_eq!(ex("${A:-d}"), "a");
        assert_eq!(ex("${UNSET:-d}"), "d");
        assert_eq!(ex("${EMPTY:-d}"), "d");
        assert_eq!(ex("${EMPTY-d}"), "");
        assert_eq!(ex("${UNSET-d}"), "d");
        assert_eq!(ex("${A:+w}"), "w");
        assert_eq!(ex("${EMPTY:+w}"), "");
        assert_eq!(ex("${EMPTY+w}"), "w");
        assert_eq!(ex("${UNSET+w}"), "");
        assert_eq!(ex("${UNSET:-$A}"), "a");
        assert_eq!(ex("${UNSET:-${UNSET2:-${A}x}}"), "ax");
        assert_eq!(ex("${UNSET:-\"a b\"}"), "a b");
        assert_eq!(ex("${UNSET:-a\\}b}"), "a}b");
        assert_eq!(ex("${A?}"), "a");
        assert_eq!(
            ex_err("${UNSET?}"),
            "failed to process \"${UNSET?}\": UNSET: is not allowed to be unset"
        );
        assert_eq!(
            ex_err("${EMPTY:?must set}"),
            "failed to process \"${EMPTY:?must set}\": EMPTY: must set"
        );
    }

    #[test]
    fn pattern_modifiers() {
        assert_eq!(ex("${P#*/}"), "usr/local/bin/tool.tar.gz");
        assert_eq!(ex("${P##*/}"), "tool.tar.gz");
        assert_eq!(ex("${P%.*}"), "/usr/local/bin/tool.tar");
        assert_eq!(ex("${P%%.*}"), "/usr/local/bin/tool");
        assert_eq!(ex("${P%nomatch}"), "/usr/local/bin/tool.tar.gz");
        assert_eq!(ex("${P/local/opt}"), "/usr/opt/bin/tool.tar.gz");
        assert_eq!(ex("${P//\\//-}"), "-usr-local-bin-tool.tar.gz");
        assert_eq!(ex("${A/?/b}"), "b");
        assert_eq!(ex("${P#\\*}"), "/usr/local/bin/tool.tar.gz");
        assert_eq!(ex("${P%/*}"), "/usr/local/bin");
        assert_eq!(ex("${P%%/*}"), "");
        assert_eq!(ex("${P#/*/}"), "local/bin/tool.tar.gz");
        assert_eq!(ex("${P%t*.gz}"), "/usr/local/bin/tool.");
        assert_eq!(ex("${P%%t*.gz}"), "/usr/local/bin/");
    }

    #[test]
    fn long_values_stay_fast() {
        let long = "ab".repeat(20_000);
        let f = |w: &str| expand(w, &|_| Some(long.clone()), '\\').unwrap();
        let start = std::time::Instant::now();
        assert_eq!(f("${X//a/}").len(), 20_000);
        assert_eq!(f("${X%%a*}"), "");
        assert_eq!(f("${X#*b*b}").len(), 39_996);
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(ex("'$A'"), "$A");
        assert_eq!(ex("\"$A\""), "a");
        assert_eq!(ex("\"a\\\"b\""), "a\"b");
        assert_eq!(ex("\"\\$A\""), "$A");
        assert_eq!(ex("\"\\n\""), "\\n");
        assert_eq!(ex("\"\\\\\""), "\\");
        assert_eq!(ex("\\$A"), "$A");
        assert_eq!(ex("a\\ b"), "a b");
        assert_eq!(ex("a\\"), "a");
        assert_eq!(ex("'it''s'"), "its");
        assert_eq!(ex("\"it's\""), "it's");
        assert_eq!(ex("é$A€"), "éa€");
    }

    #[test]
    fn backtick_escape() {
        let e = env();
        let f = |w: &str| expand(w, &|k| e.get(k).cloned(), '`').unwrap();
        assert_eq!(f("`$A"), "$A");
        assert_eq!(f("C:\\dir\\$A"), "C:\\dir\\a");
        assert_eq!(f("\"`\"x\""), "\"x");
    }

    #[test]
    fn errors() {
        assert_eq!(
            ex_err("${A"),
            "failed to process \"${A\": syntax error: missing '}'"
        );
        assert_eq!(
            ex_err("${"),
            "failed to process \"${\": syntax error: missing '}'"
        );
        assert!(ex_err("${}").ends_with("bad substitution"));
        assert!(ex_err("${:a}").ends_with("bad substitution"));
        assert!(ex_err("${A:-x").ends_with("missing '}'"));
        assert!(ex_err("${A:x}").ends_with("unsupported modifier (:x) in substitution"));
        assert!(ex_err("${A^x}").ends_with("unsupported modifier (^) in substitution"));
        assert!(ex_err("'abc").ends_with("matching single-quote"));
        assert!(ex_err("\"abc").ends_with("matching double-quote"));
        assert!(ex_err("${A/x}").ends_with("missing '/' in ${}"));
        let deep = "${A:-".repeat(1000) + &"}".repeat(1000);
        assert!(ex_err(&deep).contains("nested too deeply"));
    }

    #[test]
    fn words_split_after_expansion() {
        assert_eq!(words("a b  c"), ["a", "b", "c"]);
        assert_eq!(words("  a\tb "), ["a", "b"]);
        assert_eq!(words("\"a b\" c"), ["a b", "c"]);
        assert_eq!(words("'a b'c d"), ["a bc", "d"]);
        assert_eq!(words("a\\ b c"), ["a b", "c"]);
        assert_eq!(words("$B z"), ["x", "y", "z"]);
        assert_eq!(words("\"$B\" z"), ["x y", "z"]);
        assert_eq!(words("80/tcp ${A}43"), ["80/tcp", "a43"]);
        assert_eq!(words("\"\" a"), ["a"]);
        assert_eq!(words(""), Vec::<String>::new());
    }
}
