//! [`DistributionStore`] on PostgreSQL.

use super::distribution::DistributionStore;
use super::pg::PgStore;

impl DistributionStore for PgStore {}
