//! `artifacts/`: list (filtered by the digests we store), show and delete of an artifact no
//! content and no publication uses (its file is removed after its row).

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::routing::{delete, get};
use axum::Json;
use serde_json::{json, Value};
use uuid::Uuid;

use super::list::Query;
use super::openapi::paginated;
use super::{href, tasks, ApiBuilder, ApiError, ApiResult, AppState};
use crate::db::DbError;
use crate::models::Artifact;
use crate::models::ArtifactFilter;

/// An artifact as `ArtifactResponse` (md5 and sha1 are never computed).
pub(super) fn artifact_json(a: &Artifact) -> Value {
    json!({
        "pulp_href": href::artifact(a.id),
        "prn": href::prn("core.artifact", a.id),
        "pulp_created": tasks::time(a.pulp_created),
        // Artifacts never change once saved.
        "pulp_last_updated": tasks::time(a.pulp_created),
        "file": a.file,
        "size": a.size,
        "md5": null,
        "sha1": null,
        "sha224": a.other.sha224,
        "sha256": a.sha256,
        "sha384": a.other.sha384,
        "sha512": a.other.sha512,
    })
}

fn not_found() -> ApiError {
    ApiError::NotFound("No Artifact matches the given query.".to_string())
}

fn artifact_id(id: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| not_found())
}

fn db_err(e: DbError) -> ApiError {
    match e {
        DbError::NotFound(_) => not_found(),
        other => other.into(),
    }
}

async fn list(State(state): State<AppState>, q: Query) -> ApiResult<Json<Value>> {
    q.only(&["md5", "sha1", "sha256", "sha224", "sha384", "sha512"])?;
    let (limit, offset) = q.page()?;
    // md5 and sha1 are never computed, so no artifact matches a filter on them.
    if q.value("md5").is_some() || q.value("sha1").is_some() {
        return Ok(Json(q.paginate(0, Vec::new())?));
    }
    let filter = ArtifactFilter {
        sha256: q.value("sha256").map(str::to_string),
        sha224: q.value("sha224").map(str::to_string),
        sha384: q.value("sha384").map(str::to_string),
        sha512: q.value("sha512").map(str::to_string),
    };
    let count = state.store.count_artifacts(&filter).await?;
    let page = state.store.list_artifacts(&filter, limit, offset).await?;
    Ok(Json(q.paginate(
        count,
        page.iter().map(artifact_json).collect(),
    )?))
}

async fn read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Json<Value>> {
    q.only(&[])?;
    let a = state
        .store
        .get_artifact(artifact_id(&id)?)
        .await
        .map_err(db_err)?;
    Ok(Json(q.select(artifact_json(&a))))
}

async fn remove(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let a = match state.store.delete_artifact(artifact_id(&id)?).await {
        Ok(a) => a,
        Err(DbError::Conflict(_)) => {
            return Err(ApiError::Conflict(
                "The artifact is in use by content or a publication and cannot be deleted."
                    .to_string(),
            ))
        }
        Err(e) => return Err(db_err(e)),
    };
    // A sync may have saved the same file again since the row was deleted: keep it then.
    let back = state
        .store
        .find_artifacts_by_sha256(std::slice::from_ref(&a.sha256))
        .await?;
    if back.is_empty() {
        if let Err(e) = state.storage.remove(&a.file).await {
            tracing::warn!(error = %e, file = %a.file, "cannot remove a deleted artifact's file");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

pub fn register(b: &mut ApiBuilder) {
    let list_path = "/pulp/api/v3/artifacts/";
    let doc = b
        .route(
            Method::GET,
            list_path,
            list_path,
            "artifacts_list",
            "Artifacts",
            get(list),
        )
        .summary("List artifacts")
        .paging();
    for digest in ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"] {
        doc.query(
            digest,
            "string",
            &format!("Filter results where {digest} matches value"),
        );
    }
    doc.field_selection()
        .response(200, Some("PaginatedArtifactResponseList"));
    let detail = "/pulp/api/v3/artifacts/{id}/";
    b.route(
        Method::GET,
        detail,
        "{artifact_href}",
        "artifacts_read",
        "Artifacts",
        get(read),
    )
    .summary("Inspect an artifact")
    .path_param("artifact_href")
    .field_selection()
    .response(200, Some("ArtifactResponse"));
    b.route(
        Method::DELETE,
        detail,
        "{artifact_href}",
        "artifacts_delete",
        "Artifacts",
        delete(remove),
    )
    .summary("Delete an artifact")
    .path_param("artifact_href")
    .response(204, None);
    let digest = json!({"type": "string", "nullable": true});
    b.schema(
        "ArtifactResponse",
        json!({
            "type": "object",
            // No `required`: `fields` / `exclude_fields` can leave any property out.
            "properties": {
                "pulp_href": {"type": "string", "format": "uri", "readOnly": true},
                "prn": {"type": "string", "readOnly": true},
                "pulp_created": {"type": "string", "format": "date-time", "readOnly": true},
                "pulp_last_updated": {"type": "string", "format": "date-time", "readOnly": true},
                "file": {"type": "string"},
                "size": {"type": "integer", "format": "int64"},
                "md5": digest,
                "sha1": digest,
                "sha224": digest,
                "sha256": digest,
                "sha384": digest,
                "sha512": digest,
            }
        }),
    );
    b.schema(
        "PaginatedArtifactResponseList",
        paginated("ArtifactResponse"),
    );
}
