//! `orphans/cleanup/`: dispatches the orphan cleanup task (exclusive on pulpcore's
//! `/pulp/api/v3/orphans/cleanup/` resource), optionally limited to some content units.

use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};
use uuid::Uuid;

use super::body::{Fields, JsonObject};
use super::common::accepted;
use super::openapi::ASYNC_OPERATION;
use super::{href, ApiBuilder, ApiError, ApiResult, AppState};
use crate::tasks::admin::{
    OrphanCleanupArgs, DEFAULT_ORPHAN_PROTECTION_MINUTES, ORPHAN_CLEANUP_RESOURCE,
};

/// The largest `orphan_protection_time` pulpcore accepts.
const MAX_PROTECTION_MINUTES: u64 = 4_294_967_295;

/// The content id of `h` if it is a content href of a compiled-in plugin.
fn content_id(state: &AppState, h: &str) -> Option<Uuid> {
    let p = href::parse(h)?;
    let ok = p.rest.is_empty()
        && state.plugins.iter().any(|plugin| {
            plugin.content_types().iter().any(|ct| {
                let n = plugin.content_names(ct.as_ref());
                p.collection == ["content", n.app_label, n.content_kind]
            })
        });
    ok.then_some(p.id)
}

async fn cleanup(
    State(state): State<AppState>,
    JsonObject(body): JsonObject,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut fields = Fields::new(body);
    let minutes = fields.uint("orphan_protection_time");
    if minutes.is_some_and(|m| m > MAX_PROTECTION_MINUTES) {
        fields.error(
            "orphan_protection_time",
            format!("Ensure this value is less than or equal to {MAX_PROTECTION_MINUTES}."),
        );
    }
    let hrefs = fields.string_list("content_hrefs");
    let mut ids = None;
    if let Some(hrefs) = &hrefs {
        let parsed: Vec<Option<Uuid>> = hrefs.iter().map(|h| content_id(&state, h)).collect();
        let bad: Vec<&str> = hrefs
            .iter()
            .zip(&parsed)
            .filter(|(_, id)| id.is_none())
            .map(|(h, _)| h.as_str())
            .collect();
        if bad.is_empty() {
            ids = Some(parsed.into_iter().flatten().collect::<Vec<Uuid>>());
        } else {
            fields.error(
                "content_hrefs",
                format!("Not content hrefs: {}", bad.join(", ")),
            );
        }
    }
    fields.finish()?;
    if let Some(ids) = &ids {
        let found = state.store.existing_content_ids(ids).await?;
        let missing: Vec<String> = ids
            .iter()
            .zip(hrefs.as_deref().unwrap_or_default())
            .filter(|(id, _)| !found.contains(id))
            .map(|(_, h)| h.clone())
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::field(
                "content_hrefs",
                format!(
                    "Could not find the following content units: {}",
                    missing.join(", ")
                ),
            ));
        }
    }
    let args = OrphanCleanupArgs {
        orphan_protection_time: Some(minutes.unwrap_or(DEFAULT_ORPHAN_PROTECTION_MINUTES)),
        content_ids: ids,
    };
    let task = state
        .tasking
        .dispatch_args(&args, &[ORPHAN_CLEANUP_RESOURCE], &[])
        .await?;
    Ok(accepted(&task))
}

pub fn register(b: &mut ApiBuilder) {
    let path = "/pulp/api/v3/orphans/cleanup/";
    b.route(
        Method::POST,
        path,
        path,
        "orphans_cleanup_cleanup",
        "Orphans: Cleanup",
        post(cleanup),
    )
    .summary("Clean up orphan content and artifacts")
    .request("OrphansCleanup")
    .response(202, Some(ASYNC_OPERATION));
    b.schema(
        "OrphansCleanup",
        json!({
            "type": "object",
            "properties": {
                "content_hrefs": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "Will delete specified content and associated Artifacts if they are orphans."
                },
                "orphan_protection_time": {
                    "type": "integer",
                    "format": "int64",
                    "nullable": true,
                    "minimum": 0,
                    "maximum": MAX_PROTECTION_MINUTES,
                    "description": "Minutes an orphan is kept before this cleanup may delete it (default 1440)."
                },
            }
        }),
    );
}
