//! pg backend (in progress).
use super::{DbResult, DynStore};

/// Opens the database and runs migrations.
pub async fn connect(url: &str) -> DbResult<DynStore> {
    let _ = url;
    todo!("db helper")
}
