//! The field rules the REST API and the task functions share: a JSON object read field by
//! field ([`Fields`]), each error naming its field the way pulpcore does
//! (`{"url": ["This field is required."]}`), and the rules of remotes ([`apply_remote`]) and
//! repositories ([`apply_repository`]).
//!
//! The API validates a body with them at request time (a [`FieldErrors`] becomes a 400 through
//! `From<FieldErrors> for ApiError`); the update tasks apply the same body at run time, against
//! the row as it is then. This module knows neither HTTP nor tasks: it sits below both
//! (`api` -> `tasks` -> `validation` -> `plugins` / `href` -> `models`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::href;
use crate::models::{Policy, Remote, Repository};
use crate::plugins::{Plugin, PluginField};

/// Errors of a body, by field (`non_field_errors` for the body as a whole). The REST API answers
/// them as a 400 with this map as the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

impl FieldErrors {
    /// One error naming one field.
    pub fn field(field: &str, message: impl Into<String>) -> FieldErrors {
        let mut m = BTreeMap::new();
        m.insert(field.to_string(), vec![message.into()]);
        FieldErrors(m)
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for (field, messages) in &self.0 {
            for m in messages {
                if !first {
                    f.write_str("; ")?;
                }
                first = false;
                write!(f, "{field}: {m}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for FieldErrors {}

/// The plugin whose repositories, remotes, distributions, publications or content have this
/// `pulp_type`.
pub fn plugin_for(plugins: &[Arc<dyn Plugin>], pulp_type: &str) -> Option<Arc<dyn Plugin>> {
    plugins.iter().find(|p| p.owns_type(pulp_type)).cloned()
}

/// Applies the plugin `fields` found in `f` onto `data` (a JSON object; a field missing from
/// it gets its default), checking each value against the field's schema `type` (`string`,
/// `boolean`, `integer`, `array` of strings, `object`) and `nullable`.
/// Unless `partial`, a required field must be given.
pub fn apply_plugin_fields(
    f: &mut Fields,
    fields: &[PluginField],
    data: &Value,
    partial: bool,
) -> Value {
    let mut data = match data {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    for field in fields {
        let name = field.name;
        if !data.contains_key(name) {
            data.insert(name.to_string(), field.default.clone());
        }
        if !f.has(name) {
            if field.required && !partial {
                f.error(name, "This field is required.");
            }
            continue;
        }
        let v = f.value(name).unwrap_or(Value::Null);
        let nullable = field.schema["nullable"].as_bool().unwrap_or(false);
        let ok = match (&v, field.schema["type"].as_str()) {
            (Value::Null, _) => nullable,
            (Value::String(_), Some("string")) => true,
            (Value::Bool(_), Some("boolean")) => true,
            (Value::Number(n), Some("integer")) => n.as_i64().is_some(),
            (Value::Array(items), Some("array")) => items.iter().all(Value::is_string),
            (Value::Object(_), Some("object")) => true,
            _ => false,
        };
        if ok {
            data.insert(name.to_string(), v);
        } else {
            let msg = match field.schema["type"].as_str() {
                _ if v.is_null() => "This field may not be null.",
                Some("boolean") => "Must be a valid boolean.",
                Some("integer") => "A valid integer is required.",
                Some("array") => "Expected a list of strings.",
                Some("object") => "Expected a dictionary of items.",
                _ => "Not a valid string.",
            };
            f.error(name, msg);
        }
    }
    Value::Object(data)
}

/// Takes typed fields out of a body, collecting one error list per field.
///
/// Getters return `None` when the field is absent, null or of the wrong type (the last one
/// records an error). Call [`Fields::finish`] last: it fails with every error collected, and
/// with "Unexpected field." for each field no getter took.
pub struct Fields {
    map: Map<String, Value>,
    errors: BTreeMap<String, Vec<String>>,
}

impl Fields {
    pub fn new(map: Map<String, Value>) -> Fields {
        Fields {
            map,
            errors: BTreeMap::new(),
        }
    }

    /// Records an error against `field`.
    pub fn error(&mut self, field: &str, message: impl Into<String>) {
        self.errors
            .entry(field.to_string())
            .or_default()
            .push(message.into());
    }

    /// Whether the body carries `field` (null included).
    pub fn has(&self, field: &str) -> bool {
        self.map.contains_key(field)
    }

    /// Whether the body carries `field` as an explicit null.
    pub fn is_null(&self, field: &str) -> bool {
        matches!(self.map.get(field), Some(Value::Null))
    }

    /// Takes the raw value (null included).
    pub fn value(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field)
    }

    /// Takes a name as DRF's `CharField` reads one: surrounding whitespace trimmed, then an
    /// empty one is "This field may not be blank." (also when not `required`: a PATCH may not
    /// blank a name either).
    pub fn name(&mut self, field: &str, required: bool) -> Option<String> {
        let raw = self.string(field, required)?;
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            self.error(field, "This field may not be blank.");
            return None;
        }
        Some(trimmed.to_string())
    }

    /// Takes a string; `required` records "This field is required." when absent or null.
    pub fn string(&mut self, field: &str, required: bool) -> Option<String> {
        match self.map.remove(field) {
            None | Some(Value::Null) => {
                if required {
                    self.error(field, "This field is required.");
                }
                None
            }
            Some(Value::String(s)) => {
                if required && s.is_empty() {
                    self.error(field, "This field may not be blank.");
                    None
                } else {
                    Some(s)
                }
            }
            Some(_) => {
                self.error(field, "Not a valid string.");
                None
            }
        }
    }

    /// Takes a boolean.
    pub fn boolean(&mut self, field: &str) -> Option<bool> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            Some(_) => {
                self.error(field, "Must be a valid boolean.");
                None
            }
        }
    }

    /// Takes a non-negative integer.
    pub fn uint(&mut self, field: &str) -> Option<u64> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            Some(_) => {
                self.error(field, "A valid non-negative integer is required.");
                None
            }
        }
    }

