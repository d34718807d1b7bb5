//! Request bodies that may carry a file: [`FileBody`] reads a `multipart/form-data` body (its
//! `file` part streamed through the downloader's sink into a temp file in the storage's tmp
//! area while it is hashed, 1 MiB at a time: an upload is never held in memory) or, for the
//! endpoints that also take one, a JSON object. Text parts become string fields;
//! [`FileBody::fields`] turns the ones the endpoint reads as booleans or integers into those
//! types, so [`super::body::Fields`] validates both kinds of body alike.

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::header::CONTENT_TYPE;
use serde_json::{Map, Value};

use super::body::JsonObject;
use super::{ApiError, AppState};
use crate::downloader::{Sink, Written};
use crate::models::OtherDigests;

/// The longest text part read (a digest, an href, a path).
const MAX_TEXT_PART: usize = 64 * 1024;
/// The most parts a form may have.
const MAX_PARTS: usize = 64;

/// The name of the part that carries the file.
pub const FILE_PART: &str = "file";

/// A body with its fields and, when it had one, its file (already on disk and hashed).
pub struct FileBody {
    fields: Map<String, Value>,
    /// The `file` part: a temp file (deleted when dropped unless adopted), its size and digests.
    pub file: Option<Written>,
    /// Whether the body was a multipart form (its fields are all strings).
    pub multipart: bool,
}

impl FileBody {
    /// The fields, with those named in `bools` / `ints` read from a form's text as booleans /
    /// integers (a value that is neither stays a string, for the validator to refuse).
    pub fn fields(&mut self, bools: &[&str], ints: &[&str]) -> Map<String, Value> {
        let mut out = std::mem::take(&mut self.fields);
        if !self.multipart {
            return out;
        }
        for (k, v) in out.iter_mut() {
            let Value::String(s) = v else { continue };
            if bools.contains(&k.as_str()) {
                match s.to_ascii_lowercase().as_str() {
                    "true" | "1" => *v = Value::Bool(true),
                    "false" | "0" => *v = Value::Bool(false),
                    _ => {}
                }
            } else if ints.contains(&k.as_str()) {
                if let Ok(n) = s.trim().parse::<u64>() {
                    *v = Value::from(n);
                }
            }
        }
        out
    }
}

fn form_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid(format!("Multipart form parse error - {e}"))
}

/// Which digests besides sha256 to compute for the file, from the fields seen before it.
fn wanted(fields: &Map<String, Value>) -> OtherDigests {
    let some = |k: &str| fields.contains_key(k).then(String::new);
    OtherDigests {
        sha224: some("sha224"),
        sha384: some("sha384"),
        sha512: some("sha512"),
    }
}

async fn read_form(mut mp: Multipart, state: &AppState) -> Result<FileBody, ApiError> {
    let mut fields = Map::new();
    let mut file: Option<Written> = None;
    let mut parts = 0usize;
    while let Some(mut part) = mp.next_field().await.map_err(form_error)? {
        parts += 1;
        if parts > MAX_PARTS {
            return Err(form_error("too many parts"));
        }
        let name = part.name().unwrap_or_default().to_string();
        if name == FILE_PART {
            if file.is_some() {
                return Err(ApiError::field(FILE_PART, "Only one file may be sent."));
            }
            let mut sink = Sink::new(
                state.storage.tmp_dir().to_path_buf(),
                &wanted(&fields),
                None,
            );
            while let Some(bytes) = part.chunk().await.map_err(form_error)? {
                sink.push(&bytes)
                    .await
                    .map_err(|e| ApiError::Internal(format!("cannot write an upload: {e}")))?;
            }
            file = Some(
                sink.finish()
                    .await
                    .map_err(|e| ApiError::Internal(format!("cannot write an upload: {e}")))?,
            );
        } else {
            let mut text = Vec::new();
            while let Some(bytes) = part.chunk().await.map_err(form_error)? {
                if text.len() + bytes.len() > MAX_TEXT_PART {
                    return Err(ApiError::field(&name, "Value too long."));
                }
                text.extend_from_slice(&bytes);
            }
            let text = String::from_utf8(text)
                .map_err(|_| ApiError::field(&name, "Not valid UTF-8 text."))?;
            fields.insert(name, Value::String(text));
        }
    }
    Ok(FileBody {
        fields,
        file,
        multipart: true,
    })
}

impl FromRequest<AppState> for FileBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let multipart = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
        if multipart {
            let mp = Multipart::from_request(req, state)
                .await
                .map_err(form_error)?;
            read_form(mp, state).await
        } else {
            let JsonObject(fields) = JsonObject::from_request(req, state).await?;
            Ok(FileBody {
                fields,
                file: None,
                multipart: false,
            })
        }
    }
}

/// The digests of the file at `path` for the algorithms among `sha224` / `sha384` / `sha512`
/// that `have` lacks and `need` names (a digest field sent after the file). Blocking.
pub fn fill_digests(
    path: &std::path::Path,
    have: &mut OtherDigests,
    need: &OtherDigests,
) -> std::io::Result<()> {
    use sha2::Digest;
    use std::io::Read;
    let do224 = need.sha224.is_some() && have.sha224.is_none();
    let do384 = need.sha384.is_some() && have.sha384.is_none();
    let do512 = need.sha512.is_some() && have.sha512.is_none();
    if !(do224 || do384 || do512) {
        return Ok(());
    }
    let mut h224 = sha2::Sha224::new();
    let mut h384 = sha2::Sha384::new();
    let mut h512 = sha2::Sha512::new();
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        if do224 {
            h224.update(&buf[..n]);
        }
        if do384 {
            h384.update(&buf[..n]);
        }
        if do512 {
            h512.update(&buf[..n]);
        }
    }
    if do224 {
        have.sha224 = Some(hex::encode(h224.finalize()));
    }
    if do384 {
        have.sha384 = Some(hex::encode(h384.finalize()));
    }
    if do512 {
        have.sha512 = Some(hex::encode(h512.finalize()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_text_becomes_booleans_and_integers_where_asked() {
        let mut fields = Map::new();
        fields.insert("overwrite".into(), Value::String("False".into()));
        fields.insert("size".into(), Value::String("12".into()));
        fields.insert("other".into(), Value::String("12".into()));
        fields.insert("bad".into(), Value::String("maybe".into()));
        let mut body = FileBody {
            fields: fields.clone(),
            file: None,
            multipart: true,
        };
        let out = body.fields(&["overwrite", "bad"], &["size"]);
        assert_eq!(out["overwrite"], Value::Bool(false));
        assert_eq!(out["size"], Value::from(12u64));
        assert_eq!(out["other"], Value::String("12".into()));
        assert_eq!(out["bad"], Value::String("maybe".into()));
        // A JSON body keeps its types as sent.
        let mut json = FileBody {
            fields,
            file: None,
            multipart: false,
        };
        assert_eq!(json.fields(&["overwrite"], &["size"])["size"], "12");
    }
}
