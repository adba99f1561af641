//! Detach keys (`--detach-keys`, the `detachKeys` attach parameter, an exec's `DetachKeys`):
//! Docker's spelling (`ctrl-p,ctrl-q`, `ctrl-@`, single characters) and the matcher that watches
//! a TTY's input for the sequence. Shared by the CLI (which stops sending at the sequence) and
//! berthd (which ends the attach), so both read the same spelling the same way.

/// Docker's default: ctrl-p then ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[0x10, 0x11];

/// A detach-keys value that is not Docker's spelling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid detach keys ({spec}): unknown character {key:?}; use e.g. \"ctrl-p,ctrl-q\" or \"a,ctrl-@\"")]
pub struct DetachKeysError {
    pub spec: String,
    pub key: String,
}

/// Parses Docker's detach-keys spelling: comma-separated keys, each one ASCII character or
/// `ctrl-X` with X in `a`–`z`, `@`, `[`, `\`, `]`, `^`, `_`. An empty spec is the default.
pub fn parse_detach_keys(spec: &str) -> Result<Vec<u8>, DetachKeysError> {
    if spec.is_empty() {
        return Ok(DEFAULT_DETACH_KEYS.to_vec());
    }
    let bad = |key: &str| DetachKeysError {
        spec: spec.to_string(),
        key: key.to_string(),
    };
    let mut out = Vec::new();
    for key in spec.split(',') {
        let lower = key.to_ascii_lowercase();
        if let Some(rest) = lower.strip_prefix("ctrl-") {
            let b = match rest.as_bytes() {
                [c @ b'a'..=b'z'] => c - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(bad(key)),
            };
            out.push(b);
        } else {
            match key.as_bytes() {
                [c] if c.is_ascii() => out.push(*c),
                _ => return Err(bad(key)),
            }
        }
    }
    Ok(out)
}

/// Watches input for the detach sequence. Bytes that could start the sequence are held back
/// until it is clear whether they do (then they are swallowed) or not (then they go on).
#[derive(Debug, Clone)]
pub struct DetachMatcher {
    keys: Vec<u8>,
    held: usize,
}

impl DetachMatcher {
    pub fn new(keys: Vec<u8>) -> Self {
        Self { keys, held: 0 }
    }

    /// Feeds input; what should reach the container is appended to `out`. Returns true when the
    /// sequence was completed (the rest of `input` is dropped: the client detaches).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return false;
        }
        for &b in input {
            if self.keys.get(self.held) == Some(&b) {
                self.held += 1;
            } else {
                out.extend_from_slice(&self.keys[..self.held]);
                self.held = 0;
                if self.keys.first() == Some(&b) {
                    self.held = 1;
                } else {
                    out.push(b);
                }
            }
            if self.held == self.keys.len() {
                self.held = 0;
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_spellings() {
        assert_eq!(parse_detach_keys("").unwrap(), vec![0x10, 0x11]);
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            vec![0x10, 0x11]
        );
        assert_eq!(
            parse_detach_keys("ctrl-@,a,ctrl-[").unwrap(),
            vec![0, b'a', 27]
        );
        assert_eq!(parse_detach_keys("CTRL-A").unwrap(), vec![1]);
        assert!(parse_detach_keys("ctrl-1").is_err());
        assert!(parse_detach_keys("ab").is_err());
        assert!(parse_detach_keys("a,,b").is_err());
        assert!(parse_detach_keys("é").is_err());
    }

    #[test]
    fn detects_the_sequence_split_anywhere() {
        let input = b"ls\x10x\x10\x10\x11rest";
        for cut in 0..=input.len() {
            let mut m = DetachMatcher::new(vec![0x10, 0x11]);
            let mut out = Vec::new();
            let first = m.feed(&input[..cut], &mut out);
            let done = first || m.feed(&input[cut..], &mut out);
            assert!(done, "cut at {cut}");
            // The lone ctrl-p before `x` and the first of the two ctrl-p go on; the pair is eaten.
            assert_eq!(out, b"ls\x10x\x10", "cut at {cut}");
        }
    }

    #[test]
    fn partial_match_is_released_when_it_breaks() {
        let mut m = DetachMatcher::new(vec![0x10, 0x11]);
        let mut out = Vec::new();
        assert!(!m.feed(b"\x10", &mut out));
        assert!(out.is_empty());
        assert!(!m.feed(b"y", &mut out));
        assert_eq!(out, b"\x10y");
    }

    #[test]
    fn one_key_sequence() {
        let mut m = DetachMatcher::new(vec![b'q']);
        let mut out = Vec::new();
        assert!(m.feed(b"abq", &mut out));
        assert_eq!(out, b"ab");
    }
}
