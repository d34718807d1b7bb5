//! `POST artifacts/` (one multipart request) and `uploads/` (chunked: create, `PUT` chunks with
//! `Content-Range` in any order, show with its chunks, list, delete, `commit/` as a task).
//!
//! Bytes are streamed to a temp file while hashed ([`super::multipart`]) and only then checked:
//! a wrong size or digest, a chunk outside the upload, an artifact that exists already, each is
//! a 400 and the temp file is dropped, so nothing is stored. A chunk that passes is moved into
//! the upload's directory by one rename and recorded; the commit task assembles them
//! ([`crate::tasks::upload`]).

use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::{delete, get, post, put};
use axum::Json;
use serde_json::{json, Value};
use uuid::Uuid;

use super::artifacts::artifact_json;
use super::body::{Fields, JsonObject};
use super::common::{accepted, ts};
use super::list::Query;
use super::multipart::{fill_digests, FileBody, FILE_PART};
use super::openapi::paginated;
use super::{ApiBuilder, ApiError, ApiResult, AppState, API_ROOT};
use crate::db::DbError;
use crate::downloader::Written;
use crate::models::{OtherDigests, Upload, UploadChunk};
use crate::tasks::upload::{save_artifact, UploadCommitArgs};

/// `/pulp/api/v3/uploads/<id>/`.
pub(crate) fn upload_href(id: Uuid) -> String {
    format!("{API_ROOT}uploads/{id}/")
}

fn upload_json(u: &Upload, chunks: Option<&[UploadChunk]>) -> Value {
    let mut v = json!({
        "pulp_href": upload_href(u.id),
        "prn": super::href::prn("core.upload", u.id),
        "pulp_created": ts(u.pulp_created),
        "pulp_last_updated": ts(u.pulp_last_updated),
        "size": u.size,
        "completed": null,
    });
    if let Some(chunks) = chunks {
        v["chunks"] = chunks
            .iter()
            .map(|c| json!({"offset": c.offset, "size": c.size}))
            .collect();
    }
    v
}

fn upload_not_found() -> ApiError {
    ApiError::NotFound("No Upload matches the given query.".into())
}

async fn find_upload(state: &AppState, id: &str) -> ApiResult<Upload> {
    let id = Uuid::parse_str(id).map_err(|_| upload_not_found())?;
    match state.store.get_upload(id).await {
        Ok(u) => Ok(u),
        Err(DbError::NotFound(_)) => Err(upload_not_found()),
        Err(e) => Err(e.into()),
    }
}

/// The upload an href names, for field `field` of a request (400 when it names none).
pub(crate) async fn upload_of(state: &AppState, field: &str, h: &str) -> ApiResult<Upload> {
    let bad = || ApiError::field(field, "Invalid hyperlink - Object does not exist.");
    let p = super::href::parse(h).ok_or_else(bad)?;
    if p.collection != ["uploads"] || !p.rest.is_empty() {
        return Err(bad());
    }
    match state.store.get_upload(p.id).await {
        Ok(u) => Ok(u),
        Err(DbError::NotFound(_)) => Err(bad()),
        Err(e) => Err(e.into()),
    }
}

/// The file part of a form, or the 400 DRF gives when it is missing.
fn require_file(body: &mut FileBody) -> ApiResult<Written> {
    body.file
        .take()
        .ok_or_else(|| ApiError::field(FILE_PART, "No file was submitted."))
}

/// Saves a checked upload as an artifact (the temp file is adopted, then the row written).
pub(crate) async fn store_file(
    state: &AppState,
    file: Written,
) -> ApiResult<crate::models::Artifact> {
    Ok(save_artifact(
        &state.store,
        &state.storage,
        file.temp,
        file.sha256,
        file.size,
        file.other,
    )
    .await?)
}

// ---- artifacts/ ---------------------------------------------------------------------------

