//! Content digests (`algorithm:hex`), as OCI descriptors and Docker image ids carry them.
//!
//! A `Digest` names a blob in the content store and a directory under `layers/`, so a value that
//! got past `Digest::parse` must be safe to use as a single path component: only lowercase hex of
//! the exact length of its algorithm. This module does no hashing and no I/O.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest is empty")]
    Empty,
    #[error("digest {0:?} has no algorithm: expected the form sha256:<64 hex digits>")]
    NoAlgorithm(String),
    #[error("digest {0:?} uses an unsupported algorithm: use sha256, sha384 or sha512")]
    UnsupportedAlgorithm(String),
    #[error("digest {value:?} must have {expected} lowercase hex digits after {algorithm}:")]
    BadHex {
        value: String,
        algorithm: &'static str,
        expected: usize,
    },
}

/// The hash algorithms a digest may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    /// The name used before the `:` of a digest.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The number of hex digits of a digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }

    fn from_name(s: &str) -> Option<Self> {
        match s {
            "sha256" => Some(Algorithm::Sha256),
            "sha384" => Some(Algorithm::Sha384),
            "sha512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated digest such as `sha256:e3b0c442…`: a known algorithm and exactly its number of
/// lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "String")]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `algorithm:hex`, checking the algorithm is known and the hex has its exact length.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        if s.is_empty() {
            return Err(DigestError::Empty);
        }
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(DigestError::NoAlgorithm(truncate(s)));
        };
        let algorithm = Algorithm::from_name(alg)
            .ok_or_else(|| DigestError::UnsupportedAlgorithm(truncate(s)))?;
        Self::from_hex(algorithm, hex).map_err(|e| match e {
            DigestError::BadHex {
                algorithm,
                expected,
                ..
            } => DigestError::BadHex {
                value: truncate(s),
                algorithm,
                expected,
            },
            other => other,
        })
    }

    /// Builds a digest from an algorithm and its hex digits (lowercase, exact length).
    pub fn from_hex(algorithm: Algorithm, hex: &str) -> Result<Self, DigestError> {
        let ok = hex.len() == algorithm.hex_len()
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(DigestError::BadHex {
                value: truncate(hex),
                algorithm: algorithm.as_str(),
                expected: algorithm.hex_len(),
            });
        }
        Ok(Self {
            algorithm,
            hex: hex.to_string(),
        })
    }

    /// A sha256 digest from 32 raw bytes of hash output.
    pub fn sha256_from_bytes(bytes: &[u8; 32]) -> Self {
        let mut hex = String::with_capacity(64);
        for b in bytes {
            hex.push(char::from(HEX[usize::from(b >> 4)]));
            hex.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        Self {
            algorithm: Algorithm::Sha256,
            hex,
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex digits, without the algorithm: safe to use as one path component.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, as Docker prints short image ids.
    pub fn short(&self) -> &str {
        self.hex.get(..12).unwrap_or(&self.hex)
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn truncate(s: &str) -> String {
    if s.len() <= 160 {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(160).collect();
        t.push('…');
        t
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_string()
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_sha256() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.short(), "e3b0c44298fc");
        let json = serde_json_like(&d);
        assert_eq!(json, EMPTY);
    }

    fn serde_json_like(d: &Digest) -> String {
        String::from(d.clone())
    }

    #[test]
    fn parses_sha512() {
        let s = format!("sha512:{}", "a".repeat(128));
        assert_eq!(Digest::parse(&s).unwrap().algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn rejects_bad_digests() {
        let upper = EMPTY.to_uppercase().replace("SHA256", "sha256");
        let cases = [
            "",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256:abc",
            "sha256:",
            ":abc",
            upper.as_str(),
            "sha256:../../../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85g",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ];
        for c in cases {
            assert!(Digest::parse(c).is_err(), "{c:?} was accepted");
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let e = Digest::parse("sha256:abc").unwrap_err().to_string();
        assert!(e.contains("64 lowercase hex digits"), "{e}");
        assert!(e.contains("sha256:abc"), "{e}");
        let e = Digest::parse("md5:00").unwrap_err().to_string();
        assert!(e.contains("unsupported algorithm"), "{e}");
    }

    #[test]
    fn from_bytes_matches_parse() {
        let d = Digest::sha256_from_bytes(&[0xab; 32]);
        assert_eq!(
            d,
            Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap()
        );
    }
}
