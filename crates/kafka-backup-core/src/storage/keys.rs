//! Envelope keys of encrypted backups: the operator's key-encryption keys (from a file or an
//! environment variable), and the per-backup data key they wrap, stored as `encryption.json`.

use std::fmt;

use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// The AEAD every sealed object uses.
pub const ALGORITHM: &str = "AES-256-GCM";
const WRAP_AAD: &[u8] = b"kafka-backup data key v1";

/// 32 secret bytes; `Debug` shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct KeyBytes(pub(crate) [u8; 32]);

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A key-encryption key and its id (the id is stored with each backup; the key never is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionKey {
    id: String,
    key: KeyBytes,
}

impl EncryptionKey {
    /// A key from its base64 text (32 bytes once decoded); `from` names where it came from, for
    /// errors (which never show the text). The id defaults to one derived from the key.
    pub fn from_base64(text: &str, id: Option<String>, from: &str) -> Result<Self, String> {
        let decoded = base64::engine::general_purpose::STANDARD.decode(text.trim()).map_err(|_| {
            format!("{from} is not base64 (expected 32 random bytes, base64: `openssl rand -base64 32`)")
        })?;
        let key: [u8; 32] = decoded.try_into().map_err(|bytes: Vec<u8>| {
            format!("{from} decodes to {} bytes; an AES-256 key is 32 bytes (`openssl rand -base64 32`)", bytes.len())
        })?;
        let id = match id {
            Some(id) if id.trim().is_empty() => return Err(format!("the key id of {from} is empty")),
            Some(id) => id,
            None => derived_id(&key),
        };
        Ok(Self { id, key: KeyBytes(key) })
    }

    /// Reads the key from a file holding its base64 text.
    pub fn from_file(path: &std::path::Path, id: Option<String>) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("cannot read the encryption key file {}: {error}", path.display()))?;
        Self::from_base64(&text, id, &format!("the encryption key file {}", path.display()))
    }

    /// Reads the key from an environment variable holding its base64 text.
    pub fn from_env(variable: &str, id: Option<String>) -> Result<Self, String> {
        let text = std::env::var(variable)
            .map_err(|_| format!("the environment variable {variable} (the encryption key) is not set"))?;
        Self::from_base64(&text, id, &format!("the environment variable {variable}"))
    }

    /// The key's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// `sha256:` and the first 8 bytes of the key's SHA-256, hex: names a key without revealing it.
fn derived_id(key: &[u8; 32]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key);
    let hex: String = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The keys an operator gives: the first wraps the data keys of new backups, every one opens
/// the backups it wrapped (key rotation: the old key stays as an additional key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    keys: Vec<EncryptionKey>,
}

impl Keyring {
    /// The primary key and the additional ones; two different keys with one id are an error.
    pub fn new(primary: EncryptionKey, additional: Vec<EncryptionKey>) -> Result<Self, String> {
        let mut keys: Vec<EncryptionKey> = Vec::new();
        for key in std::iter::once(primary).chain(additional) {
            match keys.iter().find(|k| k.id == key.id) {
                // The same key given twice (in the config and on the command line).
                Some(known) if known.key == key.key => {}
                Some(_) => {
                    return Err(format!("two encryption keys have the id {}; give each key its own key_id", key.id))
                }
                None => keys.push(key),
            }
        }
        Ok(Self { keys })
    }

    /// The key new backups are encrypted with.
    pub fn primary(&self) -> &EncryptionKey {
        &self.keys[0]
    }

    fn by_id(&self, id: &str) -> Option<&EncryptionKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// The keys, the primary first.
    pub fn into_keys(self) -> Vec<EncryptionKey> {
        self.keys
    }

    /// The ids of every key, for messages.
    pub fn ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }
}

/// The stored `encryption.json` of a backup: which key wraps its data key, and the wrapped key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataKeyRecord {
    /// Format of this record.
    pub format_version: u32,
    /// AEAD of the sealed objects.
    pub algorithm: String,
    /// Id of the key-encryption key that wraps the data key.
    pub key_id: String,
    /// Nonce, data key and tag, base64 (AES-256-GCM under the key-encryption key).
    pub wrapped_data_key: String,
    /// When the backup's encryption was set up (epoch ms).
    pub created_at_ms: i64,
}

