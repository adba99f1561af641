//! Docker's word expansion for Dockerfile arguments: `$VAR`, `${VAR}`, `${VAR:-word}`,
//! `${VAR:+word}`, `${VAR-word}`, `${VAR+word}`, single and double quotes, the escape character.
//! Pure; never panics on any input.

/// A word that cannot be expanded (an unterminated `${`, a bad modifier, an unclosed quote).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ShellError {
    pub message: String,
}

/// Expands one word (quotes removed, variables substituted) as Docker's `ProcessWord` does.
/// `lookup` answers a variable's value (`None` = unset).
pub fn expand(
    word: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<String, ShellError> {
    let _ = (word, lookup, escape);
    Err(ShellError {
        message: "word expansion is not written yet".to_string(),
    })
}

/// Expands a text and splits it into words on unquoted whitespace (Docker's `ProcessWords`),
/// for instructions whose arguments are a list (`EXPOSE`, `VOLUME`, `COPY` sources, …).
pub fn expand_words(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<String>, ShellError> {
    let _ = (text, lookup, escape);
    Err(ShellError {
        message: "word expansion is not written yet".to_string(),
    })
}
