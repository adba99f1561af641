//! Image references (`busybox`, `user/repo:tag`, `localhost:5000/x@sha256:…`) parsed and
//! normalised exactly as Docker does (the grammar and `ParseNormalizedNamed` of
//! distribution/reference), so that a name typed for Docker means the same image here.
//!
//! The parser is hand-written rather than a regex so that every rejection says which part is wrong.
//! It must never accept what Docker rejects: a reference names rows in the image index and
//! registry URLs, and a lenient parser would make two spellings of one image, or a path in a URL.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry of names without a domain.
pub const DEFAULT_DOMAIN: &str = "docker.io";
/// The namespace of one-component names on Docker Hub.
pub const OFFICIAL_REPO_PREFIX: &str = "library/";
/// The tag of a reference that names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// Docker's limit on the length of a full name (domain + path).
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";

/// Why a string is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format: repository name must have at least one component")]
    Empty,
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier(String),
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error(
        "invalid reference format: repository name {0:?} must not be more than 255 characters"
    )]
    NameTooLong(String),
    #[error("invalid reference format: {input:?}: {problem}")]
    Invalid { input: String, problem: String },
    #[error("invalid reference format: {input:?}: tag {tag:?} must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}")]
    BadTag { input: String, tag: String },
    #[error("invalid reference format: {input:?}: {source}")]
    BadDigest { input: String, source: DigestError },
}

/// A fully qualified image reference: `domain/path[:tag][@digest]`.
///
/// `domain` is always present after normalisation (`docker.io` by default) and one-component
/// Docker Hub names get `library/`. Both a tag and a digest may be present, as Docker allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises a reference as `docker pull`/`docker tag` do
    /// (`ParseNormalizedNamed`): no tag is added; see [`Reference::with_default_tag`].
    pub fn parse_normalized(s: &str) -> Result<Self, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::HexIdentifier(s.to_string()));
        }
        let (domain, remainder) = split_docker_domain(s);
        // Docker checks the case of the repository part first, for the friendlier message.
        let remote = remainder.split(':').next().unwrap_or(&remainder);
        let remote = remote.split('@').next().unwrap_or(remote);
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::Uppercase(remote.to_string()));
        }
        Self::parse_full(s, &domain, &remainder)
    }

    /// Parses a reference that must already be fully qualified (`Parse` of distribution/reference,
    /// with the domain taken as the first component only if it looks like one).
    fn parse_full(input: &str, domain: &str, remainder: &str) -> Result<Self, ReferenceError> {
        let invalid = |problem: String| ReferenceError::Invalid {
            input: input.to_string(),
            problem,
        };
        // A digest follows the first '@'; names and tags never contain '@'.
        let (name_tag, digest) = match remainder.split_once('@') {
            Some((nt, d)) => {
                let digest =
                    parse_reference_digest(d).map_err(|source| ReferenceError::BadDigest {
                        input: input.to_string(),
                        source,
                    })?;
                (nt, Some(digest))
            }
            None => (remainder, None),
        };
        // The remainder holds no domain any more, so a ':' can only start a tag.
        let (path, tag) = match name_tag.split_once(':') {
            Some((p, t)) => (p, Some(t)),
            None => (name_tag, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return Err(ReferenceError::BadTag {
                    input: input.to_string(),
                    tag: t.to_string(),
                });
            }
        }
        check_domain(domain).map_err(invalid)?;
        check_path(path).map_err(|p| match p {
            PathProblem::Uppercase => ReferenceError::Uppercase(path.to_string()),
            PathProblem::Other(p) => invalid(p),
        })?;
        let full_len = domain.len() + 1 + path.len();
        if full_len > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong(truncate(&format!(
                "{domain}/{path}"
            ))));
        }
        Ok(Self {
            domain: domain.to_string(),
            path: path.to_string(),
            tag: tag.map(str::to_string),
            digest,
        })
    }

    /// Adds `:latest` when the reference has neither a tag nor a digest (`TagNameOnly`).
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_string());
        }
        self
    }

    /// The reference Docker resolves and pulls (`ParseDockerRef`): a digest wins over a tag, and a
    /// bare name gets `:latest`.
    pub fn docker_ref(&self) -> Self {
        let mut r = self.clone().with_default_tag();
        if r.digest.is_some() {
            r.tag = None;
        }
        r
    }

    /// The registry host (and port), e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The full repository name without tag or digest: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The repository name as Docker prints it: `busybox`, `user/repo`, `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                // `library/a/b` stays as is: `a/b` would mean `docker.io/a/b`.
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The whole reference as Docker prints it: `busybox:latest`, `localhost:5000/x@sha256:…`.
    pub fn familiar_string(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// The same name with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::BadTag {
                input: self.name(),
                tag: tag.to_string(),
            });
        }
        Ok(Self {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// The same name with a digest and no tag.
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest),
        }
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
    }
}