    /// Takes a number.
    pub fn number(&mut self, field: &str) -> Option<f64> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                self.error(field, "A valid number is required.");
                None
            }
        }
    }

    /// Takes a list of strings.
    pub fn string_list(&mut self, field: &str) -> Option<Vec<String>> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) => out.push(s),
                        _ => {
                            self.error(field, "Expected a list of strings.");
                            return None;
                        }
                    }
                }
                Some(out)
            }
            Some(_) => {
                self.error(field, "Expected a list of items.");
                None
            }
        }
    }

    /// Takes an object whose values are strings (`pulp_labels`).
    pub fn string_map(&mut self, field: &str) -> Option<BTreeMap<String, String>> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                let mut out = BTreeMap::new();
                for (k, v) in m {
                    match v {
                        Value::String(s) => {
                            out.insert(k, s);
                        }
                        _ => {
                            self.error(field, "Values must be strings.");
                            return None;
                        }
                    }
                }
                Some(out)
            }
            Some(_) => {
                self.error(field, "Expected a dictionary of items.");
                None
            }
        }
    }

    /// Fails with every collected error and every field nobody took.
    pub fn finish(mut self) -> Result<(), FieldErrors> {
        let rest: Vec<String> = self.map.keys().cloned().collect();
        for field in rest {
            self.error(&field, "Unexpected field.");
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(FieldErrors(self.errors))
        }
    }
}

// ---- remotes and repositories -----------------------------------------------------------------

/// Absent: `None`; null: `Some(None)`; a string: `Some(Some(s))`.
fn nullable_string(f: &mut Fields, name: &str) -> Option<Option<String>> {
    if !f.has(name) {
        return None;
    }
    if f.is_null(name) {
        f.value(name);
        return Some(None);
    }
    f.string(name, false).map(Some)
}

fn nullable_uint(f: &mut Fields, name: &str, min: u64) -> Option<Option<u64>> {
    if !f.has(name) {
        return None;
    }
    if f.is_null(name) {
        f.value(name);
        return Some(None);
    }
    let v = f.uint(name)?;
    if v < min {
        f.error(
            name,
            format!("Ensure this value is greater than or equal to {min}."),
        );
        return None;
    }
    Some(Some(v))
}

fn nullable_u32(f: &mut Fields, name: &str, min: u64) -> Option<Option<u32>> {
    match nullable_uint(f, name, min)? {
        None => Some(None),
        Some(v) => match u32::try_from(v) {
            Ok(v) => Some(Some(v)),
            Err(_) => {
                f.error(
                    name,
                    "Ensure this value is less than or equal to 4294967295.",
                );
                None
            }
        },
    }
}

fn nullable_seconds(f: &mut Fields, name: &str) -> Option<Option<f64>> {
    if !f.has(name) {
        return None;
    }
    if f.is_null(name) {
        f.value(name);
        return Some(None);
    }
    let v = f.number(name)?;
    if v < 0.0 {
        f.error(name, "Ensure this value is greater than or equal to 0.0.");
        return None;
    }
    Some(Some(v))
}

/// The names of a remote's write-only fields, in pulpcore's `hidden_fields` order.
pub const HIDDEN_FIELDS: &[&str] = &[
    "client_key",
    "proxy_username",
    "proxy_password",
    "username",
    "password",
];