impl DataKeyRecord {
    /// A new random data key, wrapped with the keyring's primary key.
    pub(crate) fn generate(keyring: &Keyring, now_ms: i64) -> (Self, KeyBytes) {
        let random = SystemRandom::new();
        let (mut data_key, mut nonce) = ([0u8; 32], [0u8; NONCE_LEN]);
        random.fill(&mut data_key).expect("the system random generator works");
        random.fill(&mut nonce).expect("the system random generator works");
        let primary = keyring.primary();
        let mut wrapped = data_key.to_vec();
        aead_key(&primary.key)
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(WRAP_AAD), &mut wrapped)
            .expect("32 bytes seal");
        let stored = [nonce.as_slice(), &wrapped].concat();
        let record = Self {
            format_version: 1,
            algorithm: ALGORITHM.into(),
            key_id: primary.id.clone(),
            wrapped_data_key: base64::engine::general_purpose::STANDARD.encode(stored),
            created_at_ms: now_ms,
        };
        (record, KeyBytes(data_key))
    }

    /// The data key, unwrapped with the keyring's key of the record's id; `Ok(None)` when the
    /// keyring has no key of that id (the backup stays locked).
    pub(crate) fn unwrap_with(&self, keyring: &Keyring) -> Result<Option<KeyBytes>, String> {
        if self.format_version != 1 || self.algorithm != ALGORITHM {
            return Err(format!(
                "it has encryption format {} with {}; this kafka-backup reads format 1 with {ALGORITHM} (upgrade it)",
                self.format_version, self.algorithm
            ));
        }
        let Some(key) = keyring.by_id(&self.key_id) else { return Ok(None) };
        let stored = base64::engine::general_purpose::STANDARD
            .decode(&self.wrapped_data_key)
            .map_err(|_| "its wrapped data key is not base64".to_string())?;
        let wrong_key = || {
            format!(
                "the key given with id {} does not open its data key: that id names another key, or the record was altered",
                self.key_id
            )
        };
        if stored.len() != NONCE_LEN + 32 + 16 {
            return Err(wrong_key());
        }
        let (nonce, wrapped) = stored.split_at(NONCE_LEN);
        let mut buffer = wrapped.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong_key())?;
        let data_key =
            aead_key(&key.key).open_in_place(nonce, Aad::from(WRAP_AAD), &mut buffer).map_err(|_| wrong_key())?;
        Ok(Some(KeyBytes(data_key.try_into().map_err(|_| wrong_key())?)))
    }
}

fn aead_key(key: &KeyBytes) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key.0).expect("a 32-byte AES-256 key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8, id: Option<&str>) -> EncryptionKey {
        let text = base64::engine::general_purpose::STANDARD.encode([byte; 32]);
        EncryptionKey::from_base64(&text, id.map(str::to_string), "test").unwrap()
    }

    #[test]
    fn keys_are_32_bytes_of_base64_and_errors_never_show_the_text() {
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 16]);
        let error = EncryptionKey::from_base64(&short, None, "KEY_VAR").unwrap_err();
        assert!(error.contains("16 bytes") && !error.contains(&short), "{error}");
        let error = EncryptionKey::from_base64("not base64 at all!", None, "KEY_VAR").unwrap_err();
        assert!(error.contains("not base64") && !error.contains("at all"), "{error}");
        assert!(key(1, None).id().starts_with("sha256:"));
        assert_ne!(key(1, None).id(), key(2, None).id());
        assert_eq!(key(1, Some("2026-q4")).id(), "2026-q4");
        assert_eq!(format!("{:?}", key(1, None)).matches("***").count(), 1);
    }

    #[test]
    fn a_data_key_unwraps_with_its_key_only() {
        let ring1 = Keyring::new(key(1, None), vec![]).unwrap();
        let (record, data_key) = DataKeyRecord::generate(&ring1, 5);
        assert_eq!(record.key_id, key(1, None).id());
        assert_eq!(record.unwrap_with(&ring1).unwrap(), Some(data_key.clone()));
        // Rotation: a new primary, the old key as an additional one.
        let rotated = Keyring::new(key(2, None), vec![key(1, None)]).unwrap();
        assert_eq!(record.unwrap_with(&rotated).unwrap(), Some(data_key));
        assert_eq!(record.unwrap_with(&Keyring::new(key(2, None), vec![]).unwrap()).unwrap(), None);
        // Another key under the same id.
        let impostor = Keyring::new(key(3, Some(&record.key_id)), vec![]).unwrap();
        assert!(record.unwrap_with(&impostor).unwrap_err().contains("does not open"));
    }

    #[test]
    fn two_keys_with_one_id_are_refused() {
        assert!(Keyring::new(key(1, Some("a")), vec![key(2, Some("a"))]).unwrap_err().contains("id a"));
    }
}
