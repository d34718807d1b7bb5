//! The column types that the two backends store differently, one newtype each, so the shared
//! store code (`db/sql/`) binds and decodes them the same way on both:
//!
//! | newtype  | Rust value          | SQLite                       | PostgreSQL    |
//! |----------|---------------------|------------------------------|---------------|
//! | [`Id`]   | `Uuid`              | hyphenated `TEXT`            | `uuid`        |
//! | [`Time`] | `DateTime<Utc>`     | `INTEGER` µs since the epoch | `timestamptz` |
//! | [`Json`] | `serde_json::Value` | `TEXT`                       | `jsonb`       |
//!
//! Booleans need none (sqlx maps `bool` to SQLite's 0/1 `INTEGER` and to PostgreSQL's
//! `boolean`), nor do strings and `i64`. Unsigned counts are stored as `i64` and checked on the
//! way in and out (`shared::to_i64` / `to_u64`).
//!
//! [`Column`] is a batch of rows held column by column, what the backends' `with_rows` hook
//! binds (one array per column on PostgreSQL, row by row on SQLite).

use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgHasArrayType, PgTypeInfo};
use sqlx::{Database, Decode, Encode, Postgres, Sqlite, Type};
use uuid::fmt::Hyphenated;
use uuid::Uuid;

/// A row id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(pub Uuid);

/// A point in time, microsecond precision on both backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub DateTime<Utc>);

/// A JSON document.
#[derive(Debug, Clone, PartialEq)]
pub struct Json(pub serde_json::Value);

/// `Some(Id)` of an optional uuid.
pub fn opt_id(id: Option<Uuid>) -> Option<Id> {
    id.map(Id)
}

/// Implements `Type`, `Encode` and `Decode` of backend `$db` for newtype `$new`, stored as
/// `$stored`: `$enc` turns `&self` (named `$v`) into a value to encode, `$dec` turns the decoded
/// `$stored` (named `$s`) into the newtype.
macro_rules! stored_as {
    ($db:ty, $new:ident, $stored:ty, |$v:ident| $enc:expr, |$s:ident| $dec:expr) => {
        impl Type<$db> for $new {
            fn type_info() -> <$db as Database>::TypeInfo {
                <$stored as Type<$db>>::type_info()
            }
            fn compatible(ty: &<$db as Database>::TypeInfo) -> bool {
                <$stored as Type<$db>>::compatible(ty)
            }
        }
        impl Encode<'_, $db> for $new {
            fn encode_by_ref(
                &self,
                buf: &mut <$db as Database>::ArgumentBuffer,
            ) -> Result<IsNull, BoxDynError> {
                let $v = self;
                Encode::<$db>::encode($enc, buf)
            }
        }
        impl Decode<'_, $db> for $new {
            fn decode(value: <$db as Database>::ValueRef<'_>) -> Result<$new, BoxDynError> {
                let $s = <$stored as Decode<$db>>::decode(value)?;
                $dec
            }
        }
    };
}

stored_as!(Sqlite, Id, Hyphenated, |v| v.0.hyphenated(), |s| Ok(Id(
    s.into_uuid()
)));
stored_as!(Sqlite, Time, i64, |v| v.0.timestamp_micros(), |us| {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(Time)
        .ok_or_else(|| format!("timestamp {us} µs is out of range").into())
});
stored_as!(Sqlite, Json, String, |v| v.0.to_string(), |text| Ok(Json(
    serde_json::from_str(&text)?
)));

stored_as!(Postgres, Id, Uuid, |v| v.0, |s| Ok(Id(s)));
stored_as!(Postgres, Time, DateTime<Utc>, |v| v.0, |s| Ok(Time(s)));
stored_as!(
    Postgres,
    Json,
    sqlx::types::Json<serde_json::Value>,
    |v| sqlx::types::Json(&v.0),
    |s| Ok(Json(s.0))
);

impl PgHasArrayType for Id {
    fn array_type_info() -> PgTypeInfo {
        <Uuid as PgHasArrayType>::array_type_info()
    }
}

impl PgHasArrayType for Time {
    fn array_type_info() -> PgTypeInfo {
        <DateTime<Utc> as PgHasArrayType>::array_type_info()
    }
}

impl PgHasArrayType for Json {
    fn array_type_info() -> PgTypeInfo {
        <sqlx::types::Json<serde_json::Value> as PgHasArrayType>::array_type_info()
    }
}

/// One column of a batch of rows (every column of a batch has one value per row).
#[derive(Debug, Clone)]
pub enum Column<'a> {
    Id(Vec<Id>),
    OptId(Vec<Option<Id>>),
    Text(Vec<&'a str>),
    OptText(Vec<Option<&'a str>>),
    Int(Vec<i64>),
    OptInt(Vec<Option<i64>>),
    Time(Vec<Time>),
    Json(Vec<Json>),
}

impl Column<'_> {
    /// How many rows the column holds.
    pub fn rows(&self) -> usize {
        match self {
            Column::Id(v) => v.len(),
            Column::OptId(v) => v.len(),
            Column::Text(v) => v.len(),
            Column::OptText(v) => v.len(),
            Column::Int(v) => v.len(),
            Column::OptInt(v) => v.len(),
            Column::Time(v) => v.len(),
            Column::Json(v) => v.len(),
        }
    }

    /// A new id per row, for `n` rows.
    pub fn new_ids(n: usize) -> Column<'static> {
        Column::Id((0..n).map(|_| Id(Uuid::now_v7())).collect())
    }
}