/// `splitDockerDomain` of distribution/reference.
fn split_docker_domain(name: &str) -> (String, String) {
    let (domain, remote) = match name.split_once('/') {
        None => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        Some((maybe_domain, rest)) => {
            if maybe_domain == "localhost" {
                (maybe_domain.to_string(), rest.to_string())
            } else if maybe_domain == LEGACY_DEFAULT_DOMAIN {
                (DEFAULT_DOMAIN.to_string(), rest.to_string())
            } else if maybe_domain.contains(['.', ':']) {
                (maybe_domain.to_string(), rest.to_string())
            } else if maybe_domain.to_lowercase() != maybe_domain {
                // An uppercase namespace is invalid, so this must be a domain.
                (maybe_domain.to_string(), rest.to_string())
            } else {
                (DEFAULT_DOMAIN.to_string(), name.to_string())
            }
        }
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        (domain, format!("{OFFICIAL_REPO_PREFIX}{remote}"))
    } else {
        (domain, remote)
    }
}

fn parse_reference_digest(d: &str) -> Result<Digest, DigestError> {
    Digest::parse(d)
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    match b.split_first() {
        Some((first, rest)) => {
            word(*first)
                && rest.len() <= 127
                && rest.iter().all(|&c| word(c) || c == b'.' || c == b'-')
        }
        None => false,
    }
}

/// `host[:port]`, host being dot-separated `[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?` labels or a
/// bracketed IPv6 address.
fn check_domain(domain: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return Err(format!("registry {domain:?} has an unclosed '['"));
        };
        if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(format!("registry {domain:?} is not a valid IPv6 address"));
        }
        match after {
            "" => (None, None),
            p => match p.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return Err(format!("registry {domain:?} has junk after ']'")),
            },
        }
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        if host.is_empty() {
            return Err(format!("registry {domain:?} has an empty host name"));
        }
        for label in host.split('.') {
            let b = label.as_bytes();
            let ok = match (b.first(), b.last()) {
                (Some(f), Some(l)) => {
                    f.is_ascii_alphanumeric()
                        && l.is_ascii_alphanumeric()
                        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                }
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "registry host {host:?} has an invalid component {label:?}: use letters, digits and inner '-'"
                ));
            }
        }
    }
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("registry {domain:?} has an invalid port {port:?}"));
        }
    }
    Ok(())
}

enum PathProblem {
    Uppercase,
    Other(String),
}

/// `/`-separated components, each `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_path(path: &str) -> Result<(), PathProblem> {
    if path.is_empty() {
        return Err(PathProblem::Other("repository name is empty".into()));
    }
    for comp in path.split('/') {
        if comp.is_empty() {
            return Err(PathProblem::Other(format!(
                "repository name {path:?} has an empty component"
            )));
        }
        if comp.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(PathProblem::Uppercase);
        }
        if !valid_path_component(comp) {
            return Err(PathProblem::Other(format!(
                "repository name component {comp:?} must be lowercase letters and digits, separated by one '.', one or two '_', or '-'s"
            )));
        }
    }
    Ok(())
}

