//! The Redis `Store` against the embedded one: one scenario of every operation (grants,
//! rotations and each refusal, reuse, codes, nonces, revocations, purge) gives the same outcomes
//! on both backends, and on Redis every key it wrote carries an expiry under the configured
//! prefix's hash tag.

mod redis_support;

use std::sync::Arc;
use std::time::Duration;

use portcullis::state::{RedisSettings, RedisState, Startup};
use portcullis::store::{
    CodeRecord, EmbeddedStore, IssuedAccess, NewGrant, RedisStore, RefreshRecord, Rotation, Store,
};
use redis::IntoConnectionInfo;
use redis_support::RedisServer;

/// Unix seconds "now" for the scenario (a real near-future time, so Redis expiries are live).
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn access(jti: &str, exp: u64) -> IssuedAccess {
    IssuedAccess {
        jti: jti.into(),
        exp,
    }
}

fn rotation(old: &str, new: &str, client: &str, scopes: Option<&[&str]>, t: u64) -> Rotation {
    Rotation {
        old_hash: old.into(),
        client_id: client.into(),
        requested_scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
        new_hash: new.into(),
        new_expires_at: t + 3600,
        access: access(&format!("a-{new}"), t + 600),
        now: t,
    }
}

/// Runs every operation and returns the outcomes as text.
async fn scenario(s: &dyn Store, t: u64) -> Vec<String> {
    let mut out = Vec::new();
    let record = RefreshRecord {
        family_id: "fam1".into(),
        client_id: "c1".into(),
        subject: "user-1".into(),
        scopes: vec!["read".into(), "write".into()],
        expires_at: t + 3600,
        spent: false,
    };
    s.create_grant(NewGrant {
        family_id: "fam1".into(),
        refresh_hash: "r1".into(),
        record: record.clone(),
        access: access("a-r1", t + 600),
    })
    .await
    .unwrap();
    out.push(format!(
        "{:?}",
        s.refresh_status("r1".into()).await.unwrap()
    ));
    out.push(format!(
        "{:?}",
        s.refresh_status("nope".into()).await.unwrap()
    ));
    for r in [
        rotation("nope", "x", "c1", None, t),
        rotation("r1", "x", "c2", None, t),
        rotation("r1", "x", "c1", Some(&["admin"]), t),
        rotation("r1", "x", "c1", Some(&["read"]), t + 7200),
        rotation("r1", "r2", "c1", Some(&["read"]), t),
        rotation("r2", "r3", "c1", None, t),
        rotation("r1", "y", "c1", None, t),
        rotation("r3", "z", "c1", None, t),
    ] {
        out.push(format!("{:?}", s.rotate_refresh(r).await.unwrap()));
    }
    out.push(format!(
        "{:?}",
        s.refresh_status("r3".into()).await.unwrap()
    ));
    let code = CodeRecord {
        client_id: "web".into(),
        redirect_uri: "https://app/cb".into(),
        subject: "user-2".into(),
        scopes: vec!["read".into()],
        code_challenge: "ch".into(),
        expires_at: t + 300,
        family_id: "fam2".into(),
        used: false,
    };
    s.put_code("k1".into(), code.clone()).await.unwrap();
    s.put_code(
        "k2".into(),
        CodeRecord {
            expires_at: t - 1,
            ..code.clone()
        },
    )
    .await
    .unwrap();
    out.push(format!(
        "{:?}",
        s.redeem_code("k1".into(), t).await.unwrap()
    ));
    s.create_grant(NewGrant {
        family_id: "fam2".into(),
        refresh_hash: "w1".into(),
        record: RefreshRecord {
            family_id: "fam2".into(),
            client_id: "web".into(),
            ..record.clone()
        },
        access: access("a-w1", t + 600),
    })
    .await
    .unwrap();
    out.push(format!(
        "{:?}",
        s.redeem_code("k1".into(), t).await.unwrap()
    ));
    out.push(format!(
        "{:?}",
        s.redeem_code("k2".into(), t).await.unwrap()
    ));
    out.push(format!(
        "{:?}",
        s.redeem_code("k3".into(), t).await.unwrap()
    ));
    out.push(format!(
        "{:?}",
        s.refresh_status("w1".into()).await.unwrap()
    ));
    out.push(format!(
        "{:?}",
        s.use_nonce("n1".into(), t + 60).await.unwrap()
    ));
    out.push(format!(
        "{:?}",
        s.use_nonce("n1".into(), t + 60).await.unwrap()
    ));
    s.revoke_jti("solo".into(), t + 60).await.unwrap();
    out.push(format!(
        "{:?}",
        s.is_jti_revoked("solo".into()).await.unwrap()
    ));
    out.push(format!(
        "{:?}",
        s.is_jti_revoked("other".into()).await.unwrap()
    ));
    out.push(format!(
        "{:?}",
        s.revoke_family("fam9".into(), t).await.unwrap()
    ));
    let mut revoked = s.revoked_jtis(t).await.unwrap();
    revoked.sort_by(|a, b| a.jti.cmp(&b.jti));
    revoked.dedup();
    out.push(format!("{revoked:?}"));
    out.push(format!("{:?}", s.revoked_jtis(t + 601).await.unwrap()));
    out
}

