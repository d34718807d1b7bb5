//! OpenPGP checks of Release files with the remote's `gpgkey` (rPGP, pure Rust).
//!
//! [`Keyring::parse`] reads one or several ASCII-armored public key blocks. A clearsigned
//! `InRelease` ([`Keyring::verify_clearsigned`]) or a `Release` with its detached `Release.gpg`
//! ([`Keyring::verify_detached`], armored or binary) passes when one of its signatures verifies
//! with a primary key or a subkey of the keyring. This is a cryptographic check only: key
//! expiry and revocation are not looked at (apt's `Signed-By` does look at them).

use pgp::composed::{CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey};
use pgp::packet::Signature;

/// The keys a remote trusts.
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.keys.len())
            .finish()
    }
}

const KEY_BLOCK: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";

impl Keyring {
    /// Every public key of the armored blocks in `armored`.
    pub fn parse(armored: &str) -> Result<Keyring, String> {
        let mut keys = Vec::new();
        let starts: Vec<usize> = armored.match_indices(KEY_BLOCK).map(|(i, _)| i).collect();
        if starts.is_empty() {
            return Err("gpgkey holds no ASCII-armored public key block".into());
        }
        for (n, start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(armored.len());
            let block = &armored[*start..end];
            let (parsed, _) = SignedPublicKey::from_string_many(block)
                .map_err(|e| format!("gpgkey block {}: {e}", n + 1))?;
            for key in parsed {
                keys.push(key.map_err(|e| format!("gpgkey block {}: {e}", n + 1))?);
            }
        }
        if keys.is_empty() {
            return Err("gpgkey holds no public key".into());
        }
        Ok(Keyring { keys })
    }

    /// How many primary keys the keyring holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `sig` verifies `data` with one of the keys or subkeys.
    fn verifies(&self, sig: &Signature, data: &[u8]) -> bool {
        for key in &self.keys {
            if sig.verify(&key.primary_key, data).is_ok() {
                return true;
            }
            for sub in &key.public_subkeys {
                if sig.verify(&sub.key, data).is_ok() {
                    return true;
                }
            }
        }
        false
    }

    /// Checks a clearsigned message (an InRelease file).
    pub fn verify_clearsigned(&self, text: &str) -> Result<(), String> {
        let (msg, _) = CleartextSignedMessage::from_string(text)
            .map_err(|e| format!("not a clearsigned message: {e}"))?;
        if msg.signatures().is_empty() {
            return Err("no signature".into());
        }
        let signed = msg.signed_text();
        let ok = msg
            .signatures()
            .iter()
            .any(|sig| self.verifies(sig, signed.as_bytes()));
        match ok {
            true => Ok(()),
            false => Err("no signature made by a key of the remote's gpgkey verifies".into()),
        }
    }

    /// Checks `data` (a Release file) against a detached signature (Release.gpg).
    pub fn verify_detached(&self, data: &[u8], signature: &[u8]) -> Result<(), String> {
        let (sig, _) = DetachedSignature::from_reader_single(signature)
            .map_err(|e| format!("not an OpenPGP signature: {e}"))?;
        match self.verifies(&sig.signature, data) {
            true => Ok(()),
            false => Err("the signature was not made by a key of the remote's gpgkey".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_a_gpgkey_without_a_key_block() {
        assert!(Keyring::parse("hello")
            .unwrap_err()
            .contains("no ASCII-armored"));
        assert!(Keyring::parse(&format!("{KEY_BLOCK}\nnot base64\n")).is_err());
    }
}
