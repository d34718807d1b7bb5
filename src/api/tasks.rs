//! `tasks` endpoints (to be written).

use super::ApiBuilder;

pub fn register(_b: &mut ApiBuilder) {}
