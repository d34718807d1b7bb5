//! File publications: the `manifest` option (default `PULP_MANIFEST`, null for none) and the
//! manifest a publication writes, one `relative_path,sha256,size` line per file of the version
//! (what a file remote syncs from, so a distribution of a publication is itself a file remote).

use serde_json::{json, Map, Value};

use super::manifest::check_relative_path;
use crate::models::ServedFile;

/// The manifest file name when the body gives none.
pub const DEFAULT_MANIFEST: &str = "PULP_MANIFEST";

/// Takes `manifest` out of a publication body.
pub fn options(body: &mut Map<String, Value>) -> Result<Value, (String, String)> {
    let manifest = match body.remove("manifest") {
        None => Value::String(DEFAULT_MANIFEST.to_string()),
        Some(Value::Null) => Value::Null,
        Some(Value::String(s)) => {
            check_relative_path(&s)
                .map_err(|e| ("manifest".to_string(), format!("Invalid file name: {e}")))?;
            Value::String(s)
        }
        Some(_) => return Err(("manifest".into(), "Not a valid string.".into())),
    };
    Ok(json!({ "manifest": manifest }))
}

/// The manifest name of a mirror sync's publication: the last segment of the remote's URL, as
/// pulp_file names it (the manifest the remote serves), or [`DEFAULT_MANIFEST`] when that is
/// not a plain file name.
pub fn mirror_manifest_name(remote_url: &str) -> String {
    let name = url::Url::parse(remote_url)
        .ok()
        .and_then(|u| {
            u.path_segments()
                .and_then(|mut s| s.next_back().map(str::to_string))
        })
        .map(|s| {
            percent_encoding::percent_decode_str(&s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    if name.is_empty() || name.contains('/') || check_relative_path(&name).is_err() {
        DEFAULT_MANIFEST.to_string()
    } else {
        name
    }
}

/// The OpenAPI properties of a file publication's own fields.
pub fn schema() -> Value {
    json!({"manifest": {
        "type": "string",
        "nullable": true,
        "default": DEFAULT_MANIFEST,
        "description": "Filename that will be used to hold content unit references."
    }})
}

/// The publication's manifest path (none when its `manifest` is null).
pub fn manifest_name(plugin_data: &Value) -> Option<&str> {
    plugin_data.get("manifest").and_then(Value::as_str)
}

/// The manifest line of `file`, or why it cannot have one.
pub fn manifest_line(name: &str, file: &ServedFile) -> Result<String, String> {
    if file.relative_path == name {
        return Err(format!(
            "the manifest {name:?} would hide a file of the version at the same path"
        ));
    }
    let sha256 = file
        .sha256()
        .ok_or_else(|| format!("{}: digest unknown", file.relative_path))?;
    let size = file
        .size()
        .ok_or_else(|| format!("{}: size unknown", file.relative_path))?;
    Ok(format!("{},{sha256},{size}\n", file.relative_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_manifest_names() {
        assert_eq!(
            mirror_manifest_name("http://h/repo/PULP_MANIFEST"),
            "PULP_MANIFEST"
        );
        assert_eq!(mirror_manifest_name("file:///srv/r/LIST%20A?x"), "LIST A");
        assert_eq!(mirror_manifest_name("http://h/repo/"), DEFAULT_MANIFEST);
        assert_eq!(mirror_manifest_name("http://h/a/%2E%2E"), DEFAULT_MANIFEST);
        assert_eq!(mirror_manifest_name("not a url"), DEFAULT_MANIFEST);
    }
}