async fn artifact_create(
    State(state): State<AppState>,
    mut body: FileBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut f = Fields::new(body.fields(&[], &["size"]));
    let size = f.uint("size");
    let sha256 = f.string("sha256", false);
    let need = OtherDigests {
        sha224: f.string("sha224", false),
        sha384: f.string("sha384", false),
        sha512: f.string("sha512", false),
    };
    for legacy in ["md5", "sha1"] {
        if f.string(legacy, false).is_some() {
            f.error(
                legacy,
                format!("Checksum algorithm {legacy} is not computed by this server."),
            );
        }
    }
    if body.file.is_none() {
        f.error(FILE_PART, "No file was submitted.");
    }
    f.finish()?;
    let mut file = require_file(&mut body)?;
    if size.is_some_and(|s| s != file.size) {
        return Err(ApiError::field(
            "size",
            "The size did not match actual size of file.",
        ));
    }
    // A digest field sent after the file was not computed while it streamed: do it now.
    let path = file.temp.to_path_buf();
    let mut have = std::mem::take(&mut file.other);
    let want = need.clone();
    have = tokio::task::spawn_blocking(move || fill_digests(&path, &mut have, &want).map(|_| have))
        .await
        .map_err(|e| ApiError::Internal(format!("hashing stopped: {e}")))?
        .map_err(|e| ApiError::Internal(format!("cannot hash an upload: {e}")))?;
    file.other = have;
    let pairs = [
        ("sha256", sha256.as_ref(), Some(&file.sha256)),
        ("sha224", need.sha224.as_ref(), file.other.sha224.as_ref()),
        ("sha384", need.sha384.as_ref(), file.other.sha384.as_ref()),
        ("sha512", need.sha512.as_ref(), file.other.sha512.as_ref()),
    ];
    for (algorithm, want, got) in pairs {
        if let Some(want) = want {
            if Some(&want.trim().to_ascii_lowercase()) != got {
                return Err(ApiError::field(
                    algorithm,
                    format!("The {algorithm} checksum did not match."),
                ));
            }
        }
    }
    let existing = state
        .store
        .find_artifacts_by_sha256(std::slice::from_ref(&file.sha256))
        .await?;
    if let Some(a) = existing.first() {
        return Err(ApiError::invalid(format!(
            "Artifact with sha256 checksum of '{}' already exists: {}",
            a.sha256,
            super::href::artifact(a.id)
        )));
    }
    let artifact = store_file(&state, file).await?;
    Ok((StatusCode::CREATED, Json(artifact_json(&artifact))))
}

// ---- uploads/ -----------------------------------------------------------------------------

async fn upload_create(
    State(state): State<AppState>,
    mut body: FileBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut f = Fields::new(body.fields(&[], &["size"]));
    let size = f.uint("size");
    if size.is_none() && !f.has("size") {
        f.error("size", "This field is required.");
    }
    f.finish()?;
    let size = size.ok_or_else(|| ApiError::field("size", "This field is required."))?;
    let upload = state.store.create_upload(size).await?;
    Ok((StatusCode::CREATED, Json(upload_json(&upload, None))))
}

async fn upload_list(State(state): State<AppState>, q: Query) -> ApiResult<Json<Value>> {
    q.only(&[])?;
    let (limit, offset) = q.page()?;
    let (count, page) = state.store.list_uploads(limit, offset).await?;
    let items = page.iter().map(|u| upload_json(u, None)).collect();
    Ok(Json(q.paginate(count, items)?))
}

