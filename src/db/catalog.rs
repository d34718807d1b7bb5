//! [`CatalogStore`]: what the REST API asks of remotes, repositories, versions, content and
//! artifacts beyond the sync pipeline's needs (lists with filters, updates, deletes, modify).
//! Implemented in `sqlite_catalog.rs` and `pg_catalog.rs`.

use async_trait::async_trait;

#[allow(unused_imports)]
use super::{DbError, DbResult};

/// Catalog queries of the REST API.
#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {}
