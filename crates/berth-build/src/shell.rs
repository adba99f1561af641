//! Docker's word expansion for Dockerfile arguments: `$VAR`, `${VAR}`, `${VAR:-word}`,
//! `${VAR:+word}`, `${VAR-word}`, `${VAR+word}`, single and double quotes, the escape character.
