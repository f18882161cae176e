//! One contract suite per storage trait, run unchanged against every implementation:
//! SQLite and PostgreSQL for the repository, in-process and Redis for the short-lived store.
//! PostgreSQL and Redis come from `TOLLGATE_TEST_POSTGRES_URL` / `TOLLGATE_TEST_REDIS_URL`
//! (started by `scripts/test`); with `TOLLGATE_REQUIRE_BACKENDS=1` (set under `CI=true`) a
//! missing backend fails the test instead of skipping it.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::*;
use crate::audit::{test_record, Actor, Origin, Resource};
use crate::ids::UserId;
use crate::keys::{KeyStatus, MasterKey};
use crate::model::client::{ClientMetadata, StoredSecret};
use crate::model::credential::AdminRole;
use crate::model::server::{AuthMethod, SigningAlg};
use crate::refresh::{RefreshRecord, Rotated, Successor};

fn backend_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            assert!(
                std::env::var("TOLLGATE_REQUIRE_BACKENDS").as_deref() != Ok("1"),
                "{var} is not set but TOLLGATE_REQUIRE_BACKENDS=1: run the tests through scripts/test"
            );
            eprintln!("SKIPPED: {var} not set; run scripts/test to include this backend");
            None
        }
    }
}

pub(crate) async fn sqlite() -> Option<Arc<dyn Repository>> {
    let repo = open_repository("sqlite::memory:")
        .await
        .expect("open sqlite");
    repo.migrate().await.expect("migrate sqlite");
    Some(repo)
}

pub(crate) async fn postgres() -> Option<Arc<dyn Repository>> {
    let url = backend_url("TOLLGATE_TEST_POSTGRES_URL")?;
    let repo = open_repository(&url).await.expect("connect postgres");
    repo.migrate().await.expect("migrate postgres");
    Some(repo)
}

pub(crate) async fn memory() -> Option<Arc<dyn ShortLivedStore>> {
    Some(open_short_lived(None).await.expect("memory store"))
}

pub(crate) async fn redis() -> Option<Arc<dyn ShortLivedStore>> {
    let url = backend_url("TOLLGATE_TEST_REDIS_URL")?;
    Some(open_short_lived(Some(&url)).await.expect("connect redis"))
}

/// Shares small enough to fill in a test: 5 entries a tenant, 3 a server.
const SMALL_SHARES: Shares = Shares {
    tenant_entries: 5,
    server_entries: 3,
    total_entries: 1_000,
};

pub(crate) async fn memory_small_shares() -> Option<Arc<dyn ShortLivedStore>> {
    Some(
        open_short_lived_with(None, SMALL_SHARES)
            .await
            .expect("memory store"),
    )
}

