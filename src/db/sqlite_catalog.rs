//! [`CatalogStore`] on SQLite.

use super::catalog::CatalogStore;
use super::sqlite::SqliteStore;

impl CatalogStore for SqliteStore {}
