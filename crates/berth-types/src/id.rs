//! Container identifiers as the OCI runtime contract and Docker accept them.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid container id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("container id is empty")]
    Empty,
    #[error("container id {0:?} is longer than 1024 bytes")]
    TooLong(String),
    #[error("container id {0:?} may only contain letters, digits, '_', '+', '-' and '.', and may not be '.' or '..'")]
    BadChar(String),
}

/// A container id: `[A-Za-z0-9_+.-]+`, at most 1024 bytes, never `.` or `..`.
///
/// The id names a directory under the runtime's state root, so the check is what keeps an id from
/// naming a path outside it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct ContainerId(String);

impl ContainerId {
    /// Validates `s` as a container id.
    pub fn new(s: &str) -> Result<Self, IdError> {
        if s.is_empty() {
            return Err(IdError::Empty);
        }
        if s.len() > 1024 {
            return Err(IdError::TooLong(s.chars().take(64).collect()));
        }
        let ok = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
        if !ok || s == "." || s == ".." {
            return Err(IdError::BadChar(s.to_string()));
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ContainerId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ContainerId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_runc_style_ids() {
        for id in ["abc", "a.b-c_d+e", "0123456789abcdef", "k8s_POD_x-1.2"] {
            assert_eq!(ContainerId::new(id).unwrap().as_str(), id);
        }
    }

    #[test]
    fn rejects_paths_and_empties() {
        assert_eq!(ContainerId::new(""), Err(IdError::Empty));
        for id in [".", "..", "../x", "a/b", "a b", "a\0b", "é"] {
            assert!(
                matches!(ContainerId::new(id), Err(IdError::BadChar(_))),
                "{id}"
            );
        }
        assert!(matches!(
            ContainerId::new(&"a".repeat(1025)),
            Err(IdError::TooLong(_))
        ));
    }
}
