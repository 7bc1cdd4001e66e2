//! The storage conformance suite: every backend (memory, a local directory, S3 on moto, Azure Blob
//! on azurite) gives the engine the same guarantees: conditional create, atomic replace, sorted
//! recursive listing under prefixes, "does not exist" for missing objects, children, deletes,
//! ranged reads; and the same again with every object encrypted.

use bytes::Bytes;
use kafka_backup_core::backup::BackupConfig;
use kafka_backup_core::layout::DATA_KEY_OBJECT;
use kafka_backup_core::storage::{BackupStore, EncryptionKey, Keyring, ListedObject, StorageConfig, StorageError};
use kafka_backup_testkit::{self as testkit, StoreEmulator, StoreKind};

async fn conformance(store: BackupStore) {
    store.put_new("a/b/one", Bytes::from_static(b"1")).await.unwrap();
    let again = store.put_new("a/b/one", Bytes::from_static(b"2")).await.unwrap_err();
    assert!(matches!(again, StorageError::AlreadyExists { .. }), "{again}");
    assert_eq!(store.get("a/b/one").await.unwrap(), Bytes::from_static(b"1"));
    store.put("a/b/one", Bytes::from_static(b"22")).await.unwrap();
    assert_eq!(store.size("a/b/one").await.unwrap(), Some(2));
    assert_eq!(store.size("a/b/missing").await.unwrap(), None);
    let missing = store.get("nope").await.unwrap_err();
    assert!(matches!(missing, StorageError::NotFound { .. }), "{missing}");
    assert!(missing.to_string().contains("nope"), "the error names the object: {missing}");
    store.put_new("a/c=1/two", Bytes::from_static(b"xyz")).await.unwrap();
    store.put_new("ab/three", Bytes::from_static(b"")).await.unwrap();
    // A segment-sized object (more than one S3 part) round-trips byte for byte.
    let large: Bytes = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect::<Vec<_>>().into();
    store.put_new("big/segment", large.clone()).await.unwrap();
    assert_eq!(store.get("big/segment").await.unwrap(), large);
    for range in [0..1, 5..3 * 1024 * 1024 + 9, 65_535..65_537, 12 * 1024 * 1024 - 3..12 * 1024 * 1024] {
        let part = store.get_range("big/segment", range.clone()).await.unwrap();
        assert_eq!(part, large.slice(range.start as usize..range.end as usize), "range {range:?}");
    }
    let mut listed = store.list("a").await.unwrap();
    listed.retain(|object| !object.key.ends_with(DATA_KEY_OBJECT));
    assert_eq!(
        listed,
        vec![ListedObject { key: "a/b/one".into(), size: 2 }, ListedObject { key: "a/c=1/two".into(), size: 3 }],
        "a prefix lists whole path segments only (not ab/)"
    );
    let child = store.child("a");
    assert_eq!(child.get("b/one").await.unwrap(), Bytes::from_static(b"22"));
    child.delete("b/one").await.unwrap();
    assert_eq!(store.size("a/b/one").await.unwrap(), None);
    assert!(store.list("nothing/here").await.unwrap().is_empty());

    // Streaming writes: a small object is one create-only PUT, a large one a multipart upload;
    // neither is visible before it is finished.
    let mut small = store.writer("stream/small");
    small.write(Bytes::from_static(b"tiny")).await.unwrap();
    assert_eq!(store.size("stream/small").await.unwrap(), None, "not visible before finish");
    small.finish().await.unwrap();
    assert_eq!(store.get("stream/small").await.unwrap(), Bytes::from_static(b"tiny"));
    let mut again = store.writer("stream/small");
    again.write(Bytes::from_static(b"other")).await.unwrap();
    assert!(matches!(again.finish().await, Err(StorageError::AlreadyExists { .. })), "a small object is create-only");
    let mut big = store.writer("stream/big");
    for piece in large.chunks(1024 * 1024 + 7) {
        big.write(Bytes::copy_from_slice(piece)).await.unwrap();
    }
    assert_eq!(store.size("stream/big").await.unwrap(), None, "not visible before finish");
    big.finish().await.unwrap();
    assert_eq!(store.get("stream/big").await.unwrap(), large, "parts joined in order");
    let mut abandoned = store.writer("stream/abandoned");
    abandoned.write(large.clone()).await.unwrap();
    abandoned.abort().await;
    assert_eq!(store.size("stream/abandoned").await.unwrap(), None);
    let children = store.list_children().await.unwrap();
    assert_eq!(children, vec!["a".to_string(), "ab".into(), "big".into(), "stream".into()]);
}

#[tokio::test]
async fn memory_store_conforms() {
    conformance(BackupStore::open(&StorageConfig::Memory { prefix: "p".into() }).unwrap()).await;
}

#[tokio::test]
async fn filesystem_store_conforms_and_leaves_no_staging_files() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::Filesystem { path: dir.path().join("root"), prefix: "pre/fix".into() };
    conformance(BackupStore::open(&config).unwrap()).await;
    let names: Vec<_> = files_under(dir.path()).into_iter().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        vec![
            "root/pre/fix/a/c=1/two",
            "root/pre/fix/ab/three",
            "root/pre/fix/big/segment",
            "root/pre/fix/stream/big",
            "root/pre/fix/stream/small"
        ]
    );
}