pub(crate) async fn redis_small_shares() -> Option<Arc<dyn ShortLivedStore>> {
    let url = backend_url("TOLLGATE_TEST_REDIS_URL")?;
    Some(
        open_short_lived_with(Some(&url), SMALL_SHARES)
            .await
            .expect("connect redis"),
    )
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

fn rec(t: &TenantId) -> AuditRecord {
    test_record(t, "test.change")
}

fn tenant(id: &str) -> Tenant {
    Tenant {
        id: TenantId::parse(id).unwrap(),
        name: "Acme".into(),
        created_at: 1,
        updated_at: 1,
    }
}

pub(crate) fn server(t: &TenantId, id: &str) -> Server {
    Server {
        tenant_id: t.clone(),
        id: ServerId::parse(id).unwrap(),
        name: "Main".into(),
        access_token_ttl: 3600,
        refresh_token_ttl: 7200,
        signing_alg: SigningAlg::ES256,
        default_audience: Some("https://api".into()),
        allowed_token_endpoint_auth_methods: vec![AuthMethod::ClientSecretBasic],
        tls_client_certificate_bound_access_tokens: false,
        key_rotation_period: Some(86_400),
        require_pkce: true,
        allow_plain_pkce: false,
        logo_uri: Some("https://cdn.example/logo.png".into()),
        brand_color: Some("#0a7cff".into()),
        rate_limits: crate::model::rate_limits::RateLimits {
            client_burst: Some(7),
            ..crate::model::rate_limits::RateLimits::default()
        },
        tls_client_ca: Some("a stored bundle".into()),
        introspection_clients: vec![ClientId::parse("resource-server").unwrap()],
        allow_insecure_redirect_uris: true,
        require_pushed_authorization_requests: true,
        pushed_authorization_request_ttl: 120,
        trusted_issuers: vec![crate::model::trusted_issuer::TrustedIssuer {
            issuer: "https://ci.example".into(),
            jwks: None,
            jwks_uri: Some("https://ci.example/jwks".into()),
            subjects: Some(vec!["repo:a".into()]),
            scope: Some("deploy".into()),
        }],
        created_at: 2,
        updated_at: 2,
    }
}

fn client(t: &TenantId, s: &ServerId, id: &str, secret: StoredSecret) -> Client {
    Client {
        tenant_id: t.clone(),
        server_id: s.clone(),
        client_id: ClientId::parse(id).unwrap(),
        metadata: ClientMetadata {
            client_name: Some("svc".into()),
            grant_types: vec!["client_credentials".into()],
            scope: Some("a b".into()),
            jwks: Some(json!({"keys": []})),
            ..ClientMetadata::default()
        },
        secret,
        secret_expires_at: 0,
        issued_at: 3,
        updated_at: 3,
    }
}

pub(crate) async fn tenants_crud(repo: Arc<dyn Repository>) {
    let id = unique("t");
    let t = tenant(&id);
    repo.create_tenant(&t, &rec(&t.id)).await.unwrap();
    assert!(matches!(
        repo.create_tenant(&t, &rec(&t.id)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(repo.get_tenant(&t.id).await.unwrap(), Some(t.clone()));
    let mut renamed = t.clone();
    renamed.name = "Acme Corp".into();
    renamed.updated_at = 9;
    assert!(repo.update_tenant(&renamed, &rec(&t.id)).await.unwrap());
    assert_eq!(repo.get_tenant(&t.id).await.unwrap(), Some(renamed));
    assert!(repo.delete_tenant(&t.id, &rec(&t.id)).await.unwrap());
    assert!(!repo.delete_tenant(&t.id, &rec(&t.id)).await.unwrap());
    assert_eq!(repo.get_tenant(&t.id).await.unwrap(), None);
    assert!(!repo.update_tenant(&t, &rec(&t.id)).await.unwrap());
}

pub(crate) async fn tenants_paginate(repo: Arc<dyn Repository>) {
    let base = unique("p");
    for i in 0..5 {
        let t = tenant(&format!("{base}-{i}"));
        repo.create_tenant(&t, &rec(&t.id)).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after = Some(format!("{base}-"));
    loop {
        let page = repo.list_tenants(after.as_deref(), 2).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(
            page.items
                .iter()
                .filter(|t| t.id.as_str().starts_with(&base))
                .map(|t| t.id.to_string()),
        );
        match page.next {
            Some(n) if n.starts_with(&base) => after = Some(n),
            _ => break,
        }
    }
    let expected: Vec<String> = (0..5).map(|i| format!("{base}-{i}")).collect();
    assert_eq!(seen, expected);
}

pub(crate) async fn servers_clients_and_keys(repo: Arc<dyn Repository>) {
    let (master, _) = MasterKey::generate();
    let t = tenant(&unique("t"));
    repo.create_tenant(&t, &rec(&t.id)).await.unwrap();
    let s = server(&t.id, "main");
    let key = KeyRecord::generate(
        &master,
        &t.id,
        &s.id,
        SigningAlg::ES256,
        KeyStatus::Current,
        5,
    )
    .unwrap();
    repo.create_server(&s, std::slice::from_ref(&key), &rec(&t.id))
        .await
        .unwrap();
    assert!(matches!(
        repo.create_server(&s, &[], &rec(&t.id)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        repo.get_server(&t.id, &s.id).await.unwrap(),
        Some(s.clone())
    );
    let page = repo.list_servers(&t.id, None, 10).await.unwrap();
    assert_eq!(page.items, vec![s.clone()]);
    assert!(page.next.is_none());

    // A second tenant with a server of the same id stays separate.
    let other = tenant(&unique("o"));
    repo.create_tenant(&other, &rec(&other.id)).await.unwrap();
    repo.create_server(&server(&other.id, "main"), &[], &rec(&other.id))
        .await
        .unwrap();
    assert_eq!(
        repo.list_servers(&t.id, None, 10)
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let mut changed = s.clone();
    changed.default_audience = None;
    changed.tls_client_certificate_bound_access_tokens = true;
    changed.allowed_token_endpoint_auth_methods =
        vec![AuthMethod::ClientSecretPost, AuthMethod::ClientSecretBasic];
    assert!(repo
        .update_server(&changed, None, &rec(&t.id))
        .await
        .unwrap());
    assert_eq!(repo.get_server(&t.id, &s.id).await.unwrap(), Some(changed));

    let keys = repo.list_keys(&t.id, &s.id).await.unwrap();
    assert_eq!(keys, vec![key.clone()]);
    assert!(keys[0].open(&master).is_ok());
    let next = KeyRecord::generate(
        &master,
        &t.id,
        &s.id,
        SigningAlg::ES256,
        KeyStatus::Current,
        6,
    )
    .unwrap();
    repo.rotate_key(&next, 100, 6, &rec(&t.id)).await.unwrap();
    let keys = repo.list_keys(&t.id, &s.id).await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].status, KeyStatus::Retiring);
    assert_eq!(keys[0].retire_at, Some(100));
    assert_eq!(keys[1].kid, next.kid);
    let third = KeyRecord::generate(
        &master,
        &t.id,
        &s.id,
        SigningAlg::ES256,
        KeyStatus::Current,
        7,
    )
    .unwrap();
    repo.rotate_key(&third, 300, 200, &rec(&t.id))
        .await
        .unwrap();
    let kids: Vec<_> = repo
        .list_keys(&t.id, &s.id)
        .await
        .unwrap()
        .into_iter()
        .map(|k| (k.kid, k.status))
        .collect();
    assert_eq!(
        kids,
        vec![
            (next.kid.clone(), KeyStatus::Retiring),
            (third.kid.clone(), KeyStatus::Current)
        ]
    );
    // A new signing_alg retires the old algorithm's keys with the server update.
    let mut ps = s.clone();
    ps.signing_alg = SigningAlg::PS256;
    assert!(repo
        .update_server(
            &ps,
            Some(&SigningAlgChange {
                new_key: None,
                retire_alg: Some(SigningAlg::ES256),
                retire_at: 500,
                now: 200,
            }),
            &rec(&t.id),
        )
        .await
        .unwrap());
    assert!(repo
        .list_keys(&t.id, &s.id)
        .await
        .unwrap()
        .iter()
        .all(|k| k.status == KeyStatus::Retiring));

    let c = client(
        &t.id,
        &s.id,
        "svc-1",
        StoredSecret::Hash("$argon2id$x".into()),
    );
    repo.create_client(&c, &rec(&t.id)).await.unwrap();
    assert!(matches!(
        repo.create_client(&c, &rec(&t.id)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        repo.get_client(&t.id, &s.id, &c.client_id).await.unwrap(),
        Some(c.clone())
    );
    assert_eq!(
        repo.get_client(&other.id, &s.id, &c.client_id)
            .await
            .unwrap(),
        None
    );
    let sealed = client(&t.id, &s.id, "svc-2", StoredSecret::Sealed(vec![1, 2, 3]));
    repo.create_client(&sealed, &rec(&t.id)).await.unwrap();
    let none = client(&t.id, &s.id, "svc-3", StoredSecret::None);
    repo.create_client(&none, &rec(&t.id)).await.unwrap();
    let p1 = repo.list_clients(&t.id, &s.id, None, 2).await.unwrap();
    assert_eq!(p1.items, vec![c.clone(), sealed.clone()]);
    let p2 = repo
        .list_clients(&t.id, &s.id, p1.next.as_deref(), 2)
        .await
        .unwrap();
    assert_eq!(p2.items, vec![none.clone()]);
    assert!(p2.next.is_none());

    let mut updated = c.clone();
    updated.secret = StoredSecret::Hash("$argon2id$y".into());
    updated.metadata.scope = Some("c".into());
    assert!(repo.update_client(&updated, &rec(&t.id)).await.unwrap());
    assert_eq!(
        repo.get_client(&t.id, &s.id, &c.client_id).await.unwrap(),
        Some(updated)
    );
    assert!(repo
        .delete_client(&t.id, &s.id, &c.client_id, &rec(&t.id))
        .await
        .unwrap());
    assert!(!repo
        .delete_client(&t.id, &s.id, &c.client_id, &rec(&t.id))
        .await
        .unwrap());

    // Deleting the tenant cascades to servers, clients and keys.
    assert!(repo.delete_tenant(&t.id, &rec(&t.id)).await.unwrap());
    assert_eq!(repo.get_server(&t.id, &s.id).await.unwrap(), None);
    assert_eq!(
        repo.get_client(&t.id, &s.id, &sealed.client_id)
            .await
            .unwrap(),
        None
    );
    assert!(repo.list_keys(&t.id, &s.id).await.unwrap().is_empty());
    assert!(repo.get_server(&other.id, &s.id).await.unwrap().is_some());
    repo.delete_tenant(&other.id, &rec(&other.id))
        .await
        .unwrap();
}

pub(crate) async fn key_rotation_is_conditional(repo: Arc<dyn Repository>) {
    let (master, _) = MasterKey::generate();
    let t = tenant(&unique("t"));
    repo.create_tenant(&t, &rec(&t.id)).await.unwrap();
    let s = server(&t.id, "main");
    let key =
        |alg, at| KeyRecord::generate(&master, &t.id, &s.id, alg, KeyStatus::Current, at).unwrap();
    let es = key(SigningAlg::ES256, 1_000);
    let rs = key(SigningAlg::RS256, 1_000);
    repo.create_server(&s, &[es.clone(), rs.clone()], &rec(&t.id))
        .await
        .unwrap();

    // Not due before its period has passed since the newest current key; due from then on.
    let due = |now| {
        let repo = repo.clone();
        let id = t.id.clone();
        async move {
            repo.servers_due_for_key_rotation(now, 100_000)
                .await
                .unwrap()
                .into_iter()
                .filter(|x| x.tenant_id == id)
                .map(|x| x.id.to_string())
                .collect::<Vec<_>>()
        }
    };
    assert!(due(1_000 + 86_399).await.is_empty());
    assert_eq!(due(1_000 + 86_400).await, vec!["main".to_owned()]);
    let mut manual = server(&t.id, "manual");
    manual.key_rotation_period = None;
    repo.create_server(&manual, &[], &rec(&t.id)).await.unwrap();
    assert_eq!(
        due(1_000_000).await,
        vec!["main".to_owned()],
        "null period: manual only"
    );

    // From the current key: rotates; from a key that is no longer current: changes nothing.
    let next = key(SigningAlg::ES256, 90_000);
    assert!(repo
        .rotate_key_if_current(&next, &es.kid, 95_000, 90_000, &rec(&t.id))
        .await
        .unwrap());
    let after = repo.list_keys(&t.id, &s.id).await.unwrap();
    let status = |kid: &str| {
        after
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| (k.status, k.retire_at))
    };
    assert_eq!(status(&es.kid), Some((KeyStatus::Retiring, Some(95_000))));
    assert_eq!(status(&next.kid), Some((KeyStatus::Current, None)));
    assert_eq!(
        status(&rs.kid),
        Some((KeyStatus::Current, None)),
        "other algorithms untouched"
    );
    let late = key(SigningAlg::ES256, 90_001);
    assert!(!repo
        .rotate_key_if_current(&late, &es.kid, 95_001, 90_001, &rec(&t.id))
        .await
        .unwrap());
    assert_eq!(repo.list_keys(&t.id, &s.id).await.unwrap(), after);
    // Due is judged by the newest current key.
    assert!(due(90_000 + 86_399).await.is_empty());
    assert_eq!(due(90_000 + 86_400).await, vec!["main".to_owned()]);

    // Of concurrent rotations from the same key exactly one wins.
    let candidates: Vec<_> = (0..6).map(|i| key(SigningAlg::RS256, 91_000 + i)).collect();
    let tasks: Vec<_> = candidates
        .iter()
        .map(|new| {
            let (repo, new, kid) = (repo.clone(), new.clone(), rs.kid.clone());
            let audit = rec(&t.id);
            tokio::spawn(async move {
                repo.rotate_key_if_current(&new, &kid, 96_000, 91_000, &audit)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
    let keys = repo.list_keys(&t.id, &s.id).await.unwrap();
    let current: Vec<_> = keys
        .iter()
        .filter(|k| k.status == KeyStatus::Current)
        .map(|k| k.alg)
        .collect();
    assert_eq!(current.len(), 2, "one current key per algorithm: {keys:?}");
    assert!(current.contains(&SigningAlg::ES256) && current.contains(&SigningAlg::RS256));
    assert_eq!(keys.len(), 4);
    assert!(due(91_000 + 86_399).await.is_empty());

    // Retiring keys are deleted once their time has passed, and their servers reported.
    assert!(repo
        .delete_retired_keys(94_999)
        .await
        .unwrap()
        .iter()
        .all(|(x, _)| x != &t.id));
    let gone = repo.delete_retired_keys(96_000).await.unwrap();
    assert_eq!(
        gone.iter().filter(|(x, _)| x == &t.id).count(),
        1,
        "each server once"
    );
    assert_eq!(repo.list_keys(&t.id, &s.id).await.unwrap().len(), 2);
    repo.delete_tenant(&t.id, &rec(&t.id)).await.unwrap();
}

pub(crate) async fn admin_token_set_once(repo: Arc<dyn Repository>) {
    let name = unique("root");
    assert_eq!(repo.admin_token_hash(&name).await.unwrap(), None);
    assert!(repo
        .set_admin_token_hash_if_absent(&name, "h1", 1)
        .await
        .unwrap());
    assert!(!repo
        .set_admin_token_hash_if_absent(&name, "h2", 2)
        .await
        .unwrap());
    assert_eq!(
        repo.admin_token_hash(&name).await.unwrap().as_deref(),
        Some("h1")
    );
    repo.ping().await.unwrap();
}

pub(crate) async fn audit_rows_commit_with_their_changes(repo: Arc<dyn Repository>) {
    let t = tenant(&unique("a"));
    let by = Origin::new(Actor::Root, Some("192.0.2.7".parse().unwrap()));
    let created = AuditRecord::new(&by, "tenant.create", Resource::tenant(&t.id)).after(&t);
    repo.create_tenant(&t, &created).await.unwrap();
    // An audit row the database refuses (empty action) fails the change it describes.
    let broken = |id: &TenantId| {
        let mut r = rec(id);
        r.action = String::new();
        r
    };
    let other = tenant(&unique("a"));
    assert!(repo
        .create_tenant(&other, &broken(&other.id))
        .await
        .is_err());
    assert_eq!(repo.get_tenant(&other.id).await.unwrap(), None);
    let mut renamed = t.clone();
    renamed.name = "Renamed".into();
    assert!(repo.update_tenant(&renamed, &broken(&t.id)).await.is_err());
    assert_eq!(repo.get_tenant(&t.id).await.unwrap(), Some(t.clone()));

    let s = server(&t.id, "main");
    assert!(repo.create_server(&s, &[], &broken(&t.id)).await.is_err());
    assert_eq!(repo.get_server(&t.id, &s.id).await.unwrap(), None);
    repo.create_server(&s, &[], &rec(&t.id)).await.unwrap();
    let mut ps = s.clone();
    ps.name = "Changed".into();
    assert!(repo.update_server(&ps, None, &broken(&t.id)).await.is_err());
    assert_eq!(
        repo.get_server(&t.id, &s.id).await.unwrap(),
        Some(s.clone())
    );

    let c = client(
        &t.id,
        &s.id,
        "svc",
        StoredSecret::Hash("$argon2id$x".into()),
    );
    assert!(repo.create_client(&c, &broken(&t.id)).await.is_err());
    assert_eq!(
        repo.get_client(&t.id, &s.id, &c.client_id).await.unwrap(),
        None
    );
    repo.create_client(&c, &rec(&t.id)).await.unwrap();
    let mut changed = c.clone();
    changed.metadata.scope = Some("z".into());
    assert!(repo.update_client(&changed, &broken(&t.id)).await.is_err());
    assert!(repo
        .delete_client(&t.id, &s.id, &c.client_id, &broken(&t.id))
        .await
        .is_err());
    assert_eq!(
        repo.get_client(&t.id, &s.id, &c.client_id).await.unwrap(),
        Some(c.clone())
    );
    assert!(repo
        .delete_server(&t.id, &s.id, &broken(&t.id))
        .await
        .is_err());
    assert!(repo.delete_tenant(&t.id, &broken(&t.id)).await.is_err());
    assert!(repo.get_server(&t.id, &s.id).await.unwrap().is_some());

    // A change that finds nothing to change writes no row either.
    assert!(!repo
        .update_tenant(&tenant(&unique("absent")), &rec(&t.id))
        .await
        .unwrap());
    assert!(!repo
        .delete_client(&t.id, &s.id, &ClientId::parse("nope").unwrap(), &rec(&t.id))
        .await
        .unwrap());

    // Exactly the committed changes are in the trail, newest first, as written.
    let rows = repo
        .list_audit(&t.id, &AuditFilter::default(), None, 50)
        .await
        .unwrap();
    assert_eq!(rows.items.len(), 3, "{:?}", rows.items);
    assert!(rows.next.is_none());
    assert!(rows.items.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(rows.items[2].record, created);
    assert_eq!(rows.items[2].record.address.as_deref(), Some("192.0.2.7"));

    // The trail outlives the tenant.
    repo.delete_tenant(&t.id, &rec(&t.id)).await.unwrap();
    let rows = repo
        .list_audit(&t.id, &AuditFilter::default(), None, 50)
        .await
        .unwrap();
    assert_eq!(rows.items.len(), 4);
}

pub(crate) async fn audit_filters_and_pages(repo: Arc<dyn Repository>) {
    let t = tenant(&unique("f"));
    let mut first = rec(&t.id);
    first.at = 50;
    repo.create_tenant(&t, &first).await.unwrap();
    let s = ServerId::parse("main").unwrap();
    let (c1, c2) = (
        ClientId::parse("c1").unwrap(),
        ClientId::parse("c2").unwrap(),
    );
    let root = Origin::new(Actor::Root, None);
    let cred = Origin::new(
        Actor::Credential(CredentialId::parse("cred-1").unwrap()),
        None,
    );
    let rows = [
        (
            &root,
            "client.create",
            Resource::client(&t.id, &s, &c1),
            100,
        ),
        (
            &cred,
            "client.update",
            Resource::client(&t.id, &s, &c1),
            200,
        ),
        (
            &root,
            "client.create",
            Resource::client(&t.id, &s, &c2),
            300,
        ),
        (&cred, "server.update", Resource::server(&t.id, &s), 400),
        (
            &root,
            "key.rotate",
            Resource::server(&t.id, &s).segment("keys"),
            500,
        ),
    ];
    for (by, action, resource, at) in rows {
        let mut r = AuditRecord::new(by, action, resource);
        r.at = at;
        repo.append_audit(&r).await.unwrap();
    }
    // Another tenant's row is never listed here.
    let elsewhere = tenant(&unique("f"));
    let mut foreign = AuditRecord::new(
        &root,
        "client.create",
        Resource::client(&elsewhere.id, &s, &c1),
    );
    foreign.at = 150;
    repo.append_audit(&foreign).await.unwrap();

    let base = format!("/admin/tenants/{}/servers/main", t.id);
    let f = |action: Option<&str>,
             actor: Option<&str>,
             resource: Option<String>,
             client: Option<&ClientId>,
             since: Option<i64>,
             until: Option<i64>| AuditFilter {
        action: action.map(str::to_owned),
        actor: actor.map(str::to_owned),
        resource,
        client_id: client.cloned(),
        since,
        until,
    };
    let table: Vec<(AuditFilter, Vec<i64>)> = vec![
        (AuditFilter::default(), vec![500, 400, 300, 200, 100, 50]),
        (
            f(Some("client.create"), None, None, None, None, None),
            vec![300, 100],
        ),
        (
            f(None, Some("credential:cred-1"), None, None, None, None),
            vec![400, 200],
        ),
        (
            f(None, None, Some(base.clone()), None, None, None),
            vec![500, 400, 300, 200, 100],
        ),
        (
            f(
                None,
                None,
                Some(format!("{base}/clients/c1")),
                None,
                None,
                None,
            ),
            vec![200, 100],
        ),
        (
            f(
                None,
                None,
                Some(format!("{base}/clients/c")),
                None,
                None,
                None,
            ),
            vec![],
        ),
        (f(None, None, None, Some(&c2), None, None), vec![300]),
        (
            f(None, None, None, None, Some(200), Some(400)),
            vec![300, 200],
        ),
        (
            f(
                Some("client.create"),
                Some("root"),
                None,
                None,
                Some(200),
                None,
            ),
            vec![300],
        ),
    ];
    for (filter, want) in table {
        let got: Vec<i64> = repo
            .list_audit(&t.id, &filter, None, 50)
            .await
            .unwrap()
            .items
            .iter()
            .map(|e| e.record.at)
            .collect();
        assert_eq!(got, want, "{filter:?}");
    }

    // Pages of two, newest first, the cursor being the last id seen.
    let mut seen = Vec::new();
    let mut cursor = None;
    for _ in 0..4 {
        let page = repo
            .list_audit(&t.id, &AuditFilter::default(), cursor, 2)
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|e| e.record.at));
        match page.next {
            Some(n) => cursor = Some(n.parse::<i64>().unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, vec![500, 400, 300, 200, 100, 50]);
    repo.delete_tenant(&t.id, &rec(&t.id)).await.unwrap();
}

pub(crate) async fn credentials_crud(repo: Arc<dyn Repository>) {
    let t = tenant(&unique("c"));
    repo.create_tenant(&t, &rec(&t.id)).await.unwrap();
    let credential = |id: &str, role| AdminCredential {
        id: CredentialId::parse(id).unwrap(),
        tenant_id: t.id.clone(),
        name: Some(format!("{id} label")),
        role,
        token_hash: unique("hash"),
        created_by: "root".into(),
        created_at: 5,
        expires_at: Some(1_000),
        revoked_at: None,
    };
    let a = credential("a-1", AdminRole::Admin);
    let b = credential("b-2", AdminRole::ReadOnly);
    repo.create_credential(&a, &rec(&t.id)).await.unwrap();
    repo.create_credential(&b, &rec(&t.id)).await.unwrap();
    let mut same_token = credential("c-3", AdminRole::Admin);
    same_token.token_hash.clone_from(&a.token_hash);
    assert!(matches!(
        repo.create_credential(&same_token, &rec(&t.id)).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        repo.credential_by_hash(&a.token_hash).await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(repo.credential_by_hash("nope").await.unwrap(), None);
    let p1 = repo.list_credentials(&t.id, None, 1).await.unwrap();
    assert_eq!(p1.items, vec![a.clone()]);
    let p2 = repo
        .list_credentials(&t.id, p1.next.as_deref(), 1)
        .await
        .unwrap();
    assert_eq!(p2.items, vec![b.clone()]);
    assert!(p2.next.is_none());

    // Revocation happens once; another tenant's id matches nothing.
    let elsewhere = tenant(&unique("c"));
    repo.create_tenant(&elsewhere, &rec(&elsewhere.id))
        .await
        .unwrap();
    assert!(!repo
        .revoke_credential(&elsewhere.id, &a.id, 7, &rec(&elsewhere.id))
        .await
        .unwrap());
    assert!(repo
        .revoke_credential(&t.id, &a.id, 7, &rec(&t.id))
        .await
        .unwrap());
    assert!(!repo
        .revoke_credential(&t.id, &a.id, 8, &rec(&t.id))
        .await
        .unwrap());
    assert_eq!(
        repo.credential_by_hash(&a.token_hash)
            .await
            .unwrap()
            .and_then(|c| c.revoked_at),
        Some(7)
    );

    // A credential for a tenant that does not exist is refused; deleting a tenant takes its
    // credentials with it.
    let mut orphan = credential("d-4", AdminRole::Admin);
    orphan.tenant_id = TenantId::parse(&unique("gone")).unwrap();
    assert!(matches!(
        repo.create_credential(&orphan, &rec(&orphan.tenant_id))
            .await,
        Err(StoreError::Conflict)
    ));
    repo.delete_tenant(&t.id, &rec(&t.id)).await.unwrap();
    assert_eq!(repo.credential_by_hash(&b.token_hash).await.unwrap(), None);
    repo.delete_tenant(&elsewhere.id, &rec(&elsewhere.id))
        .await
        .unwrap();
}

pub(crate) async fn short_lived_semantics(store: Arc<dyn ShortLivedStore>) {
    let k = unique("k");
    let ttl = Duration::from_secs(30);
    assert!(store
        .put_if_absent(test_owner(), &k, b"v1", ttl)
        .await
        .unwrap());
    assert!(!store
        .put_if_absent(test_owner(), &k, b"v2", ttl)
        .await
        .unwrap());
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(
        store.take(test_owner(), &k).await.unwrap().as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(store.take(test_owner(), &k).await.unwrap(), None);
    assert!(store
        .put_if_absent(test_owner(), &k, b"v3", ttl)
        .await
        .unwrap());
    assert!(store.remove(test_owner(), &k).await.unwrap());
    assert!(!store.remove(test_owner(), &k).await.unwrap());
    store.put(test_owner(), &k, b"a", ttl).await.unwrap();
    store.put(test_owner(), &k, b"b", ttl).await.unwrap();
    assert_eq!(store.get(&k).await.unwrap().as_deref(), Some(&b"b"[..]));
    let c = unique("c");
    assert_eq!(store.incr(test_owner(), &c, ttl).await.unwrap(), 1);
    assert_eq!(store.incr(test_owner(), &c, ttl).await.unwrap(), 2);
    store.ping().await.unwrap();
}

pub(crate) async fn short_lived_expiry(store: Arc<dyn ShortLivedStore>) {
    let k = unique("e");
    let short = Duration::from_millis(150);
    assert!(store
        .put_if_absent(test_owner(), &k, b"x", short)
        .await
        .unwrap());
    let c = unique("ce");
    assert_eq!(store.incr(test_owner(), &c, short).await.unwrap(), 1);
    // Poll with a deadline rather than sleeping a fixed time.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.get(&k).await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "entry did not expire"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(store.take(test_owner(), &k).await.unwrap(), None);
    assert!(
        store
            .put_if_absent(test_owner(), &k, b"y", short)
            .await
            .unwrap(),
        "expired key is free again"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if store
            .incr(test_owner(), &c, Duration::from_secs(30))
            .await
            .unwrap()
            == 1
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "counter did not expire"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
        store.remove(test_owner(), &c).await.ok();
    }
}

pub(crate) async fn short_lived_take_is_atomic(store: Arc<dyn ShortLivedStore>) {
    for _ in 0..20 {
        let k = unique("a");
        store
            .put(test_owner(), &k, b"code", Duration::from_secs(30))
            .await
            .unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = store.clone();
                let k = k.clone();
                tokio::spawn(async move { s.take(test_owner(), &k).await.unwrap().is_some() })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.unwrap());
        }
        assert_eq!(winners, 1);
        let k2 = unique("n");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = store.clone();
                let k = k2.clone();
                tokio::spawn(async move {
                    s.put_if_absent(test_owner(), &k, b"j", Duration::from_secs(30))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut stored = 0;
        for t in tasks {
            stored += usize::from(t.await.unwrap());
        }
        assert_eq!(stored, 1);
    }
}

/// A tenant with a server, a client and a user, for the flow's tables.
async fn flow_fixture(
    repo: &Arc<dyn Repository>,
) -> (TenantId, ServerId, ClientId, crate::model::users::User) {
    let t = tenant(&unique("u"));
    repo.create_tenant(&t, &rec(&t.id)).await.unwrap();
    let s = server(&t.id, "main");
    repo.create_server(&s, &[], &rec(&t.id)).await.unwrap();
    let c = client(&t.id, &s.id, "web", StoredSecret::None);
    repo.create_client(&c, &rec(&t.id)).await.unwrap();
    let user = crate::model::users::User {
        tenant_id: t.id.clone(),
        server_id: s.id.clone(),
        id: UserId::generate(),
        username: "alice@example.com".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$x$y".into(),
        claims: json!({"name": "Alice"}).as_object().cloned().unwrap(),
        created_at: 5,
        updated_at: 5,
    };
    repo.create_user(&user, &rec(&t.id)).await.unwrap();
    (t.id, s.id, c.client_id, user)
}

pub(crate) async fn users_and_consents(repo: Arc<dyn Repository>) {
    let (t, s, c, user) = flow_fixture(&repo).await;
    let mut twin = user.clone();
    twin.id = UserId::generate();
    assert!(
        matches!(
            repo.create_user(&twin, &rec(&t)).await,
            Err(StoreError::Conflict)
        ),
        "usernames are unique per server"
    );
    assert_eq!(
        repo.get_user(&t, &s, &user.id).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(
        repo.find_user(&t, &s, "alice@example.com").await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(repo.find_user(&t, &s, "bob").await.unwrap(), None);
    let other = ServerId::parse("other").unwrap();
    assert_eq!(
        repo.find_user(&t, &other, "alice@example.com")
            .await
            .unwrap(),
        None
    );
    let mut renamed = user.clone();
    renamed.username = "alice2".into();
    renamed.updated_at = 6;
    assert!(repo.update_user(&renamed, &rec(&t)).await.unwrap());
    let page = repo.list_users(&t, &s, None, 10).await.unwrap();
    assert_eq!(page.items, vec![renamed.clone()]);
    assert_eq!(page.next, None);

    assert_eq!(repo.get_consent(&t, &s, &user.id, &c).await.unwrap(), None);
    let mut consent = crate::model::users::Consent {
        tenant_id: t.clone(),
        server_id: s.clone(),
        user_id: user.id.clone(),
        client_id: c.clone(),
        scope: "openid".into(),
        created_at: 7,
        updated_at: 7,
    };
    repo.put_consent(&consent).await.unwrap();
    consent.scope = "email openid".into();
    consent.updated_at = 8;
    repo.put_consent(&consent).await.unwrap();
    assert_eq!(
        repo.get_consent(&t, &s, &user.id, &c).await.unwrap(),
        Some(consent.clone())
    );
    assert_eq!(
        repo.list_consents(&t, &s, &user.id).await.unwrap(),
        vec![consent.clone()]
    );
    assert!(repo
        .delete_consent(&t, &s, &user.id, &c, &rec(&t))
        .await
        .unwrap());
    assert!(!repo
        .delete_consent(&t, &s, &user.id, &c, &rec(&t))
        .await
        .unwrap());
    repo.put_consent(&consent).await.unwrap();
    // Deleting the user takes their consents with them.
    assert!(repo.delete_user(&t, &s, &user.id, &rec(&t)).await.unwrap());
    assert!(!repo.delete_user(&t, &s, &user.id, &rec(&t)).await.unwrap());
    assert_eq!(repo.get_consent(&t, &s, &user.id, &c).await.unwrap(), None);
}

fn refresh_record(
    t: &TenantId,
    s: &ServerId,
    c: &ClientId,
    user: &UserId,
    family: &str,
    expires_at: i64,
) -> RefreshRecord {
    RefreshRecord {
        token_hash: unique("h"),
        tenant_id: t.clone(),
        server_id: s.clone(),
        client_id: c.clone(),
        user_id: user.clone(),
        family_id: family.into(),
        scope: "openid email".into(),
        auth_time: 100,
        amr: "pwd".into(),
        access_jti: unique("jti"),
        access_exp: expires_at,
        created_at: 100,
        expires_at,
        rotated_at: None,
        revoked_at: None,
    }
}

/// Watermarks of revoked subjects: written, raised, read per server, expired; a user's
/// refresh tokens revoked across every client.
pub(crate) async fn revoked_subjects_and_user_tokens(repo: Arc<dyn Repository>) {
    use crate::revoked_subjects::Subject;
    let (t, s, c, user) = flow_fixture(&repo).await;
    let now = 1_000;
    assert!(repo.revoked_subjects(&t, &s, now).await.unwrap().is_empty());
    let u = Subject::User(user.id.clone());
    let cl = Subject::Client(c.clone());
    repo.revoke_subject(&t, &s, &u, 1_000_000, now + 100, now)
        .await
        .unwrap();
    repo.revoke_subject(&t, &s, &cl, 1_000_500, now + 10, now)
        .await
        .unwrap();
    // A later revocation of the same subject moves its watermark.
    repo.revoke_subject(&t, &s, &u, 1_000_900, now + 100, now)
        .await
        .unwrap();
    let mut got = repo.revoked_subjects(&t, &s, now).await.unwrap();
    got.sort_by_key(|(_, w)| *w);
    assert_eq!(got, vec![(cl.clone(), 1_000_500), (u.clone(), 1_000_900)]);
    assert_eq!(
        repo.revoked_subjects(&t, &s, now + 10).await.unwrap(),
        vec![(u.clone(), 1_000_900)],
        "kept only until every token it revokes has expired"
    );
    let other = ServerId::parse("other").unwrap();
    assert!(repo
        .revoked_subjects(&t, &other, now)
        .await
        .unwrap()
        .is_empty());

    let a = refresh_record(&t, &s, &c, &user.id, "fam-a", now + 500);
    let b = refresh_record(&t, &s, &c, &user.id, "fam-b", now + 500);
    repo.insert_refresh_token(&a).await.unwrap();
    repo.insert_refresh_token(&b).await.unwrap();
    assert_eq!(
        repo.revoke_refresh_tokens_of_user(&t, &s, &user.id, now)
            .await
            .unwrap(),
        2
    );
    for r in [&a, &b] {
        let got = repo
            .get_refresh_token(&r.token_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.revoked_at, Some(now));
    }
    assert_eq!(
        repo.revoke_refresh_tokens_of_user(&t, &s, &user.id, now + 1)
            .await
            .unwrap(),
        0
    );
}

pub(crate) async fn refresh_token_families(repo: Arc<dyn Repository>) {
    let (t, s, c, user) = flow_fixture(&repo).await;
    let now = 1_000;
    let first = refresh_record(&t, &s, &c, &user.id, "fam-1", now + 500);
    repo.insert_refresh_token(&first).await.unwrap();
    assert_eq!(
        repo.get_refresh_token(&first.token_hash).await.unwrap(),
        Some(first.clone())
    );
    let next = Successor {
        token_hash: unique("h"),
        access_jti: unique("jti"),
        access_exp: now + 60,
        expires_at: now + 600,
    };
    let other_client = ClientId::parse("someone-else").unwrap();
    assert_eq!(
        repo.rotate_refresh_token(&t, &s, &other_client, &first.token_hash, &next, now)
            .await
            .unwrap(),
        None,
        "another client's token does not rotate"
    );
    let rotated = repo
        .rotate_refresh_token(&t, &s, &c, &first.token_hash, &next, now)
        .await
        .unwrap()
        .expect("rotates once");
    assert_eq!(
        rotated,
        Rotated {
            user_id: user.id.clone(),
            family_id: "fam-1".into(),
            scope: "openid email".into(),
            auth_time: 100,
            amr: "pwd".into(),
            issued_jti: first.access_jti.clone(),
        }
    );
    let again = Successor {
        token_hash: unique("h"),
        ..next.clone()
    };
    assert_eq!(
        repo.rotate_refresh_token(&t, &s, &c, &first.token_hash, &again, now)
            .await
            .unwrap(),
        None,
        "a rotated token does not rotate again"
    );
    let old = repo
        .get_refresh_token(&first.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.rotated_at, Some(now));
    let successor = repo
        .get_refresh_token(&next.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert!(successor.usable(now));
    assert_eq!(
        (successor.family_id.as_str(), successor.expires_at),
        ("fam-1", now + 600)
    );
    assert!(repo
        .get_refresh_token(&again.token_hash)
        .await
        .unwrap()
        .is_none());

    // Concurrent rotations of one token: exactly one wins.
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (repo, t, s, c, hash) = (
                repo.clone(),
                t.clone(),
                s.clone(),
                c.clone(),
                next.token_hash.clone(),
            );
            tokio::spawn(async move {
                let succ = Successor {
                    token_hash: unique("h"),
                    access_jti: unique("jti"),
                    access_exp: now + 60,
                    expires_at: now + 600,
                };
                repo.rotate_refresh_token(&t, &s, &c, &hash, &succ, now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        wins += usize::from(task.await.unwrap().is_some());
    }
    assert_eq!(wins, 1);

    // Revoking the family revokes every token and reports the live access tokens.
    let access = repo
        .revoke_refresh_family(&t, &s, "fam-1", now)
        .await
        .unwrap();
    assert!(access.iter().any(|(jti, _)| *jti == next.access_jti));
    assert!(access.iter().all(|(_, exp)| *exp > now));
    assert!(repo
        .get_refresh_token(&next.token_hash)
        .await
        .unwrap()
        .unwrap()
        .revoked_at
        .is_some());

    // Revocation by user and client, and the purge of expired tokens.
    let other = refresh_record(&t, &s, &c, &user.id, "fam-2", now - 1);
    repo.insert_refresh_token(&other).await.unwrap();
    let live = refresh_record(&t, &s, &c, &user.id, "fam-3", now + 10);
    repo.insert_refresh_token(&live).await.unwrap();
    let access = repo
        .revoke_refresh_tokens_of(&t, &s, &user.id, &c, now)
        .await
        .unwrap();
    assert!(access.iter().any(|(jti, _)| *jti == live.access_jti));
    assert!(
        !access.iter().any(|(jti, _)| *jti == other.access_jti),
        "expired access tokens are not reported"
    );
    assert!(repo.delete_expired_refresh_tokens(now).await.unwrap() >= 1);
    assert!(repo
        .get_refresh_token(&other.token_hash)
        .await
        .unwrap()
        .is_none());
    assert!(repo
        .get_refresh_token(&live.token_hash)
        .await
        .unwrap()
        .is_some());
    // Deleting the user deletes their refresh tokens.
    repo.delete_user(&t, &s, &user.id, &rec(&t)).await.unwrap();
    assert!(repo
        .get_refresh_token(&live.token_hash)
        .await
        .unwrap()
        .is_none());
}

fn bucket(key: &str, interval_ms: u64, burst: u32) -> RateCheck<'_> {
    RateCheck {
        key,
        interval: Duration::from_millis(interval_ms),
        burst,
        peek: false,
        refund: 0,
        owner: test_owner(),
    }
}

pub(crate) async fn short_lived_rate_limit_peeks_and_refunds(store: Arc<dyn ShortLivedStore>) {
    let allowed = |d: RateDecision| matches!(d, RateDecision::Allowed { .. });
    // A bucket only consulted must have room for one, and is never charged.
    let (a, f) = (unique("rlpa"), unique("rlpf"));
    let peeked = RateCheck {
        peek: true,
        ..bucket(&f, 60_000, 1)
    };
    for _ in 0..3 {
        assert!(allowed(
            store
                .rate_limit(&[bucket(&a, 60_000, 10), peeked], 1)
                .await
                .unwrap()
        ));
    }
    assert!(allowed(
        store.rate_limit(&[bucket(&f, 60_000, 1)], 1).await.unwrap()
    ));
    assert!(matches!(
        store
            .rate_limit(&[bucket(&a, 60_000, 10), peeked], 1)
            .await
            .unwrap(),
        RateDecision::Limited { index: 1, .. }
    ));
    // Refused by the peeked bucket: the charged one was not charged (7 of 10 left).
    for _ in 0..7 {
        assert!(allowed(
            store
                .rate_limit(&[bucket(&a, 60_000, 10)], 1)
                .await
                .unwrap()
        ));
    }
    assert!(!allowed(
        store
            .rate_limit(&[bucket(&a, 60_000, 10)], 1)
            .await
            .unwrap()
    ));

    // A batch takes at most half the room beyond the request itself.
    let b = unique("rlh");
    assert_eq!(
        store
            .rate_limit(&[bucket(&b, 60_000, 9)], 32)
            .await
            .unwrap(),
        RateDecision::Allowed { granted: 5 }
    );
    assert_eq!(
        store
            .rate_limit(&[bucket(&b, 60_000, 9)], 32)
            .await
            .unwrap(),
        RateDecision::Allowed { granted: 2 }
    );
    // Handing back what was never used makes room again, even on a refusal.
    let full = |refund| RateCheck {
        refund,
        ..bucket(&b, 60_000, 9)
    };
    assert_eq!(
        store.rate_limit(&[full(0)], 32).await.unwrap(),
        RateDecision::Allowed { granted: 1 }
    );
    assert_eq!(
        store.rate_limit(&[full(0)], 32).await.unwrap(),
        RateDecision::Allowed { granted: 1 }
    );
    assert!(!allowed(store.rate_limit(&[full(0)], 1).await.unwrap()));
    assert_eq!(
        store.rate_limit(&[full(3)], 1).await.unwrap(),
        RateDecision::Allowed { granted: 1 }
    );
    for _ in 0..2 {
        assert!(allowed(store.rate_limit(&[full(0)], 1).await.unwrap()));
    }
    assert!(!allowed(store.rate_limit(&[full(0)], 1).await.unwrap()));
    let (c, d) = (unique("rlrc"), unique("rlrd"));
    store.rate_limit(&[bucket(&c, 60_000, 1)], 1).await.unwrap();
    store.rate_limit(&[bucket(&d, 60_000, 1)], 1).await.unwrap();
    let refunded = RateCheck {
        refund: 1,
        ..bucket(&c, 60_000, 1)
    };
    assert!(!allowed(
        store
            .rate_limit(&[refunded, bucket(&d, 60_000, 1)], 1)
            .await
            .unwrap()
    ));
    assert!(
        allowed(store.rate_limit(&[bucket(&c, 60_000, 1)], 1).await.unwrap()),
        "a refund holds when the request is refused"
    );
}

pub(crate) async fn short_lived_rate_limit(store: Arc<dyn ShortLivedStore>) {
    // A burst of 3, then a refusal whose wait is about one interval.
    let k = unique("rl");
    for _ in 0..3 {
        assert_eq!(
            store.rate_limit(&[bucket(&k, 10_000, 3)], 1).await.unwrap(),
            RateDecision::Allowed { granted: 1 }
        );
    }
    match store.rate_limit(&[bucket(&k, 10_000, 3)], 1).await.unwrap() {
        RateDecision::Limited { index, retry_after } => {
            assert_eq!(index, 0);
            assert!(
                retry_after > Duration::from_secs(9) && retry_after <= Duration::from_secs(10),
                "{retry_after:?}"
            );
        }
        RateDecision::Allowed { .. } => panic!("fourth request of a burst of 3 admitted"),
    }

    // All or nothing: a full bucket refuses the request, and the one with room is not charged.
    let (a, b) = (unique("rla"), unique("rlb"));
    assert_eq!(
        store.rate_limit(&[bucket(&b, 10_000, 1)], 1).await.unwrap(),
        RateDecision::Allowed { granted: 1 }
    );
    assert!(matches!(
        store
            .rate_limit(&[bucket(&a, 10_000, 1), bucket(&b, 10_000, 1)], 1)
            .await
            .unwrap(),
        RateDecision::Limited { index: 1, .. }
    ));
    assert_eq!(
        store.rate_limit(&[bucket(&a, 10_000, 1)], 1).await.unwrap(),
        RateDecision::Allowed { granted: 1 },
        "the refused request charged the bucket that had room"
    );

    // Of two full buckets, the longer wait is reported.
    let (c, d) = (unique("rlc"), unique("rld"));
    store.rate_limit(&[bucket(&c, 1_000, 1)], 1).await.unwrap();
    store.rate_limit(&[bucket(&d, 20_000, 1)], 1).await.unwrap();
    match store
        .rate_limit(&[bucket(&c, 1_000, 1), bucket(&d, 20_000, 1)], 1)
        .await
        .unwrap()
    {
        RateDecision::Limited { index, retry_after } => {
            assert_eq!(index, 1);
            assert!(retry_after > Duration::from_secs(10), "{retry_after:?}");
        }
        RateDecision::Allowed { .. } => panic!("two full buckets admitted a request"),
    }

    // A bucket refills at its rate: poll with a deadline.
    let e = unique("rle");
    assert_eq!(
        store.rate_limit(&[bucket(&e, 100, 1)], 1).await.unwrap(),
        RateDecision::Allowed { granted: 1 }
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match store.rate_limit(&[bucket(&e, 100, 1)], 1).await.unwrap() {
            RateDecision::Allowed { .. } => break,
            RateDecision::Limited { retry_after, .. } => {
                assert!(retry_after <= Duration::from_millis(100), "{retry_after:?}");
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bucket did not refill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) async fn short_lived_rate_limit_is_atomic(store: Arc<dyn ShortLivedStore>) {
    for _ in 0..5 {
        let shared = unique("rls");
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let s = store.clone();
                let shared = shared.clone();
                tokio::spawn(async move {
                    let own = unique("rlo");
                    let checks = [bucket(&shared, 60_000, 5), bucket(&own, 60_000, 100)];
                    s.rate_limit(&checks, 1).await.unwrap() == RateDecision::Allowed { granted: 1 }
                })
            })
            .collect();
        let mut admitted = 0;
        for t in tasks {
            admitted += usize::from(t.await.unwrap());
        }
        assert_eq!(
            admitted, 5,
            "a burst of 5 admitted {admitted} of 16 concurrent requests"
        );
    }
}

pub(crate) async fn short_lived_rate_limit_grants_batches(store: Arc<dyn ShortLivedStore>) {
    // Asking for five from a bucket of three: as many as fit (at least one, at most three),
    // and exactly the rest remain for later requests.
    let k = unique("rlb");
    let granted = match store.rate_limit(&[bucket(&k, 60_000, 3)], 5).await.unwrap() {
        RateDecision::Allowed { granted } => granted,
        RateDecision::Limited { .. } => panic!("an empty bucket refused"),
    };
    assert!((1..=3).contains(&granted), "{granted}");
    for _ in granted..3 {
        assert_eq!(
            store.rate_limit(&[bucket(&k, 60_000, 3)], 1).await.unwrap(),
            RateDecision::Allowed { granted: 1 }
        );
    }
    assert!(matches!(
        store.rate_limit(&[bucket(&k, 60_000, 3)], 1).await.unwrap(),
        RateDecision::Limited { .. }
    ));
    // The smallest bucket bounds a batch over several.
    let (x, y) = (unique("rlx"), unique("rly"));
    match store
        .rate_limit(&[bucket(&x, 60_000, 10), bucket(&y, 60_000, 2)], 8)
        .await
        .unwrap()
    {
        RateDecision::Allowed { granted } => assert!((1..=2).contains(&granted), "{granted}"),
        RateDecision::Limited { .. } => panic!("empty buckets refused"),
    }
}

/// A fresh tenant with two servers, unique per run (Redis is shared between runs).
fn owners() -> (TenantId, ServerId, ServerId) {
    (
        TenantId::parse(&unique("t")).unwrap(),
        ServerId::parse("one").unwrap(),
        ServerId::parse("two").unwrap(),
    )
}

#[allow(clippy::needless_pass_by_value)] // called on the call's result in place
fn over_share<T: std::fmt::Debug>(r: Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::OverShare { retry_after }) if retry_after > Duration::ZERO)
}

pub(crate) async fn short_lived_shares_bound_each_owner(store: Arc<dyn ShortLivedStore>) {
    let ttl = Duration::from_secs(30);
    let (a, one, two) = owners();
    let (b, b_server, _) = owners();
    let (a1, a2, b1) = (
        Owner::new(&a, &one),
        Owner::new(&a, &two),
        Owner::new(&b, &b_server),
    );
    // Server one of tenant A: a rate-limit bucket and two values fill its share of 3. (The
    // bucket lives for an interval: 10 s, longer than the test.)
    let rl = unique("rl");
    let check = |owner| RateCheck {
        key: &rl,
        interval: Duration::from_secs(10),
        burst: 100,
        peek: false,
        refund: 0,
        owner,
    };
    assert!(matches!(
        store.rate_limit(&[check(a1)], 1).await.unwrap(),
        RateDecision::Allowed { .. }
    ));
    let (k1, k2) = (unique("k"), unique("k"));
    store.put(a1, &k1, b"1", ttl).await.unwrap();
    assert!(store.put_if_absent(a1, &k2, b"2", ttl).await.unwrap());
    // Every way of creating a fourth entry is refused, with a wait.
    assert!(over_share(store.put(a1, &unique("k"), b"x", ttl).await));
    assert!(over_share(
        store.put_if_absent(a1, &unique("k"), b"x", ttl).await
    ));
    assert!(over_share(store.incr(a1, &unique("c"), ttl).await));
    let fresh = unique("rl");
    let new_bucket = RateCheck {
        key: &fresh,
        interval: Duration::from_secs(10),
        burst: 100,
        peek: false,
        refund: 0,
        owner: a1,
    };
    assert!(over_share(store.rate_limit(&[new_bucket], 1).await));
    // What exists keeps working: replacing a value, its bucket, reading.
    store.put(a1, &k1, b"1b", ttl).await.unwrap();
    assert!(!store.put_if_absent(a1, &k2, b"x", ttl).await.unwrap());
    assert!(matches!(
        store.rate_limit(&[check(a1)], 1).await.unwrap(),
        RateDecision::Allowed { .. }
    ));
    assert_eq!(store.get(&k1).await.unwrap().as_deref(), Some(&b"1b"[..]));
    // Server two of tenant A has room for two more: the tenant's share of 5 is then full.
    store.put(a2, &unique("k"), b"x", ttl).await.unwrap();
    store.incr(a2, &unique("c"), ttl).await.unwrap();
    assert!(over_share(store.put(a2, &unique("k"), b"x", ttl).await));
    // Tenant B notices nothing.
    for _ in 0..3 {
        store.put(b1, &unique("k"), b"x", ttl).await.unwrap();
    }
    let b_bucket = unique("rl");
    let b_check = RateCheck {
        key: &b_bucket,
        interval: Duration::from_secs(10),
        burst: 100,
        peek: false,
        refund: 0,
        owner: b1,
    };
    assert!(over_share(store.put(b1, &unique("k"), b"x", ttl).await));
    assert!(over_share(store.rate_limit(&[b_check], 1).await));
}

pub(crate) async fn short_lived_shares_are_released(store: Arc<dyn ShortLivedStore>) {
    let ttl = Duration::from_secs(30);
    let (t, one, _) = owners();
    let owner = Owner::new(&t, &one);
    let keys: Vec<String> = (0..3).map(|_| unique("k")).collect();
    for k in &keys {
        store.put(owner, k, b"v", ttl).await.unwrap();
    }
    assert!(over_share(store.put(owner, &unique("k"), b"x", ttl).await));
    // Taken, removed: the room is back at once.
    assert!(store.take(owner, &keys[0]).await.unwrap().is_some());
    let again = unique("k");
    store.put(owner, &again, b"v", ttl).await.unwrap();
    assert!(store.remove(owner, &keys[1]).await.unwrap());
    let counter = unique("c");
    assert_eq!(store.incr(owner, &counter, ttl).await.unwrap(), 1);
    assert!(over_share(store.incr(owner, &unique("c"), ttl).await));
    // An existing counter still counts.
    assert_eq!(store.incr(owner, &counter, ttl).await.unwrap(), 2);
    // Expired: released too (the in-process store reclaims on a full share).
    let (t2, s2, _) = owners();
    let brief = Owner::new(&t2, &s2);
    for _ in 0..3 {
        store
            .put(brief, &unique("k"), b"v", Duration::from_millis(50))
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match store.put(brief, &unique("k"), b"v", ttl).await {
            Ok(()) => break,
            Err(StoreError::OverShare { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("expired entries were never released: {e}"),
        }
    }
}

pub(crate) async fn short_lived_shares_hold_under_concurrency(store: Arc<dyn ShortLivedStore>) {
    let (t, one, _) = owners();
    let (t, one) = (Arc::new(t), Arc::new(one));
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (store, t, one) = (store.clone(), t.clone(), one.clone());
            tokio::spawn(async move {
                store
                    .put(
                        Owner::new(&t, &one),
                        &unique("k"),
                        b"v",
                        Duration::from_secs(30),
                    )
                    .await
                    .is_ok()
            })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        stored += usize::from(task.await.unwrap());
    }
    assert_eq!(
        stored, 3,
        "the server's share is 3 whatever the concurrency"
    );
}

macro_rules! contract_tests {
    ($backend:ident: $open:path => $($test:ident),+) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(store) = $open().await {
                        super::$test(store).await;
                    }
                }
            )+
        }
    };
}

contract_tests!(sqlite_repo: super::sqlite => tenants_crud, tenants_paginate, servers_clients_and_keys, admin_token_set_once, key_rotation_is_conditional, audit_rows_commit_with_their_changes, audit_filters_and_pages, credentials_crud, users_and_consents, refresh_token_families, revoked_subjects_and_user_tokens);
contract_tests!(postgres_repo: super::postgres => tenants_crud, tenants_paginate, servers_clients_and_keys, admin_token_set_once, key_rotation_is_conditional, audit_rows_commit_with_their_changes, audit_filters_and_pages, credentials_crud, users_and_consents, refresh_token_families, revoked_subjects_and_user_tokens);
contract_tests!(memory_store: super::memory => short_lived_semantics, short_lived_expiry, short_lived_take_is_atomic, short_lived_rate_limit, short_lived_rate_limit_is_atomic, short_lived_rate_limit_grants_batches, short_lived_rate_limit_peeks_and_refunds);
contract_tests!(redis_store: super::redis => short_lived_semantics, short_lived_expiry, short_lived_take_is_atomic, short_lived_rate_limit, short_lived_rate_limit_is_atomic, short_lived_rate_limit_grants_batches, short_lived_rate_limit_peeks_and_refunds);
contract_tests!(memory_shares: super::memory_small_shares => short_lived_shares_bound_each_owner, short_lived_shares_are_released, short_lived_shares_hold_under_concurrency);
contract_tests!(redis_shares: super::redis_small_shares => short_lived_shares_bound_each_owner, short_lived_shares_are_released, short_lived_shares_hold_under_concurrency);
