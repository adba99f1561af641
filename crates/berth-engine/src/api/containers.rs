//! The containers routes.

use super::Routes;

pub fn routes() -> Routes {
    Routes::new()
}