async fn redis_store(server: &RedisServer) -> (Arc<RedisState>, RedisStore) {
    let url = server.url();
    let state = RedisState::start(RedisSettings {
        info: url.as_str().into_connection_info().unwrap(),
        url,
        prefix: "st:".into(),
        timeout: Duration::from_millis(500),
        store_timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_secs(1),
        startup: Startup::Retry,
        ca_pem: None,
    })
    .unwrap();
    assert!(state.wait_up(Duration::from_secs(5)).await);
    (state.clone(), RedisStore::new(state))
}

#[tokio::test]
async fn redis_store_matches_the_embedded_store_and_every_key_expires() {
    let server = RedisServer::start().await;
    let (_state, redis) = redis_store(&server).await;
    let embedded = EmbeddedStore::in_memory().unwrap();
    let t = now();
    let on_redis = scenario(&redis, t).await;
    let on_embedded = scenario(&embedded, t).await;
    for (i, (r, e)) in on_redis.iter().zip(&on_embedded).enumerate() {
        assert_eq!(r, e, "step {i} differs");
    }
    assert_eq!(on_redis.len(), on_embedded.len());
    // Spot checks of what the outcomes say.
    assert!(on_redis[2].starts_with("NotFound"));
    assert!(on_redis[3].starts_with("WrongClient"));
    assert!(on_redis[4].starts_with("ScopeExceeded"));
    assert!(on_redis[5].starts_with("Expired"));
    assert!(on_redis[6].starts_with("Rotated"));
    assert!(on_redis[8].starts_with("Reused"), "{}", on_redis[8]);
    assert!(on_redis[9].starts_with("Revoked"));

    // Every key is under the hash tag and has an expiry, except the revocation log and its
    // counter (trimmed by purge_expired, which the gateway runs every 10 minutes).
    let keys: Vec<String> = server.cmd(&["KEYS", "*"]).await;
    assert!(!keys.is_empty());
    for k in &keys {
        assert!(k.starts_with("{st:oauth}:"), "{k}");
        let ttl: i64 = server.cmd(&["TTL", k]).await;
        if k.ends_with(":revlog") || k.ends_with(":revseq") {
            continue;
        }
        assert!(ttl > 0, "{k} has no expiry ({ttl})");
    }
    let purged = redis.purge_expired(t + 601).await.unwrap();
    let left: Vec<String> = server
        .cmd(&["ZRANGE", "{st:oauth}:revlog", "0", "-1"])
        .await;
    assert!(purged > 0);
    assert!(left.iter().all(|m| m.starts_with("solo ")), "{left:?}");
}

#[tokio::test]
async fn store_calls_fail_fast_and_bounded_while_redis_is_down() {
    let mut server = RedisServer::start().await;
    let (state, redis) = redis_store(&server).await;
    server.kill9();
    let started = std::time::Instant::now();
    for i in 0..5 {
        assert!(redis.use_nonce(format!("n{i}"), now() + 60).await.is_err());
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    server.restart().await;
    assert!(state.wait_up(Duration::from_secs(5)).await);
    let mut ok = false;
    for _ in 0..20 {
        if let Ok(v) = redis.use_nonce("after".into(), now() + 60).await {
            ok = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "back on Redis after the restart");
}
