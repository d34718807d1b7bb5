//! The pulpcore-compatible REST API at `/pulp/api/v3/`. Empty until the server issue: the sync
//! engine is driven from [`crate::cli`] for now.