/// Which URL of a remote [`check_remote_url`] checks.
struct UrlField {
    /// What the messages call it.
    label: &'static str,
    schemes: &'static [&'static str],
    /// The fields that hold its credentials.
    username: &'static str,
    password: &'static str,
}

const REMOTE_URL: UrlField = UrlField {
    label: "URL",
    schemes: &["http", "https", "file"],
    username: "username",
    password: "password",
};

const PROXY_URL: UrlField = UrlField {
    label: "proxy URL",
    schemes: &["http", "https"],
    username: "proxy_username",
    password: "proxy_password",
};

/// Checks a remote's `url` or `proxy_url`: it parses, its scheme is one `field` allows, and
/// it carries no credentials (a username alone included): those belong in the write-only
/// fields, which are never shown, while the URL is. No message repeats any part of the URL.
fn check_remote_url(value: &str, field: UrlField) -> Result<(), String> {
    let Ok(url) = url::Url::parse(value) else {
        return Err("Enter a valid URL.".to_string());
    };
    if !field.schemes.contains(&url.scheme()) {
        return Err(format!(
            "The {} scheme must be one of: {}.",
            field.label,
            field.schemes.join(", ")
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "The {} must not contain credentials: set them in the '{}' and '{}' fields.",
            field.label, field.username, field.password
        ));
    }
    Ok(())
}

/// Checks one of a remote's `headers`: a valid HTTP header name, and a value without CR, LF,
/// NUL or other control characters (a tab is allowed), so a header cannot smuggle another
/// into the request. The message names the header, never its value (often a token).
fn check_header(name: &str, value: &str) -> Result<(), String> {
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(
            "Header names must be valid HTTP header names (letters, digits and !#$%&'*+-.^_`|~)."
                .to_string(),
        );
    }
    if reqwest::header::HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "The value of header '{name}' must not contain control characters (CR, LF, NUL...)."
        ));
    }
    Ok(())
}

/// The PEM certificates of `text` alone (pulpcore keeps only the `CERTIFICATE` blocks of a
/// remote's `ca_cert` / `client_cert`, dropping comments and other text around them), each
/// re-encoded in the canonical 64-column form. No certificate, or a block that is not valid
/// base64 of a DER structure, is an error (its message names no part of the input).
pub fn clean_certificates(text: &str) -> Result<String, String> {
    use base64::Engine;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut out = String::new();
    for cert in CertificateDer::pem_slice_iter(text.as_bytes()) {
        let der = cert.map_err(|_| "Invalid PEM certificate.".to_string())?;
        // A DER certificate is a SEQUENCE.
        if der.first() != Some(&0x30) {
            return Err("Invalid PEM certificate.".into());
        }
        let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    if out.is_empty() {
        return Err("No valid PEM certificate found.".into());
    }
    Ok(out)
}

/// `current` with the fields of `body` applied. `partial` (PATCH) keeps what the body does not
/// name; otherwise (POST, PUT) `name` and `url` are required and the rest get their defaults.
pub fn apply_remote(
    plugin: &dyn Plugin,
    current: &Remote,
    body: Map<String, Value>,
    partial: bool,
) -> Result<Remote, FieldErrors> {
    let mut r = if partial {
        current.clone()
    } else {
        let mut fresh = Remote::new(&current.pulp_type, "", "", Policy::Immediate);
        fresh.id = current.id;
        fresh.pulp_created = current.pulp_created;
        fresh
    };
    let mut f = Fields::new(body);
    if let Some(name) = f.name("name", !partial) {
        r.name = name;
    } else if partial && f.is_null("name") {
        f.value("name");
        f.error("name", "This field may not be null.");
    }
    if let Some(url) = f.string("url", !partial) {
        if url.is_empty() {
            f.error("url", "This field may not be blank.");
        } else if let Err(e) = check_remote_url(&url, REMOTE_URL) {
            f.error("url", e);
        }
        r.url = url;
    } else if partial && f.is_null("url") {
        f.value("url");
        f.error("url", "This field may not be null.");
    }
    macro_rules! opt_str {
        ($field:ident) => {
            if let Some(v) = nullable_string(&mut f, stringify!($field)) {
                r.$field = v;
            }
        };
    }
    for (name, slot) in [
        ("ca_cert", &mut r.ca_cert),
        ("client_cert", &mut r.client_cert),
    ] {
        if let Some(v) = nullable_string(&mut f, name) {
            match v.as_deref().map(clean_certificates).transpose() {
                Ok(cleaned) => *slot = cleaned,
                Err(e) => f.error(name, e),
            }
        }
    }
    opt_str!(client_key);
    if let Some(v) = nullable_string(&mut f, "proxy_url") {
        // An empty proxy URL is no proxy (the downloader reads it so).
        if let Some(proxy) = v.as_deref().filter(|p| !p.is_empty()) {
            if let Err(e) = check_remote_url(proxy, PROXY_URL) {
                f.error("proxy_url", e);
            }
        }
        r.proxy_url = v;
    }
    opt_str!(proxy_username);
    opt_str!(proxy_password);
    opt_str!(username);
    opt_str!(password);
    if let Some(b) = f.boolean("tls_validation") {
        r.tls_validation = b;
    }
    if let Some(l) = f.string_map("pulp_labels") {
        r.pulp_labels = l;
    }
    if let Some(v) = nullable_u32(&mut f, "download_concurrency", 1) {
        r.download_concurrency = v;
    }
    if let Some(v) = nullable_u32(&mut f, "max_retries", 0) {
        r.max_retries = v;
    }
    if let Some(v) = nullable_u32(&mut f, "rate_limit", 0) {
        r.rate_limit = v;
    }
    if let Some(p) = f.string("policy", false) {
        match p.parse::<Policy>() {
            Ok(p) => r.policy = p,
            Err(_) => f.error("policy", format!("\"{p}\" is not a valid choice.")),
        }
    }
    macro_rules! secs {
        ($field:ident) => {
            if let Some(v) = nullable_seconds(&mut f, stringify!($field)) {
                r.$field = v;
            }
        };
    }
    secs!(total_timeout);
    secs!(connect_timeout);
    secs!(sock_connect_timeout);
    secs!(sock_read_timeout);
    if f.has("headers") {
        match f.value("headers") {
            Some(Value::Null) => r.headers = Vec::new(),
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                let mut ok = true;
                for item in items {
                    match item {
                        Value::Object(m) => {
                            for (k, v) in m {
                                match v {
                                    Value::String(s) => out.push((k, s)),
                                    _ => ok = false,
                                }
                            }
                        }
                        _ => ok = false,
                    }
                }
                if !ok {
                    f.error(
                        "headers",
                        "Expected a list of {\"name\": \"value\"} objects.",
                    );
                } else {
                    let errors: Vec<String> = out
                        .iter()
                        .filter_map(|(name, value)| check_header(name, value).err())
                        .collect();
                    if errors.is_empty() {
                        r.headers = out;
                    }
                    for e in errors {
                        f.error("headers", e);
                    }
                }
            }
            Some(_) => f.error("headers", "Expected a list of items."),
            None => {}
        }
    }
    let remote_fields = plugin.remote_fields();
    if !partial {
        r.plugin_data = json!({});
    }
    r.plugin_data = apply_plugin_fields(&mut f, &remote_fields, &r.plugin_data, partial);
    if let Err((field, message)) = plugin.check_remote_fields(&r.plugin_data) {
        f.error(&field, message);
    }
    f.finish()?;
    Ok(r)
}

