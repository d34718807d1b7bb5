//! `signing-services/`: the signing services an administrator registered with
//! `pulp-rs add-signing-service` (read-only over the API, as in pulpcore).

use axum::extract::{Path, State};
use axum::http::Method;
use axum::routing::get;
use axum::Json;
use serde_json::{json, Value};

use super::common::{name_matches, page_of, path_id, ts};
use super::list::Query;
use super::openapi::paginated;
use super::{href, ApiBuilder, ApiError, ApiResult, AppState, API_ROOT};
use crate::models::SigningService;

fn to_json(s: &SigningService) -> Value {
    json!({
        "pulp_href": href::signing_service(s.id),
        "prn": href::prn("core.signingservice", s.id),
        "pulp_created": ts(s.pulp_created),
        "pulp_last_updated": ts(s.pulp_created),
        "name": s.name,
        "public_key": s.public_key,
        "pubkey_fingerprint": s.pubkey_fingerprint,
        "script": s.script,
    })
}

async fn list(State(state): State<AppState>, q: Query) -> ApiResult<Json<Value>> {
    q.only(&["name", "name__contains", "name__icontains", "ordering"])?;
    let items = state
        .store
        .list_signing_services()
        .await?
        .iter()
        .filter(|s| name_matches(&q, &s.name, &Default::default()))
        .map(to_json)
        .collect();
    page_of(&q, items, &["name", "pulp_created"])
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Json<Value>> {
    let id = path_id(&id)?;
    match state.store.get_signing_service(id).await {
        Ok(s) => Ok(Json(q.select(to_json(&s)))),
        Err(crate::db::DbError::NotFound(_)) => Err(ApiError::NotFound(
            "No SigningService matches the given query.".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

pub fn register(b: &mut ApiBuilder) {
    let coll = format!("{API_ROOT}signing-services/");
    b.route(
        Method::GET,
        &coll,
        &coll,
        "signing_services_list",
        "Signing-Services",
        get(list),
    )
    .summary("List signing services")
    .query("name", "string", "Filter results where name matches value")
    .query(
        "name__contains",
        "string",
        "Filter results where name contains value",
    )
    .query(
        "name__icontains",
        "string",
        "Filter results where name contains value (case-insensitive)",
    )
    .query(
        "ordering",
        "array",
        "Which field to use when ordering the results.",
    )
    .paging()
    .field_selection()
    .response(200, Some("PaginatedSigningServiceResponseList"));
    b.route(
        Method::GET,
        &format!("{coll}{{id}}/"),
        "{signing_service_href}",
        "signing_services_read",
        "Signing-Services",
        get(read),
    )
    .summary("Inspect a signing service")
    .path_param("signing_service_href")
    .field_selection()
    .response(200, Some("SigningServiceResponse"));
    let time = json!({"type": "string", "format": "date-time", "readOnly": true});
    b.schema(
        "SigningServiceResponse",
        json!({"type": "object", "properties": {
            "pulp_href": {"type": "string", "format": "uri", "readOnly": true},
            "prn": {"type": "string", "readOnly": true},
            "pulp_created": time,
            "pulp_last_updated": time,
            "name": {"type": "string"},
            "public_key": {"type": "string"},
            "pubkey_fingerprint": {"type": "string"},
            "script": {"type": "string"},
        }}),
    );
    b.schema(
        "PaginatedSigningServiceResponseList",
        paginated("SigningServiceResponse"),
    );
}
