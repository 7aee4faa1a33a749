//! Run-time credentials in both `Store` backends: one scenario of writes (create, duplicate
//! create, update, update of an unknown id, delete as a tombstone, create over a tombstone) and
//! reads (one record, the list by id, the version counter, the audit trail with its cursor)
//! gives the same outcomes on the embedded store and on a real redis-server, and the embedded
//! file keeps everything across a reopen.

mod redis_support;
#[path = "common/temp.rs"]
mod temp;

use std::sync::Arc;
use std::time::Duration;

use portcullis::state::{RedisSettings, RedisState, Startup};
use portcullis::store::{
    AuditRecord, CredentialKind, CredentialRecord, CredentialStatus, EmbeddedStore, RedisStore,
    Store, WriteMode,
};
use redis::IntoConnectionInfo;
use redis_support::RedisServer;

fn record(kind: CredentialKind, id: &str, status: CredentialStatus) -> CredentialRecord {
    CredentialRecord {
        kind,
        id: id.into(),
        name: format!("{id} name"),
        status,
        scopes: vec!["read".into()],
        grant_types: vec!["client_credentials".into()],
        redirect_uris: Vec::new(),
        secret_hash: Some(format!("sha256:{}", "ab".repeat(32))),
        previous: None,
        created_at: 100,
        updated_at: 100,
    }
}

fn audit(action: &str, id: &str) -> AuditRecord {
    AuditRecord {
        seq: 0,
        at: 100,
        actor: "ops".into(),
        action: action.into(),
        kind: CredentialKind::Client,
        id: id.into(),
        changed: vec!["status".into()],
    }
}

/// Runs the scenario and returns every outcome as text.
async fn scenario(s: &dyn Store) -> Vec<String> {
    use CredentialKind::{App, Client};
    use CredentialStatus::{Active, Deleted, Suspended};
    let mut out = Vec::new();
    let w = |r, m, a| s.write_credential(r, m, a);
    out.push(format!("{:?}", s.credentials_version().await.unwrap()));
    for id in ["c2", "c1"] {
        let r = w(
            record(Client, id, Active),
            WriteMode::Create,
            audit("create", id),
        );
        out.push(format!("{:?}", r.await.unwrap()));
    }
    let dup = w(
        record(Client, "c1", Active),
        WriteMode::Create,
        audit("create", "c1"),
    );
    out.push(format!("{:?}", dup.await.unwrap()));
    let app = w(
        record(App, "c1", Active),
        WriteMode::Create,
        audit("create", "c1"),
    );
    out.push(format!("{:?}", app.await.unwrap()));
    let upd = w(
        record(Client, "c1", Suspended),
        WriteMode::Update,
        audit("update", "c1"),
    );
    out.push(format!("{:?}", upd.await.unwrap()));
    let unknown = w(
        record(Client, "zz", Active),
        WriteMode::Update,
        audit("update", "zz"),
    );
    out.push(format!("{:?}", unknown.await.unwrap()));
    let del = w(
        record(Client, "c2", Deleted),
        WriteMode::Update,
        audit("delete", "c2"),
    );
    out.push(format!("{:?}", del.await.unwrap()));
    let after = w(
        record(Client, "c2", Active),
        WriteMode::Update,
        audit("update", "c2"),
    );
    out.push(format!("{:?}", after.await.unwrap()));
    let again = w(
        record(Client, "c2", Active),
        WriteMode::Create,
        audit("create", "c2"),
    );
    out.push(format!("{:?}", again.await.unwrap()));
    let one = s.credential(Client, "c1".into()).await.unwrap();
    out.push(format!("{:?}", one.map(|r| r.status)));
    out.push(format!(
        "{:?}",
        s.credential(Client, "nope".into()).await.unwrap()
    ));
    let list: Vec<(String, CredentialStatus)> = s
        .credentials(Client)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.status))
        .collect();
    out.push(format!("{list:?}"));
    out.push(format!("{}", s.credentials(App).await.unwrap().len()));
    out.push(format!("{}", s.credentials_version().await.unwrap()));
    let page1 = s.audit(0, 3).await.unwrap();
    let page2 = s.audit(page1.last().unwrap().seq, 10).await.unwrap();
    let trail: Vec<String> = page1
        .iter()
        .chain(&page2)
        .map(|a| format!("{} {} {} {}", a.seq, a.action, a.kind.as_str(), a.id))
        .collect();
    out.push(format!("{trail:?}"));
    out
}

async fn redis_store(server: &RedisServer) -> RedisStore {
    let url = server.url();
    let info = url.as_str().into_connection_info().unwrap();
    let state = RedisState::start(RedisSettings {
        url: url.clone(),
        info,
        prefix: "cs:".into(),
        timeout: Duration::from_millis(500),
        store_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        startup: Startup::Retry,
        ca_pem: None,
    })
    .unwrap();
    assert!(state.wait_up(Duration::from_secs(5)).await);
    RedisStore::new(Arc::clone(&state))
}

#[tokio::test]
async fn credentials_behave_the_same_on_redis_and_embedded() {
    let server = RedisServer::start().await;
    let redis = redis_store(&server).await;
    let embedded = EmbeddedStore::in_memory().unwrap();
    let on_redis = scenario(&redis).await;
    let on_embedded = scenario(&embedded).await;
    assert_eq!(on_redis, on_embedded);
    assert_eq!(on_redis[0], "0");
    assert_eq!(&on_redis[1..5], ["Written", "Written", "Exists", "Written"]);
    assert_eq!(
        &on_redis[5..10],
        ["Written", "Missing", "Written", "Missing", "Exists"]
    );
    assert_eq!(on_redis[10], "Some(Suspended)");
    assert_eq!(on_redis[11], "None");
    assert_eq!(on_redis[12], r#"[("c1", Suspended), ("c2", Deleted)]"#);
    assert_eq!(on_redis[13], "1");
    assert_eq!(on_redis[14], "5", "one version per write that happened");
    assert_eq!(
        on_redis[15],
        r#"["1 create client c2", "2 create client c1", "3 create client c1", "4 update client c1", "5 delete client c2"]"#
    );
    // Redis keeps every credential key in the OAuth hash tag.
    let keys: Vec<String> = server.cmd(&["KEYS", "*"]).await;
    assert!(
        keys.iter().all(|k| k.starts_with("{cs:oauth}:")),
        "{keys:?}"
    );
    // No secret-looking value in the audit trail: the scenario's hash is not there.
    let trail: Vec<String> = server.cmd(&["ZRANGE", "{cs:oauth}:audit", "0", "-1"]).await;
    assert!(trail.iter().all(|m| !m.contains("abab")), "{trail:?}");
}

#[tokio::test]
async fn the_embedded_file_keeps_credentials_and_audit_across_a_reopen() {
    let dir = temp::temp_dir("credstore");
    let _ = std::fs::remove_dir_all(&dir);
    let path = dir.join("state.db");
    {
        let s = EmbeddedStore::open(&path).unwrap();
        scenario(&s).await;
    }
    let s = EmbeddedStore::open(&path).unwrap();
    assert_eq!(s.credentials_version().await.unwrap(), 5);
    assert_eq!(
        s.credentials(CredentialKind::Client).await.unwrap().len(),
        2
    );
    assert_eq!(s.audit(0, 100).await.unwrap().len(), 5);
    let _ = std::fs::remove_dir_all(&dir);
}