/// A remote href of `plugin`'s kind, as an id.
pub fn parse_remote_href(plugin: &dyn Plugin, value: &str) -> Option<Uuid> {
    let names = plugin.api_names();
    let p = href::parse(value)?;
    (p.collection == ["remotes", names.app_label, names.kind] && p.rest.is_empty()).then_some(p.id)
}

/// `current` with the fields of `body` applied (see [`apply_remote`]); `remote` is checked to
/// be an href of the plugin's remotes, not that it exists.
pub fn apply_repository(
    plugin: &dyn Plugin,
    current: &Repository,
    body: Map<String, Value>,
    partial: bool,
) -> Result<Repository, FieldErrors> {
    let mut r = current.clone();
    let mut f = Fields::new(body);
    if !partial {
        r.description = None;
        r.remote_id = None;
        r.pulp_labels = Default::default();
        r.retain_repo_versions = None;
        r.plugin_data = json!({});
    }
    if let Some(name) = f.name("name", !partial) {
        r.name = name;
    } else if partial && f.is_null("name") {
        f.value("name");
        f.error("name", "This field may not be null.");
    }
    if let Some(d) = nullable_string(&mut f, "description") {
        r.description = d;
    }
    if let Some(v) = nullable_uint(&mut f, "retain_repo_versions", 1) {
        r.retain_repo_versions = v;
    }
    if let Some(l) = f.string_map("pulp_labels") {
        r.pulp_labels = l;
    }
    if let Some(remote) = nullable_string(&mut f, "remote") {
        match remote {
            None => r.remote_id = None,
            Some(h) => match parse_remote_href(plugin, &h) {
                Some(id) => r.remote_id = Some(id),
                None => f.error("remote", "Invalid hyperlink - Object does not exist."),
            },
        }
    }
    r.plugin_data =
        apply_plugin_fields(&mut f, &plugin.repository_fields(), &r.plugin_data, partial);
    f.finish()?;
    Ok(r)
}
