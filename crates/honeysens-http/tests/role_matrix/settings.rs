//! Matrix cases of the settings endpoints.

use crate::{Case, World};

pub async fn cases(_w: &World, _i: usize, _via: &str) -> Vec<Case> {
    Vec::new()
}