/// Every file under `dir`: its path relative to `dir` and its bytes, sorted by path.
fn files_under(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let relative = |path: std::path::PathBuf| path.strip_prefix(dir).unwrap().display().to_string();
    testkit::files_under(dir).into_iter().map(|(path, bytes)| (relative(path), bytes)).collect()
}

const KEY_7: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
const KEY_8: &str = "CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=";

fn keyring(text: &str) -> Keyring {
    Keyring::new(EncryptionKey::from_base64(text, None, "test key").unwrap(), vec![]).unwrap()
}

/// Sets up the suite's backups (its top-level folders) as encrypted ones.
async fn encrypt_suite_backups(store: &BackupStore) {
    for backup in ["a", "ab", "big", "stream"] {
        store.child(backup).set_up_encryption(0).await.unwrap();
    }
}

#[tokio::test]
async fn an_encrypted_store_conforms_stores_no_plaintext_and_finds_every_alteration() {
    let dir = tempfile::tempdir().unwrap();
    let open = || BackupStore::filesystem(&dir.path().join("root"), "p").unwrap();
    let store = open().with_encryption(Some(keyring(KEY_7)));
    encrypt_suite_backups(&store).await;
    conformance(store.clone()).await;

    let files = files_under(dir.path());
    let large_sample: Vec<u8> = (1000..1064u32).map(|i| (i % 251) as u8).collect();
    for (name, bytes) in &files {
        if name.ends_with(DATA_KEY_OBJECT) {
            assert!(!String::from_utf8_lossy(bytes).contains(KEY_7), "{name} holds the key");
            continue;
        }
        assert!(bytes.starts_with(b"KBE1"), "{name} is not sealed");
        // Short samples only in small objects: 12 MiB of ciphertext holds any 3 given bytes by chance.
        let short: &[&[u8]] = if bytes.len() < 1024 { &[b"tiny", b"xyz", b"22"] } else { &[] };
        let samples = short.iter().copied().chain([large_sample.as_slice()]);
        assert!(samples.into_iter().all(|p| !bytes.windows(p.len()).any(|w| w == p)), "{name} holds plaintext");
    }

    // Without the key, or with another one: refused, naming the key id; sizes are still known.
    let key_id = keyring(KEY_7).primary().id().to_string();
    for keys in [None, Some(keyring(KEY_8))] {
        let locked = open().with_encryption(keys);
        let error = locked.get("a/c=1/two").await.unwrap_err();
        assert!(matches!(error, StorageError::Locked { .. }) && error.to_string().contains(&key_id), "{error}");
        assert_eq!(locked.size("a/c=1/two").await.unwrap(), Some(3));
        assert!(matches!(locked.child("a").set_up_encryption(0).await, Err(StorageError::Locked { .. })));
    }

    // A flipped byte: the chunks around it still open, the one holding it does not.
    let segment = dir.path().join("root/p/big/segment");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[5 * 65_552] ^= 0x40;
    std::fs::write(&segment, bytes).unwrap();
    let store = open().with_encryption(Some(keyring(KEY_7)));
    assert!(matches!(store.get("big/segment").await, Err(StorageError::Unreadable { .. })));
    assert!(store.get_range("big/segment", 0..1000).await.is_ok());
    let error = store.get_range("big/segment", 4 * 65_536..6 * 65_536).await.unwrap_err();
    assert!(error.to_string().contains("big/segment") && error.to_string().contains("authentication"), "{error}");
    // Objects swapped within one backup: each is bound to its own key.
    let (small, big) = (dir.path().join("root/p/stream/small"), dir.path().join("root/p/stream/big"));
    std::fs::rename(&small, dir.path().join("swap")).unwrap();
    std::fs::rename(&big, &small).unwrap();
    std::fs::rename(dir.path().join("swap"), &big).unwrap();
    assert!(matches!(store.get("stream/small").await, Err(StorageError::Unreadable { .. })));
    assert!(matches!(store.get("stream/big").await, Err(StorageError::Unreadable { .. })));
}

#[tokio::test]
async fn encryption_applies_to_new_backups_only() {
    let store = BackupStore::open(&StorageConfig::Memory { prefix: String::new() }).unwrap();
    store.put_new("old/manifest.json", Bytes::from_static(b"{}")).await.unwrap();
    let keyed = store.clone().with_encryption(Some(keyring(KEY_7)));
    let error = keyed.child("old").set_up_encryption(0).await.unwrap_err().to_string();
    assert!(error.contains("written without encryption") && error.contains("new backup_id"), "{error}");
    // Reading the old backup with a key configured works; a new backup is encrypted.
    assert_eq!(keyed.get("old/manifest.json").await.unwrap(), Bytes::from_static(b"{}"));
    assert_eq!(keyed.child("new").set_up_encryption(0).await.unwrap(), Some(keyring(KEY_7).primary().id().into()));
    // Rotation: a new primary key, the old one additional: the backup keeps its key.
    let rotated = Keyring::new(
        EncryptionKey::from_base64(KEY_8, None, "new").unwrap(),
        vec![EncryptionKey::from_base64(KEY_7, None, "old").unwrap()],
    )
    .unwrap();
    let reopened = store.clone().with_encryption(Some(rotated));
    assert_eq!(reopened.child("new").set_up_encryption(0).await.unwrap(), Some(keyring(KEY_7).primary().id().into()));
    assert_eq!(reopened.child("newer").set_up_encryption(0).await.unwrap(), Some(keyring(KEY_8).primary().id().into()));
}

