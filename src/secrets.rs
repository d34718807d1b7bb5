//! Secrets at rest: remote passwords, proxy passwords and client keys (and the same fields in
//! the arguments of a dispatched remote update) are stored encrypted with a key file named by
//! the `db_encryption_key` setting (pulpcore's `DB_ENCRYPTION_KEY`).
//!
//! - The key file holds one line: 32 random bytes, base64. [`SecretBox::load_or_generate`]
//!   reads it, or creates it (mode 0600, refusing to overwrite) when it is the default file,
//!   `<data_dir>/db_encryption.key`, and missing.
//! - A stored secret is `enc:v1:<key id>:<base64(nonce || ciphertext)>`: XChaCha20-Poly1305
//!   with a random 24-byte nonce per value (random nonces are safe at that size), the key id
//!   being the first 16 hex digits of the key's SHA-256 (it names the key, it reveals nothing
//!   of it). A value without the prefix is plaintext from before encryption: it is read as is,
//!   and encrypted when written again or when the key rotates.
//! - The database records the id of the key its secrets are encrypted with; a process whose
//!   key has another id refuses to start (see `server::open`), so two machines can never
//!   write with different keys.
//! - `pulp-rs rotate-db-key --new-key FILE` re-encrypts every secret (and the secrets in task
//!   arguments) with the new key in one transaction, and records the new key id.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The prefix of an encrypted value.
pub const PREFIX: &str = "enc:v1:";

/// The remote fields (and remote-update task argument members) that are secrets.
pub const SECRET_FIELDS: &[&str] = &["password", "proxy_password", "client_key"];

/// Errors of the secrets layer.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("database encryption key file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database encryption key file {0}: not 32 bytes of base64")]
    BadKey(PathBuf),
    #[error("a secret is encrypted with key {found}, not with this process's key {ours}")]
    WrongKey { found: String, ours: String },
    #[error("a stored secret cannot be decrypted (corrupt, or another key)")]
    Corrupt,
    #[error("a secret is encrypted but no database encryption key is configured")]
    NoKey,
}

/// The key that encrypts and decrypts secrets; without one, values pass through as they are
/// (only tests and tools that never hold secrets open a store without a key).
#[derive(Clone, Default)]
pub struct SecretBox {
    key: Option<([u8; 32], String)>,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("key_id", &self.key_id())
            .finish()
    }
}

fn key_id(key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(key)[..8])
}

impl SecretBox {
    /// No key: values are stored and read as they are.
    pub fn none() -> SecretBox {
        SecretBox::default()
    }

    /// The box of a raw key.
    pub fn from_key(key: [u8; 32]) -> SecretBox {
        let id = key_id(&key);
        SecretBox {
            key: Some((key, id)),
        }
    }

    /// A new random key.
    pub fn generate() -> SecretBox {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        SecretBox::from_key(key)
    }

    /// The key's id (what stored values and the database name it by).
    pub fn key_id(&self) -> Option<&str> {
        self.key.as_ref().map(|(_, id)| id.as_str())
    }

