//! [`CatalogStore`] on PostgreSQL.

use super::catalog::CatalogStore;
use super::pg::PgStore;

impl CatalogStore for PgStore {}
