//! Go's `filepath.Match` for one path component (what COPY and ADD sources use, applied
//! component by component): `*`, `?`, `[...]` classes with `^` and ranges, `\` escapes.

/// Whether a source word has glob characters (and so must be matched against directory entries).
pub(crate) fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// An unclosed `[` or a trailing `\`, as Go's `ErrBadPattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadPattern;

/// Matches `name` (one component, no `/`) against `pattern`.
pub(crate) fn matches(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    match_from(&p, &n)
}

fn match_from(p: &[char], n: &[char]) -> Result<bool, BadPattern> {
    let (mut pi, mut ni) = (0usize, 0usize);
    // Backtracking point for the last `*`: (pattern index after it, name index it resumes at).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    let (matched, next) = class(p, pi, n.get(ni).copied())?;
                    if matched {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                }
                '\\' => {
                    let c = *p.get(pi + 1).ok_or(BadPattern)?;
                    if n.get(ni) == Some(&c) {
                        pi += 2;
                        ni += 1;
                        continue;
                    }
                }
                c if c != '?' && n.get(ni) == Some(&c) => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return Ok(true);
        }
        // Mismatch: let the last `*` swallow one more character (never a `/`).
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => {
                // Go reports a bad pattern even when the name already failed to match.
                validate(p)?;
                return Ok(false);
            }
        }
    }
}

/// Matches a `[...]` class at `p[start]` against `c`; returns (matched, index after the class).
fn class(p: &[char], start: usize, c: Option<char>) -> Result<(bool, usize), BadPattern> {
    let mut i = start + 1;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i).ok_or(BadPattern)?;
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let (lo, next) = class_char(p, i)?;
        i = next;
        let hi = if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|&x| x != ']') {
            let (hi, next) = class_char(p, i + 1)?;
            i = next;
            hi
        } else {
            lo
        };
        if let Some(c) = c {
            if lo <= c && c <= hi {
                matched = true;
            }
        }
    }
    match c {
        Some(c) if c != '/' => Ok((matched != negated, i)),
        _ => Ok((false, i)),
    }
}

fn class_char(p: &[char], i: usize) -> Result<(char, usize), BadPattern> {
    match p.get(i) {
        Some('\\') => p.get(i + 1).map(|&c| (c, i + 2)).ok_or(BadPattern),
        Some('-') | Some(']') if i > 0 && p[i - 1] != '[' && p[i - 1] != '^' => Err(BadPattern),
        Some(&c) => Ok((c, i + 1)),
        None => Err(BadPattern),
    }
}

/// Checks the whole pattern's syntax.
fn validate(p: &[char]) -> Result<(), BadPattern> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(BadPattern);
                }
                i += 2;
            }
            '[' => {
                let (_, next) = class(p, i, None)?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_cases() {
        let ok = |p: &str, n: &str| matches(p, n).unwrap();
        assert!(ok("*", "abc"));
        assert!(ok("*", ".hidden"));
        assert!(ok("a*", "abc"));
        assert!(!ok("a*", "bac"));
        assert!(ok("a*c", "abbbc"));
        assert!(ok("*.txt", "notes.txt"));
        assert!(!ok("*.txt", "notes.txt.bak"));
        assert!(ok("?b", "ab"));
        assert!(!ok("?", ""));
        assert!(ok("[a-c]x", "bx"));
        assert!(!ok("[^a-c]x", "bx"));
        assert!(ok("[^a-c]x", "dx"));
        assert!(ok("a\\*", "a*"));
        assert!(!ok("a\\*", "ab"));
        assert!(ok("", ""));
        assert!(ok("*x*y", "axbxy"));
        assert!(matches("[", "a").is_err());
        assert!(matches("a\\", "a").is_err());
        assert!(matches("[a-", "a").is_err());
    }
}