    /// Reads the key file at `path`.
    pub fn load(path: &Path) -> Result<SecretBox, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let raw = STANDARD
            .decode(text.trim())
            .map_err(|_| SecretError::BadKey(path.to_path_buf()))?;
        let key: [u8; 32] = raw
            .try_into()
            .map_err(|_| SecretError::BadKey(path.to_path_buf()))?;
        Ok(SecretBox::from_key(key))
    }

    /// Writes this box's key to a new file at `path` (mode 0600; an existing file is an
    /// error, never overwritten).
    pub fn write_new(&self, path: &Path) -> Result<(), SecretError> {
        use std::io::Write;
        let Some((key, _)) = &self.key else {
            return Err(SecretError::NoKey);
        };
        let io = |source| SecretError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(io)?;
        writeln!(f, "{}", STANDARD.encode(key)).map_err(io)?;
        f.sync_all().map_err(io)
    }

    /// The key at `path`; when missing and `generate` is set, a new key written there first.
    pub fn load_or_generate(path: &Path, generate: bool) -> Result<SecretBox, SecretError> {
        if generate && !path.exists() {
            let new = SecretBox::generate();
            match new.write_new(path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "generated the database encryption key");
                    return Ok(new);
                }
                // Another process made it meanwhile: read theirs.
                Err(SecretError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        SecretBox::load(path)
    }

    /// `value` as stored: encrypted when there is a key.
    pub fn encrypt(&self, value: &str) -> String {
        let Some((key, id)) = &self.key else {
            return value.to_string();
        };
        let cipher = XChaCha20Poly1305::new(key.into());
        let mut nonce = [0u8; 24];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(&XNonce::from(nonce), value.as_bytes())
            .expect("XChaCha20-Poly1305 encrypts any message of a String's size");
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        format!("{PREFIX}{id}:{}", STANDARD.encode(blob))
    }

    /// A stored value in clear: decrypted when it has the prefix, as it is otherwise.
    pub fn decrypt(&self, stored: &str) -> Result<String, SecretError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string());
        };
        let Some((key, ours)) = &self.key else {
            return Err(SecretError::NoKey);
        };
        let (id, body) = rest.split_once(':').ok_or(SecretError::Corrupt)?;
        if id != ours {
            return Err(SecretError::WrongKey {
                found: id.to_string(),
                ours: ours.clone(),
            });
        }
        let blob = STANDARD.decode(body).map_err(|_| SecretError::Corrupt)?;
        if blob.len() < 24 {
            return Err(SecretError::Corrupt);
        }
        let (nonce, sealed) = blob.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| SecretError::Corrupt)?;
        let cipher = XChaCha20Poly1305::new(key.into());
        let clear = cipher
            .decrypt(&XNonce::from(nonce), sealed)
            .map_err(|_| SecretError::Corrupt)?;
        String::from_utf8(clear).map_err(|_| SecretError::Corrupt)
    }

    /// `Some` value encrypted.
    pub fn encrypt_opt(&self, value: Option<&str>) -> Option<String> {
        value.map(|v| self.encrypt(v))
    }

    /// `Some` stored value in clear.
    pub fn decrypt_opt(&self, stored: Option<String>) -> Result<Option<String>, SecretError> {
        stored.map(|s| self.decrypt(&s)).transpose()
    }

    /// Encrypts (in place) the string members of `object` named in [`SECRET_FIELDS`].
    pub fn encrypt_members(&self, object: &mut serde_json::Map<String, serde_json::Value>) {
        for field in SECRET_FIELDS {
            if let Some(serde_json::Value::String(s)) = object.get_mut(*field) {
                if !s.starts_with(PREFIX) {
                    *s = self.encrypt(s);
                }
            }
        }
    }

    /// Decrypts (in place) the string members of `object` named in [`SECRET_FIELDS`].
    pub fn decrypt_members(
        &self,
        object: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), SecretError> {
        for field in SECRET_FIELDS {
            if let Some(serde_json::Value::String(s)) = object.get_mut(*field) {
                *s = self.decrypt(s)?;
            }
        }
        Ok(())
    }

    /// A copy of `r` as stored: its secrets encrypted.
    pub fn seal_remote(&self, r: &crate::models::Remote) -> crate::models::Remote {
        let mut sealed = r.clone();
        sealed.password = self.encrypt_opt(r.password.as_deref());
        sealed.proxy_password = self.encrypt_opt(r.proxy_password.as_deref());
        sealed.client_key = self.encrypt_opt(r.client_key.as_deref());
        sealed
    }

    /// A remote as read from the database, its secrets decrypted.
    pub fn open_remote(
        &self,
        mut r: crate::models::Remote,
    ) -> Result<crate::models::Remote, SecretError> {
        r.password = self.decrypt_opt(r.password.take())?;
        r.proxy_password = self.decrypt_opt(r.proxy_password.take())?;
        r.client_key = self.decrypt_opt(r.client_key.take())?;
        Ok(r)
    }

    /// `stored` re-encrypted from `old` to `self` (plaintext encrypted).
    pub fn reencrypt(&self, old: &SecretBox, stored: &str) -> Result<String, SecretError> {
        Ok(self.encrypt(&old.decrypt(stored)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_plaintext_passthrough() {
        let b = SecretBox::generate();
        let stored = b.encrypt("hunter2");
        assert!(stored.starts_with(PREFIX));
        assert!(!stored.contains("hunter2"));
        assert_ne!(stored, b.encrypt("hunter2"), "a fresh nonce per value");
        assert_eq!(b.decrypt(&stored).unwrap(), "hunter2");
        assert_eq!(b.decrypt("legacy plaintext").unwrap(), "legacy plaintext");
        let other = SecretBox::generate();
        assert!(matches!(
            other.decrypt(&stored),
            Err(SecretError::WrongKey { .. })
        ));
        assert!(matches!(
            SecretBox::none().decrypt(&stored),
            Err(SecretError::NoKey)
        ));
        // A tampered value is refused.
        let mut tampered = stored.clone();
        tampered.pop();
        tampered.push(if stored.ends_with('A') { 'B' } else { 'A' });
        assert!(b.decrypt(&tampered).is_err());
    }

    #[test]
    fn key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let a = SecretBox::load_or_generate(&path, true).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = SecretBox::load_or_generate(&path, true).unwrap();
        assert_eq!(a.key_id(), b.key_id());
        assert!(SecretBox::load_or_generate(&dir.path().join("missing"), false).is_err());
    }
}
