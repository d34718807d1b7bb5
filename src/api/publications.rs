//! `publications` endpoints (to be written).

use std::sync::Arc;

use super::ApiBuilder;
use crate::plugins::Plugin;

pub fn register(_b: &mut ApiBuilder, _plugins: &[Arc<dyn Plugin>]) {}
