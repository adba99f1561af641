//! The closed set of error kinds every berth error maps to; the engine turns a kind into an HTTP
//! status in exactly one place.

/// What kind of failure an error is, independent of which crate raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is malformed or names an impossible combination (HTTP 400).
    InvalidArgument,
    /// The named object does not exist (HTTP 404).
    NotFound,
    /// The object exists or is in a state that forbids the request (HTTP 409).
    Conflict,
    /// The caller lacks the privilege the request needs (HTTP 403).
    PermissionDenied,
    /// Credentials are missing or wrong, e.g. a registry login (HTTP 401).
    Unauthorized,
    /// The object is already in the asked state: start of a running container (HTTP 304).
    NotModified,
    /// The host or kernel lacks a feature the request needs (HTTP 501).
    Unsupported,
    /// Anything else: a bug or an unexpected system failure (HTTP 500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status Docker's Engine API uses for this kind.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument => 400,
            ErrorKind::NotModified => 304,
            ErrorKind::Unauthorized => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Internal => 500,
            ErrorKind::Unsupported => 501,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_docker() {
        assert_eq!(ErrorKind::NotFound.http_status(), 404);
        assert_eq!(ErrorKind::Conflict.http_status(), 409);
        assert_eq!(ErrorKind::InvalidArgument.http_status(), 400);
    }
}
