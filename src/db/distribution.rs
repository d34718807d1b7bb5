//! [`DistributionStore`]: publications, distributions, and the content app's lookups (which
//! distribution serves a path, which artifact a relative path is, linking an artifact fetched
//! on demand). Implemented in `sqlite_distribution.rs` and `pg_distribution.rs`.

use async_trait::async_trait;

#[allow(unused_imports)]
use super::{DbError, DbResult};

/// Publications, distributions and content app lookups.
#[async_trait]
pub trait DistributionStore: Send + Sync + 'static {}
