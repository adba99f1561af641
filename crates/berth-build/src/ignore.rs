//! `.dockerignore`: Go `filepath.Match` patterns plus `**`, `!` exceptions, last match wins.
