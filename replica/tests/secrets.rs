//! The replica file never holds a token; the hash waits only in the outbox.

use std::path::PathBuf;

use keyward_core::api::CreateKeyRequest;
use keyward_replica::Replica;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("kw-replica-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every byte SQLite keeps for the replica: the database, its write-ahead log and shared memory.
fn stored_bytes(db: &std::path::Path) -> Vec<u8> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .filter_map(|suffix| std::fs::read(format!("{}{suffix}", db.display())).ok())
        .flatten()
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn the_token_is_never_written_to_the_replica_file() {
    let dir = TempDir::new();
    let path = dir.0.join("replica.db");
    let replica = Replica::open(&path).await.unwrap();

    let (key, token) = replica
        .create_key_offline(CreateKeyRequest {
            name: "offline".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let (_, rotated) = replica.rotate_key_offline(key.id, None).await.unwrap();

    for bytes in [stored_bytes(&path), {
        replica.close().await;
        stored_bytes(&path)
    }] {
        assert!(!bytes.is_empty());
        for t in [&token, &rotated] {
            let secret = t.expose_secret();
            assert!(!contains(&bytes, secret), "token found in the replica file");
            // Not even the random part alone (e.g. split across a column boundary).
            assert!(!contains(&bytes, &secret[31..53]), "secret part found");
        }
        // The file does hold the key's public id and the queued hash.
        assert!(contains(&bytes, &key.id.to_string()));
        assert!(contains(&bytes, "$argon2id$"));
    }
}

#[tokio::test]
async fn only_the_outbox_holds_a_hash() {
    let replica = Replica::in_memory().await.unwrap();
    let (key, _token) = replica
        .create_key_offline(CreateKeyRequest {
            name: "offline".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let shown = serde_json::to_string(&replica.key(key.id).await.unwrap().unwrap()).unwrap();
    assert!(!shown.contains("argon2"), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");
}