async fn upload_read(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Json<Value>> {
    q.only(&[])?;
    let upload = find_upload(&state, &id).await?;
    let chunks = state.store.upload_chunks(upload.id).await?;
    Ok(Json(q.select(upload_json(&upload, Some(&chunks)))))
}

async fn upload_delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let upload = find_upload(&state, &id).await?;
    match state.store.delete_upload(upload.id).await {
        Ok(()) => {}
        Err(DbError::NotFound(_)) => return Err(upload_not_found()),
        Err(e) => return Err(e.into()),
    }
    if let Err(e) = state.storage.remove_upload(upload.id).await {
        tracing::warn!(error = %e, upload = %upload.id, "cannot remove a deleted upload's chunks");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `bytes <start>-<end>/<total or *>` (RFC 9110): the first and last byte.
fn content_range(headers: &HeaderMap) -> Option<(u64, u64, Option<u64>)> {
    let v = headers.get("content-range")?.to_str().ok()?.trim();
    let rest = v.strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let start: u64 = start.trim().parse().ok()?;
    let end: u64 = end.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    (end >= start).then_some((start, end, total))
}

async fn upload_chunk(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    req: Request,
) -> ApiResult<Json<Value>> {
    let upload = match find_upload(&state, &id).await {
        Ok(u) => u,
        Err(e) => {
            discard(req).await;
            return Err(e);
        }
    };
    // The range is checked before the body is read; a refused chunk is read and discarded
    // (up to a bound) so the client gets the answer rather than a connection reset mid-body.
    let Some((start, end, total)) = content_range(&headers) else {
        discard(req).await;
        return Err(ApiError::invalid("Invalid header for Content-Range."));
    };
    if end >= upload.size || total.is_some_and(|t| t != upload.size) {
        discard(req).await;
        return Err(ApiError::invalid("End byte is greater than upload size."));
    }
    let mut body = FileBody::from_request(req, &state).await?;
    let mut f = Fields::new(body.fields(&[], &[]));
    let sha256 = f.string("sha256", false);
    if body.file.is_none() {
        f.error(FILE_PART, "No file was submitted.");
    }
    f.finish()?;
    let file = require_file(&mut body)?;
    if file.size != end - start + 1 {
        return Err(ApiError::invalid(
            "Chunk size does not match content range.",
        ));
    }
    if let Some(want) = sha256 {
        if want.trim().to_ascii_lowercase() != file.sha256 {
            return Err(ApiError::invalid("Checksum does not match chunk upload."));
        }
    }
    let chunk_id = Uuid::now_v7();
    let upload_id = upload.id;
    state
        .storage
        .adopt_chunk(upload_id, chunk_id, file.temp, file.size)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot store a chunk: {e}")))?;
    if let Err(e) = state
        .store
        .add_upload_chunk(upload_id, chunk_id, start, end - start + 1)
        .await
    {
        let _ = state.storage.remove_chunk(upload_id, chunk_id).await;
        return Err(match e {
            DbError::NotFound(_) => upload_not_found(),
            other => other.into(),
        });
    }
    let upload = state.store.get_upload(upload_id).await?;
    Ok(Json(upload_json(&upload, None)))
}

/// The most bytes of a refused request body read (and dropped) before answering.
const DISCARD_LIMIT: u64 = 256 << 20;

/// Reads and drops a request body, at most [`DISCARD_LIMIT`] bytes.
async fn discard(req: Request) {
    use futures::StreamExt;
    let mut stream = req.into_body().into_data_stream();
    let mut seen = 0u64;
    while let Some(Ok(bytes)) = stream.next().await {
        seen += bytes.len() as u64;
        if seen > DISCARD_LIMIT {
            break;
        }
    }
}

async fn upload_commit(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: JsonObject,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let upload = find_upload(&state, &id).await?;
    let mut f = Fields::new(body.0);
    let sha256 = f.string("sha256", true);
    f.finish()?;
    let sha256 = sha256.ok_or_else(|| ApiError::field("sha256", "This field is required."))?;
    let own = upload_href(upload.id);
    let task = state
        .tasking
        .dispatch_args(
            &UploadCommitArgs {
                upload: upload.id,
                sha256,
            },
            &[&own],
            &[],
        )
        .await?;
    Ok(accepted(&task))
}

pub fn register(b: &mut ApiBuilder) {
    const FORM: &[&str] = &["multipart/form-data"];
    const JSON_OR_FORM: &[&str] = &["application/json", "multipart/form-data"];
    let artifacts = "/pulp/api/v3/artifacts/";
    b.route(
        Method::POST,
        artifacts,
        artifacts,
        "artifacts_create",
        "Artifacts",
        post(artifact_create).layer(DefaultBodyLimit::disable()),
    )
    .summary("Create an artifact")
    .request_as("Artifact", FORM)
    .response(201, Some("ArtifactResponse"));
    let digest = json!({"type": "string", "nullable": true, "minLength": 1});
    b.schema(
        "Artifact",
        json!({
            "type": "object",
            "properties": {
                "file": {"type": "string", "format": "binary", "description": "The stored file."},
                "size": {"type": "integer", "format": "int64"},
                "md5": digest, "sha1": digest, "sha224": digest,
                "sha256": digest, "sha384": digest, "sha512": digest,
            },
            "required": ["file"],
        }),
    );

    let coll = "/pulp/api/v3/uploads/";
    let detail = "/pulp/api/v3/uploads/{id}/";
    let tag = "Uploads";
    b.route(
        Method::GET,
        coll,
        coll,
        "uploads_list",
        tag,
        get(upload_list),
    )
    .summary("List uploads")
    .paging()
    .field_selection()
    .response(200, Some("PaginatedUploadResponseList"));
    b.route(
        Method::POST,
        coll,
        coll,
        "uploads_create",
        tag,
        post(upload_create),
    )
    .summary("Create an upload")
    .request_as("Upload", JSON_OR_FORM)
    .response(201, Some("UploadResponse"));
    b.route(
        Method::GET,
        detail,
        "{upload_href}",
        "uploads_read",
        tag,
        get(upload_read),
    )
    .summary("Inspect an upload")
    .path_param("upload_href")
    .field_selection()
    .response(200, Some("UploadDetailResponse"));
    b.route(
        Method::PUT,
        detail,
        "{upload_href}",
        "uploads_update",
        tag,
        put(upload_chunk).layer(DefaultBodyLimit::disable()),
    )
    .summary("Upload a file chunk")
    .path_param("upload_href")
    .header(
        "Content-Range",
        true,
        "The Content-Range header specifies the location of the file chunk within the file.",
    )
    .request_as("UploadChunk", FORM)
    .response(200, Some("UploadResponse"));
    b.route(
        Method::DELETE,
        detail,
        "{upload_href}",
        "uploads_delete",
        tag,
        delete(upload_delete),
    )
    .summary("Delete an upload")
    .path_param("upload_href")
    .response(204, None);
    let commit = "/pulp/api/v3/uploads/{id}/commit/";
    b.route(
        Method::POST,
        commit,
        "{upload_href}commit/",
        "uploads_commit",
        tag,
        post(upload_commit),
    )
    .summary("Finish an upload")
    .path_param("upload_href")
    .request("UploadCommit")
    .response(202, Some("AsyncOperationResponse"));

    let ro_time = json!({"type": "string", "format": "date-time", "readOnly": true});
    let upload_props = json!({
        "pulp_href": {"type": "string", "format": "uri", "readOnly": true},
        "prn": {"type": "string", "readOnly": true},
        "pulp_created": ro_time,
        "pulp_last_updated": ro_time,
        "size": {"type": "integer", "format": "int64"},
        "completed": {"type": "string", "format": "date-time", "readOnly": true, "nullable": true},
    });
    b.schema(
        "Upload",
        json!({"type": "object", "properties": {"size": {"type": "integer", "format": "int64"}}, "required": ["size"]}),
    );
    b.schema(
        "UploadResponse",
        json!({"type": "object", "properties": upload_props}),
    );
    let mut detail_props = upload_props.clone();
    detail_props["chunks"] = json!({"type": "array", "readOnly": true, "items": {
        "type": "object",
        "properties": {"offset": {"type": "integer", "format": "int64"}, "size": {"type": "integer", "format": "int64"}},
    }});
    b.schema(
        "UploadDetailResponse",
        json!({"type": "object", "properties": detail_props}),
    );
    b.schema("PaginatedUploadResponseList", paginated("UploadResponse"));
    b.schema(
        "UploadChunk",
        json!({
            "type": "object",
            "properties": {
                "file": {"type": "string", "format": "binary", "writeOnly": true},
                "sha256": {"type": "string", "nullable": true, "writeOnly": true, "minLength": 1},
            },
            "required": ["file"],
        }),
    );
    b.schema(
        "UploadCommit",
        json!({"type": "object", "properties": {"sha256": {"type": "string", "minLength": 1}}, "required": ["sha256"]}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &str) -> Option<(u64, u64, Option<u64>)> {
        let mut h = HeaderMap::new();
        h.insert("content-range", v.parse().unwrap());
        content_range(&h)
    }

    #[test]
    fn content_range_reads_first_last_and_total() {
        assert_eq!(range("bytes 0-99/200"), Some((0, 99, Some(200))));
        assert_eq!(range("bytes 100-199/*"), Some((100, 199, None)));
        assert_eq!(range("bytes 5-5/6"), Some((5, 5, Some(6))));
        for bad in [
            "bytes=0-99/200",
            "bytes 9-1/20",
            "bytes 0-/20",
            "0-9/10",
            "bytes a-b/c",
        ] {
            assert_eq!(range(bad), None, "{bad}");
        }
        assert_eq!(content_range(&HeaderMap::new()), None);
    }
}
