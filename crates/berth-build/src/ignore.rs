//! `.dockerignore`: Go `filepath.Match` patterns plus `**`, `!` exceptions, last match wins
//! (moby's patternmatcher semantics). Pure; never panics on any input.

/// A bad pattern (e.g. an unclosed `[`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid .dockerignore pattern {pattern:?}: {message}")]
pub struct IgnoreError {
    pub pattern: String,
    pub message: String,
}

/// Compiled `.dockerignore` patterns.
#[derive(Debug, Clone, Default)]
pub struct Matcher {}

impl Matcher {
    /// Compiles the lines of a `.dockerignore` (comments and blank lines skipped, paths cleaned,
    /// leading `/` dropped).
    pub fn new(lines: &[String]) -> Result<Matcher, IgnoreError> {
        let _ = lines;
        Ok(Matcher {})
    }

    /// Parses a `.dockerignore` file's text.
    pub fn from_text(text: &str) -> Result<Matcher, IgnoreError> {
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        Matcher::new(&lines)
    }

    /// Whether `path` (relative to the context, `/`-separated, no leading `./`) is excluded.
    /// A path inside an excluded directory is excluded unless an exception re-includes it.
    pub fn excluded(&self, path: &str) -> bool {
        let _ = path;
        false
    }

    /// Whether a directory may hold re-included paths (an `!` pattern could match below it), so
    /// a walker must descend into it even though it is excluded.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let _ = dir;
        false
    }
}
