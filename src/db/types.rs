//! The column types that the two backends store differently, one newtype each, so the shared
//! store code (`db/sql/`) binds and decodes them the same way on both:
//!
//! | newtype  | Rust value       | SQLite                      | PostgreSQL    |
//! |----------|------------------|-----------------------------|---------------|
//! | [`Id`]   | `Uuid`           | hyphenated `TEXT`           | `uuid`        |
//! | [`Time`] | `DateTime<Utc>`  | `INTEGER` µs since the epoch| `timestamptz` |
//! | [`Json`] | `serde_json::Value` | `TEXT`                   | `jsonb`       |
//!
//! Booleans need none (sqlx maps `bool` to SQLite's 0/1 `INTEGER` and to PostgreSQL's
//! `boolean`), nor do strings and `i64`. Unsigned counts are stored as `i64` and checked on the
//! way in and out (`shared::to_i64` / `to_u64`).

use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentsBuffer, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};
use uuid::fmt::Hyphenated;
use uuid::Uuid;

/// A row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id(pub Uuid);

/// A point in time, microsecond precision on both backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub DateTime<Utc>);

/// A JSON document.
#[derive(Debug, Clone, PartialEq)]
pub struct Json(pub serde_json::Value);

impl From<Uuid> for Id {
    fn from(id: Uuid) -> Id {
        Id(id)
    }
}

impl From<Id> for Uuid {
    fn from(id: Id) -> Uuid {
        id.0
    }
}

impl From<DateTime<Utc>> for Time {
    fn from(t: DateTime<Utc>) -> Time {
        Time(t)
    }
}

impl From<Time> for DateTime<Utc> {
    fn from(t: Time) -> DateTime<Utc> {
        t.0
    }
}

/// `Some(Id)` of an optional uuid.
pub fn opt_id(id: Option<Uuid>) -> Option<Id> {
    id.map(Id)
}

// ---- SQLite ------------------------------------------------------------------------------------

impl Type<Sqlite> for Id {
    fn type_info() -> SqliteTypeInfo {
        <Hyphenated as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Id {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <Hyphenated as Encode<Sqlite>>::encode(self.0.hyphenated(), buf)
    }
}

impl Decode<'_, Sqlite> for Id {
    fn decode(value: SqliteValueRef<'_>) -> Result<Id, BoxDynError> {
        Ok(Id(
            <Hyphenated as Decode<Sqlite>>::decode(value)?.into_uuid()
        ))
    }
}

impl Type<Sqlite> for Time {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Time {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<Sqlite>>::encode(self.0.timestamp_micros(), buf)
    }
}

impl Decode<'_, Sqlite> for Time {
    fn decode(value: SqliteValueRef<'_>) -> Result<Time, BoxDynError> {
        let us = <i64 as Decode<Sqlite>>::decode(value)?;
        DateTime::<Utc>::from_timestamp_micros(us)
            .map(Time)
            .ok_or_else(|| format!("timestamp {us} µs is out of range").into())
    }
}

impl Type<Sqlite> for Json {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl Encode<'_, Sqlite> for Json {
    fn encode_by_ref(&self, buf: &mut SqliteArgumentsBuffer) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.0.to_string(), buf)
    }
}

impl Decode<'_, Sqlite> for Json {
    fn decode(value: SqliteValueRef<'_>) -> Result<Json, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        Ok(Json(serde_json::from_str(text)?))
    }
}

// ---- PostgreSQL --------------------------------------------------------------------------------

impl Type<Postgres> for Id {
    fn type_info() -> PgTypeInfo {
        <Uuid as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Id {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Uuid as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Decode<'_, Postgres> for Id {
    fn decode(value: PgValueRef<'_>) -> Result<Id, BoxDynError> {
        Ok(Id(<Uuid as Decode<Postgres>>::decode(value)?))
    }
}

impl sqlx::postgres::PgHasArrayType for Id {
    fn array_type_info() -> PgTypeInfo {
        <Uuid as sqlx::postgres::PgHasArrayType>::array_type_info()
    }
}

impl Type<Postgres> for Time {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Time {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Decode<'_, Postgres> for Time {
    fn decode(value: PgValueRef<'_>) -> Result<Time, BoxDynError> {
        Ok(Time(<DateTime<Utc> as Decode<Postgres>>::decode(value)?))
    }
}

impl Type<Postgres> for Json {
    fn type_info() -> PgTypeInfo {
        <sqlx::types::Json<serde_json::Value> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <sqlx::types::Json<serde_json::Value> as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Json {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <sqlx::types::Json<&serde_json::Value> as Encode<Postgres>>::encode(
            sqlx::types::Json(&self.0),
            buf,
        )
    }
}

impl Decode<'_, Postgres> for Json {
    fn decode(value: PgValueRef<'_>) -> Result<Json, BoxDynError> {
        let sqlx::types::Json(v) =
            <sqlx::types::Json<serde_json::Value> as Decode<Postgres>>::decode(value)?;
        Ok(Json(v))
    }
}
