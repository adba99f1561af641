//! The exec routes.

use super::Routes;

pub fn routes() -> Routes {
    Routes::new()
}
