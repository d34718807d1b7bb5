//! [`DistributionStore`] on SQLite.

use super::distribution::DistributionStore;
use super::sqlite::SqliteStore;

impl DistributionStore for SqliteStore {}