/// The store a config's `storage:` section opens, as a backup run opens it (with the probe of
/// conditional writes).
async fn open_configured(storage_yaml: &str) -> BackupStore {
    let text = format!(
        "mode: backup\nbackup_id: conformance\nsource:\n  bootstrap_servers: [\"127.0.0.1:9\"]\n  topics:\n    include: [t]\nstorage:\n{storage_yaml}"
    );
    let config = BackupConfig::from_yaml(&text, |_| None).unwrap();
    BackupStore::open_for_writing(&config.location.store.storage)
        .await
        .unwrap()
        .with_encryption(config.location.store.keyring)
}

#[tokio::test]
async fn s3_store_on_moto_conforms() {
    let emulator = StoreEmulator::start(StoreKind::S3);
    let options = "  storage_class: STANDARD_IA\n  server_side_encryption: AES256\n";
    conformance(open_configured(&format!("{}{options}", emulator.storage_yaml("conformance/run"))).await).await;
    let listing = emulator.list();
    assert!(listing.storage_classes.contains_key("conformance/run/stream/big"), "{:?}", listing.storage_classes);
    for (key, class) in &listing.storage_classes {
        assert_eq!((key, class.as_str()), (key, "STANDARD_IA"), "every object, multipart ones too");
        assert_eq!(listing.encryption[key], "AES256", "{key}");
    }
    assert!(listing.objects.keys().all(|k| k.starts_with("conformance/run/")), "{:?}", listing.objects);
    assert!(!listing.objects.keys().any(|k| k.contains("_probe")), "the write probe cleans up: {:?}", listing.objects);
    assert!(listing.incomplete_uploads.is_empty());
}

/// The suite, encrypted, on an emulator of `kind`: every object but the data key records sealed.
async fn encrypted_conformance_on(kind: StoreKind) {
    let emulator = StoreEmulator::start(kind);
    let key = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(key.path(), KEY_7).unwrap();
    let encryption = format!("  encryption:\n    key_file: {}\n", key.path().display());
    let store = open_configured(&format!("{}{encryption}", emulator.storage_yaml("conformance/run"))).await;
    encrypt_suite_backups(&store).await;
    conformance(store).await;
    let listing = emulator.list();
    assert!(listing.objects.keys().all(|k| k.starts_with("conformance/run/")), "{:?}", listing.objects);
    let sealed = listing.objects.keys().filter(|k| !k.ends_with(DATA_KEY_OBJECT)).count();
    assert_eq!(sealed, 5, "{:?}", listing.objects);
    assert!(listing.incomplete_uploads.is_empty());
}

#[tokio::test]
async fn azure_store_on_azurite_conforms_encrypted() {
    encrypted_conformance_on(StoreKind::Azure).await;
}

/// S3 refuses multipart parts under 5 MiB but the last: sealed parts must still reach that size.
#[tokio::test]
async fn s3_store_on_moto_conforms_encrypted() {
    encrypted_conformance_on(StoreKind::S3).await;
}

/// A store that, like some S3-compatible ones, ignores `If-None-Match`: every create overwrites.
#[derive(Debug)]
struct IgnoresConditionalWrites(object_store::memory::InMemory);

impl std::fmt::Display for IgnoresConditionalWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ignores-conditional-writes")
    }
}

#[async_trait::async_trait]
impl object_store::ObjectStore for IgnoresConditionalWrites {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        options: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        let overwrite = object_store::PutOptions { mode: object_store::PutMode::Overwrite, ..options };
        self.0.put_opts(location, payload, overwrite).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.0.put_multipart_opts(location, options).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.0.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: futures_util::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.0.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures_util::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.0.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn a_store_that_ignores_conditional_writes_is_refused_with_the_opt_in_named() {
    let honest = BackupStore::new(std::sync::Arc::new(object_store::memory::InMemory::new()), "p", "memory".into());
    honest.check_conditional_writes().await.unwrap();
    assert!(honest.list("").await.unwrap().is_empty(), "the probe cleans up");
    let store = IgnoresConditionalWrites(object_store::memory::InMemory::new());
    let lax = BackupStore::new(std::sync::Arc::new(store), "p", "lax-s3".into());
    let error = lax.check_conditional_writes().await.unwrap_err().to_string();
    assert!(error.contains("lax-s3") && error.contains("allow_unconditional_writes"), "{error}");
    assert!(lax.list("").await.unwrap().is_empty(), "the probe cleans up");
}