fn valid_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < b.len() {
        if expect_alnum {
            let start = i;
            while i < b.len() && alnum(b[i]) {
                i += 1;
            }
            if i == start {
                return false;
            }
            expect_alnum = false;
        } else {
            let start = i;
            match b[i] {
                b'.' => i += 1,
                b'_' => {
                    i += 1;
                    if i < b.len() && b[i] == b'_' {
                        i += 1;
                    }
                }
                b'-' => {
                    while i < b.len() && b[i] == b'-' {
                        i += 1;
                    }
                }
                _ => return false,
            }
            debug_assert!(i > start);
            expect_alnum = true;
        }
    }
    // A separator must be followed by more alphanumerics.
    !expect_alnum
}

fn truncate(s: &str) -> String {
    if s.len() <= 300 {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(300).collect();
        t.push('…');
        t
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_normalized(s)
    }
}

impl serde::Serialize for Reference {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse_normalized(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        Reference::parse_normalized(s)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .to_string()
    }

    fn pulled(s: &str) -> String {
        Reference::parse_normalized(s)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .docker_ref()
            .to_string()
    }

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox"),
            ("docker.io/busybox", "docker.io/library/busybox"),
            ("index.docker.io/busybox", "docker.io/library/busybox"),
            ("index.docker.io/user/repo", "docker.io/user/repo"),
            ("user/repo", "docker.io/user/repo"),
            ("user/repo/sub", "docker.io/user/repo/sub"),
            ("localhost/x", "localhost/x"),
            ("localhost:5000/x:tag", "localhost:5000/x:tag"),
            ("localhost:5000", "docker.io/library/localhost:5000"),
            ("127.0.0.1:5000/a/b:v1", "127.0.0.1:5000/a/b:v1"),
            ("[::1]:5000/x", "[::1]:5000/x"),
            ("[2001:db8::1]/x:t", "[2001:db8::1]/x:t"),
            ("Host.Example.com/a/b", "Host.Example.com/a/b"),
            ("UPPERHOST/a", "UPPERHOST/a"),
            ("quay.io/coreos/etcd:v3.5.0", "quay.io/coreos/etcd:v3.5.0"),
            ("a-b--c/d.e_f__g:T_.-x", "docker.io/a-b--c/d.e_f__g:T_.-x"),
            ("foo_bar", "docker.io/library/foo_bar"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), want, "{input}");
        }
    }

    #[test]
    fn digests_and_tags() {
        let r = Reference::parse_normalized(&format!("host.example.com/a/b@{D}")).unwrap();
        assert_eq!(r.domain(), "host.example.com");
        assert_eq!(r.path(), "a/b");
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), D);
        assert_eq!(r.to_string(), format!("host.example.com/a/b@{D}"));

        let r = Reference::parse_normalized(&format!("busybox:1.36@{D}")).unwrap();
        assert_eq!(r.tag(), Some("1.36"));
        assert!(r.digest().is_some());
        assert_eq!(r.to_string(), format!("docker.io/library/busybox:1.36@{D}"));
        // Docker pulls by the digest and forgets the tag.
        assert_eq!(
            pulled(&format!("busybox:1.36@{D}")),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(pulled("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(pulled("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(
            pulled(&format!("localhost:5000/x@{D}")),
            format!("localhost:5000/x@{D}")
        );
    }

    #[test]
    fn familiar_forms() {
        let f = |s: &str| {
            Reference::parse_normalized(s)
                .unwrap()
                .with_default_tag()
                .familiar_string()
        };
        assert_eq!(f("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(f("docker.io/user/repo:1"), "user/repo:1");
        assert_eq!(f("library/a/b"), "library/a/b:latest");
        assert_eq!(f("localhost:5000/x:y"), "localhost:5000/x:y");
        let r = Reference::parse_normalized("busybox").unwrap();
        assert_eq!(r.familiar_name(), "busybox");
        assert_eq!(r.name(), "docker.io/library/busybox");
    }

    #[test]
    fn retagging() {
        let r = Reference::parse_normalized(&format!("busybox:1@{D}")).unwrap();
        assert_eq!(
            r.with_tag("2").unwrap().to_string(),
            "docker.io/library/busybox:2"
        );
        assert!(r.with_tag("-bad").is_err());
        let d = Digest::parse(D).unwrap();
        assert_eq!(
            r.with_digest(d).to_string(),
            format!("docker.io/library/busybox@{D}")
        );
    }

    #[test]
    fn rejects_what_docker_rejects() {
        let long_tag = format!("busybox:{}", "a".repeat(129));
        let long_name = format!("{}/x", "a".repeat(250));
        let cases: Vec<String> = vec![
            "".into(),
            "Busybox".into(),
            "user/Repo".into(),
            "localhost:5000/Repo".into(),
            "busybox:".into(),
            "busybox:-tag".into(),
            "busybox:.tag".into(),
            "busybox:ta/g".into(),
            "busybox:ta g".into(),
            long_tag,
            long_name,
            "busybox@".into(),
            "busybox@sha256:abc".into(),
            "busybox@md5:d41d8cd98f00b204e9800998ecf8427e".into(),
            "busybox@sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
                .into(),
            "/busybox".into(),
            "busybox/".into(),
            "a//b".into(),
            "localhost:5000//x".into(),
            "../x".into(),
            "a/../b".into(),
            "a/./b".into(),
            "..".into(),
            ".".into(),
            "-x".into(),
            "x-".into(),
            "x.".into(),
            "a..b".into(),
            "a___b".into(),
            "a.-b".into(),
            "a b".into(),
            "a\nb".into(),
            "ubuntu\0".into(),
            "héllo".into(),
            "host:port/x".into(),
            "host:/x".into(),
            "-host.com/x".into(),
            "host-.com/x".into(),
            "host..com/x".into(),
            "[::1/x".into(),
            "[zz]/x".into(),
            "[::1]junk/x".into(),
            "busybox:a:b".into(),
            "busybox@sha256:x@y".into(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
        ];
        for c in &cases {
            assert!(
                Reference::parse_normalized(c).is_err(),
                "{c:?} was accepted as {:?}",
                Reference::parse_normalized(c)
            );
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let e = |s: &str| Reference::parse_normalized(s).unwrap_err().to_string();
        assert_eq!(
            e("Busybox"),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
        assert!(
            e("busybox:-x").contains("tag \"-x\""),
            "{}",
            e("busybox:-x")
        );
        assert!(e("a//b").contains("empty component"), "{}", e("a//b"));
        assert!(e("a..b").contains("\"a..b\""), "{}", e("a..b"));
        assert!(e(&"a".repeat(300)).contains("255"));
        assert!(e("busybox@sha256:abc").contains("64 lowercase hex digits"));
        assert!(
            e("host:port/x").contains("invalid port \"port\""),
            "{}",
            e("host:port/x")
        );
        assert!(e("").contains("at least one component"));
        let hex = "a".repeat(64);
        assert!(e(&hex).contains("64-byte hexadecimal"));
    }

    #[test]
    fn name_length_counts_the_domain() {
        // docker.io/library/ + 237 = 255: the longest name Docker accepts without a domain.
        let ok = "a".repeat(255 - "docker.io/library/".len());
        assert!(Reference::parse_normalized(&ok).is_ok());
        let bad = "a".repeat(256 - "docker.io/library/".len());
        assert!(matches!(
            Reference::parse_normalized(&bad),
            Err(ReferenceError::NameTooLong(_))
        ));
        // 128-character tags are allowed, 129 are not.
        assert!(Reference::parse_normalized(&format!("x:{}", "t".repeat(128))).is_ok());
    }

    #[test]
    fn no_panic_on_junk() {
        let junk = [
            "@",
            ":",
            "/",
            "@@",
            "::",
            "//",
            ":@",
            "a:@",
            "[",
            "]",
            "[]/x",
            "[:]/x",
            "a@b:c",
            "\u{0}",
            "ö/ä",
            "x:\u{1F600}",
            "localhost:",
            "localhost:/",
        ];
        for j in junk {
            let _ = Reference::parse_normalized(j);
        }
    }
}
