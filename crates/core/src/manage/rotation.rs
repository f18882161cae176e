//! Signing-key rotation, manual and scheduled, through one conditional path that is safe with
//! several processes: a rotation replaces a *particular* current key, so of several processes
//! rotating from the same key exactly one succeeds and the others learn they lost (and pick
//! the new key up through cache invalidation).
//!
//! The schedule is a per-server `key_rotation_period`. A background task in each process that
//! serves the admin API runs [`tick`] about once a minute (with jitter): it rotates the servers
//! whose newest current key has reached that age, and deletes retiring keys once every token
//! they signed has expired.

use std::sync::Arc;
use std::time::Duration;

use crate::app::Tollgate;
use crate::audit::{AuditRecord, Origin, Resource};
use crate::clock;
use crate::ids::{ServerId, TenantId};
use crate::invalidation::Invalidation;
use crate::keys::{KeyRecord, KeyStatus};
use crate::manage::{key_algs, retire_at, ManageError};
use crate::model::server::{Server, SigningAlg};

/// How often the scheduler looks for due servers (each run is this ± a quarter, at random).
pub const TICK_INTERVAL: Duration = Duration::from_secs(60);
/// Most servers rotated in one tick; the rest wait for the next.
const MAX_PER_TICK: u32 = 100;
/// Deadline for one tick.
const TICK_DEADLINE: Duration = Duration::from_secs(300);

async fn generate(
    app: &Tollgate,
    server: &Server,
    alg: SigningAlg,
    now: i64,
) -> Result<KeyRecord, ManageError> {
    let master = app.master.clone();
    let (t, s) = (server.tenant_id.clone(), server.id.clone());
    // RSA generation takes tens to hundreds of milliseconds: off the async runtime.
    tokio::task::spawn_blocking(move || {
        KeyRecord::generate(&master, &t, &s, alg, KeyStatus::Current, now)
    })
    .await
    .map_err(|e| ManageError::Internal(e.to_string()))?
    .map_err(|e| ManageError::Internal(e.to_string()))
}

/// Rotates the server's current keys (its signing algorithm's, then RS256 for ID tokens), each
/// only if the key it replaces is still current. Stops at the first key another process
/// rotated first. Announces the change when anything rotated. Returns whether this call
/// rotated (false: another process did, at the same moment). Each key replaced is one audit
/// row by `by` (the public halves of the old and the new key), written with the rotation.
///
/// # Errors
/// Store failure or key generation failure.
pub async fn rotate(
    app: &Tollgate,
    by: &Origin,
    server: &Server,
    now: i64,
) -> Result<bool, ManageError> {
    let (t, s) = (&server.tenant_id, &server.id);
    let keys = app.repo.list_keys(t, s).await?;
    if by.actor == crate::audit::Actor::Scheduler {
        // The schedule decided from a listing that may be stale: another process may have
        // rotated between that listing and this one. Rotate only a key that is still due.
        let period = server.key_rotation_period.unwrap_or(i64::MAX);
        let still_due = keys
            .iter()
            .filter(|k| k.alg == server.signing_alg && k.status == KeyStatus::Current)
            .map(|k| k.created_at)
            .max()
            .is_none_or(|newest| newest.saturating_add(period) <= now);
        if !still_due {
            return Ok(false);
        }
    }
    let retire = retire_at(server, now);
    let mut rotated = false;
    for alg in key_algs(server.signing_alg) {
        // Newest first: the one that signs.
        let current = keys
            .iter()
            .rev()
            .find(|k| k.alg == alg && k.status == KeyStatus::Current);
        let new = generate(app, server, alg, now).await?;
        let mut audit = AuditRecord::new(by, "key.rotate", Resource::server(t, s).segment("keys"))
            .after(&new.public_jwk);
        audit.at = now;
        let won = match current {
            Some(current) => {
                let audit = audit.before(&current.public_jwk);
                app.repo
                    .rotate_key_if_current(&new, &current.kid, retire, now, &audit)
                    .await?
            }
            // No current key of this algorithm (it should not happen): give it one.
            None => {
                app.repo.rotate_key(&new, retire, now, &audit).await?;
                true
            }
        };
        if !won {
            break;
        }
        rotated = true;
    }
    if rotated {
        app.invalidate(Invalidation::keys(t, s)).await;
    }
    Ok(rotated)
}

/// Gives every server that holds no current RS256 key one (at most 100 per call): ID tokens
/// are RS256 unless a client registered another algorithm, so every server must hold one.
/// Servers created by Tollgate always got one; this covers any that lost it, at start-up and
/// then on every tick. Each key is an audit row (`key.create`) by `by`. Returns the servers
/// given a key.
///
/// Two processes doing this at the same moment may each add a key; both are then current and
/// published, and the next rotation replaces both.
///
/// # Errors
/// Store failure while finding the servers; a failure for one server is logged and skipped.
pub async fn ensure_id_token_keys(
    app: &Tollgate,
    by: &Origin,
    now: i64,
) -> Result<Vec<(TenantId, ServerId)>, ManageError> {
    let mut given = Vec::new();
    for server in app
        .repo
        .servers_without_current_key(SigningAlg::RS256, MAX_PER_TICK)
        .await?
    {
        let (t, s) = (server.tenant_id.clone(), server.id.clone());
        let result = async {
            let new = generate(app, &server, SigningAlg::RS256, now).await?;
            let mut audit =
                AuditRecord::new(by, "key.create", Resource::server(&t, &s).segment("keys"))
                    .after(&new.public_jwk);
            audit.at = now;
            app.repo
                .rotate_key(&new, retire_at(&server, now), now, &audit)
                .await?;
            Ok::<_, ManageError>(())
        }
        .await;
        match result {
            Ok(()) => {
                tracing::info!(tenant = %t, server = %s, "RS256 key for ID tokens created");
                app.invalidate(Invalidation::keys(&t, &s)).await;
                given.push((t, s));
            }
            Err(e) => {
                tracing::warn!(tenant = %t, server = %s, error = %e, "creating the RS256 key failed");
            }
        }
    }
    Ok(given)
}

/// What one scheduler run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Servers this process rotated.
    pub rotated: Vec<(TenantId, ServerId)>,
    /// Due servers another process rotated first.
    pub lost: usize,
    /// Due servers whose rotation failed (logged; retried next tick).
    pub failed: usize,
    /// Servers whose expired retiring keys were deleted.
    pub retired: Vec<(TenantId, ServerId)>,
    /// Servers given the RS256 key they lacked ([`ensure_id_token_keys`]).
    pub keys_created: Vec<(TenantId, ServerId)>,
}

/// One scheduler run at `now`: rotates every due server (at most 100), then deletes retiring
/// keys whose time has passed. Public so that tests can drive the schedule with a chosen
/// `now` instead of waiting hours.
///
/// # Errors
/// Store failure while finding due servers or deleting retired keys; a failure to rotate one
/// server is counted and logged instead.
pub async fn tick(app: &Tollgate, now: i64) -> Result<TickReport, ManageError> {
    let mut report = TickReport {
        keys_created: ensure_id_token_keys(app, &Origin::scheduler(), now).await?,
        ..TickReport::default()
    };
    for server in app
        .repo
        .servers_due_for_key_rotation(now, MAX_PER_TICK)
        .await?
    {
        let (t, s) = (server.tenant_id.clone(), server.id.clone());
        match rotate(app, &Origin::scheduler(), &server, now).await {
            Ok(true) => {
                tracing::info!(tenant = %t, server = %s, "signing keys rotated on schedule");
                report.rotated.push((t, s));
            }
            Ok(false) => report.lost += 1,
            Err(e) => {
                tracing::warn!(tenant = %t, server = %s, error = %e, "scheduled key rotation failed");
                report.failed += 1;
            }
        }
    }
    for (t, s) in app.repo.delete_retired_keys(now).await? {
        app.invalidate(Invalidation::keys(&t, &s)).await;
        report.retired.push((t, s));
    }
    // The same housekeeper drops refresh tokens past their expiry; rotated ones stay until
    // then, so that their reuse is still recognised (and revokes their family).
    let purged = app.repo.delete_expired_refresh_tokens(now).await?;
    if purged > 0 {
        tracing::info!(purged, "expired refresh tokens deleted");
    }
    Ok(report)
}

/// Runs [`tick`] about every [`TICK_INTERVAL`] until aborted. Replicas started together are
/// spread apart by a random first delay and a random interval.
pub async fn run(app: Arc<Tollgate>) {
    // At start-up, before the first (jittered) tick: servers without an RS256 key get one.
    match tokio::time::timeout(
        TICK_DEADLINE,
        ensure_id_token_keys(&app, &Origin::scheduler(), app.clock.now()),
    )
    .await
    {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "ensuring RS256 keys failed"),
        Err(_) => tracing::warn!("ensuring RS256 keys timed out"),
    }
    tokio::time::sleep(clock::jitter(TICK_INTERVAL)).await;
    loop {
        match tokio::time::timeout(TICK_DEADLINE, tick(&app, app.clock.now())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "key rotation scheduler: run failed"),
            Err(_) => tracing::warn!("key rotation scheduler: run timed out"),
        }
        let interval = TICK_INTERVAL * 3 / 4 + clock::jitter(TICK_INTERVAL / 2);
        tokio::time::sleep(interval).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Actor, AuditFilter};
    use crate::keys::MasterKey;
    use crate::manage;
    use crate::model::server::NewServer;
    use crate::model::tenant::NewTenant;
    use crate::store::{open_repository, open_short_lived, Repository};
    use crate::TollgateOptions;

    async fn app_on(repo: Arc<dyn Repository>, master: &str) -> Tollgate {
        Tollgate::new(
            repo,
            open_short_lived(None).await.unwrap(),
            MasterKey::from_base64(master).unwrap(),
            TollgateOptions::default(),
        )
    }

    async fn sqlite_file() -> (Arc<dyn Repository>, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "tollgate-rotation-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        let repo = open_repository(&url).await.unwrap();
        repo.migrate().await.unwrap();
        (repo, dir)
    }

    fn root() -> Origin {
        Origin::new(Actor::Root, None)
    }

    fn master() -> String {
        MasterKey::generate().1
    }

    async fn server_with(app: &Tollgate, tid: &str, period: Option<i64>) -> Server {
        manage::create_tenant(
            app,
            &root(),
            serde_json::from_value::<NewTenant>(serde_json::json!({"id": tid, "name": "T"}))
                .unwrap(),
        )
        .await
        .unwrap();
        let mut body = serde_json::json!({"id": "main", "name": "Main"});
        if let Some(p) = period {
            body["key_rotation_period"] = p.into();
        }
        manage::create_server(
            app,
            &root(),
            &TenantId::parse(tid).unwrap(),
            serde_json::from_value::<NewServer>(body).unwrap(),
        )
        .await
        .unwrap()
    }

    fn current_kids(keys: &[KeyRecord]) -> Vec<(SigningAlg, String)> {
        keys.iter()
            .filter(|k| k.status == KeyStatus::Current)
            .map(|k| (k.alg, k.kid.clone()))
            .collect()
    }

    #[tokio::test]
    async fn tick_rotates_due_servers_and_deletes_expired_keys() {
        let (repo, dir) = sqlite_file().await;
        let app = app_on(repo.clone(), &master()).await;
        let server = server_with(&app, "sched", Some(7200)).await;
        let manual = manage::create_server(
            &app,
            &root(),
            &server.tenant_id,
            serde_json::from_value::<NewServer>(serde_json::json!({"id": "manual", "name": "M"}))
                .unwrap(),
        )
        .await
        .unwrap();
        let (t, s) = (server.tenant_id.clone(), server.id.clone());
        let first = repo.list_keys(&t, &s).await.unwrap();
        let created = first.iter().map(|k| k.created_at).max().unwrap();
        let before = current_kids(&first);
        assert_eq!(before.len(), 2, "ES256 and RS256");

        // Not yet due.
        let report = tick(&app, created + 7199).await.unwrap();
        assert_eq!(report, TickReport::default());

        // Due: both keys rotate; the manual-only server does not.
        let now = created + 7200;
        let report = tick(&app, now).await.unwrap();
        assert_eq!(report.rotated, vec![(t.clone(), s.clone())]);
        let keys = repo.list_keys(&t, &s).await.unwrap();
        let after = current_kids(&keys);
        assert_eq!(after.len(), 2);
        assert!(after.iter().all(|k| !before.contains(k)), "fresh keys");
        for (alg, kid) in &before {
            let old = keys.iter().find(|k| &k.kid == kid).unwrap();
            assert_eq!(old.status, KeyStatus::Retiring, "{alg:?}");
            assert_eq!(
                old.retire_at,
                Some(now + 3600),
                "published for the token lifetime"
            );
        }
        assert_eq!(repo.list_keys(&t, &manual.id).await.unwrap().len(), 2);
        // Each replaced key is an audit row by the scheduler, written with the rotation.
        let audit = repo
            .list_audit(
                &t,
                &AuditFilter {
                    action: Some("key.rotate".into()),
                    ..AuditFilter::default()
                },
                None,
                10,
            )
            .await
            .unwrap()
            .items;
        assert_eq!(audit.len(), 2, "{audit:?}");
        for row in &audit {
            assert_eq!(row.record.actor, "scheduler");
            assert_eq!(row.record.at, now);
            assert_eq!(
                row.record.resource,
                "/admin/tenants/sched/servers/main/keys"
            );
            let old = row.record.before.as_ref().unwrap()["kid"].clone();
            let new = row.record.after.as_ref().unwrap()["kid"].clone();
            assert!(before.iter().any(|(_, k)| old == k.as_str()), "{row:?}");
            assert!(after.iter().any(|(_, k)| new == k.as_str()), "{row:?}");
        }

        // Until their tokens have expired, the retiring keys stay.
        let report = tick(&app, now + 3599).await.unwrap();
        assert_eq!(report, TickReport::default());
        assert_eq!(repo.list_keys(&t, &s).await.unwrap().len(), 4);
        // Then they go, and the server's cached keys are dropped.
        let report = tick(&app, now + 3600).await.unwrap();
        assert_eq!(report.retired, vec![(t.clone(), s.clone())]);
        assert!(report.rotated.is_empty());
        let keys = repo.list_keys(&t, &s).await.unwrap();
        assert_eq!(current_kids(&keys), after);
        assert_eq!(keys.len(), 2);
        // And the next period brings the next rotation.
        let report = tick(&app, now + 7200).await.unwrap();
        assert_eq!(report.rotated, vec![(t.clone(), s.clone())]);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_server_without_an_rs256_key_gets_one() {
        let (repo, dir) = sqlite_file().await;
        let app = app_on(repo.clone(), &master()).await;
        let server = server_with(&app, "norsa", None).await;
        let (t, s) = (server.tenant_id.clone(), server.id.clone());
        let now = server.created_at + 10;
        // Nothing to do for a server created with its keys.
        assert!(ensure_id_token_keys(&app, &root(), now)
            .await
            .unwrap()
            .is_empty());
        // A server whose RS256 key is gone (as one created before ID tokens needed it).
        let url = format!("sqlite://{}", dir.join("t.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("DELETE FROM signing_keys WHERE alg = 'RS256'")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let report = tick(&app, now).await.unwrap();
        assert_eq!(report.keys_created, vec![(t.clone(), s.clone())]);
        let keys = repo.list_keys(&t, &s).await.unwrap();
        let algs: Vec<_> = current_kids(&keys).into_iter().map(|(a, _)| a).collect();
        assert_eq!(algs, [SigningAlg::ES256, SigningAlg::RS256]);
        let audit = repo
            .list_audit(
                &t,
                &AuditFilter {
                    action: Some("key.create".into()),
                    ..AuditFilter::default()
                },
                None,
                10,
            )
            .await
            .unwrap()
            .items;
        assert_eq!(audit.len(), 1, "{audit:?}");
        assert_eq!(audit[0].record.actor, "scheduler");
        // Once is enough.
        assert!(tick(&app, now + 1).await.unwrap().keys_created.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn two_concurrent_rotators_one_wins() {
        let (repo, dir) = sqlite_file().await;
        let key = master();
        // Two processes' worth of state over one database.
        let a = app_on(repo.clone(), &key).await;
        let b = app_on(repo.clone(), &key).await;
        let server = server_with(&a, "race", Some(3600)).await;
        let (t, s) = (server.tenant_id.clone(), server.id.clone());
        let before = current_kids(&repo.list_keys(&t, &s).await.unwrap());
        let now = server.created_at + 3 * 3600;
        let (ra, rb) = tokio::join!(tick(&a, now), tick(&b, now));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!(
            ra.rotated.len() + rb.rotated.len(),
            1,
            "exactly one rotates: {ra:?} {rb:?}"
        );
        assert_eq!(ra.failed + rb.failed, 0);
        let keys = repo.list_keys(&t, &s).await.unwrap();
        let after = current_kids(&keys);
        assert_eq!(after.len(), 2, "one current key per algorithm: {keys:?}");
        assert!(after.iter().all(|k| !before.contains(k)));
        assert_eq!(keys.len(), 4, "no key from the losing rotation: {keys:?}");

        // Manual rotation through the admin path uses the same conditional update: it rotates
        // from whatever is current now.
        let again = manage::rotate_keys(&b, &root(), &t, &s).await.unwrap();
        assert_eq!(
            again
                .iter()
                .filter(|k| k.status == KeyStatus::Current)
                .count(),
            3,
            "ES256, RS256 and the RS256 key's PS256 view"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_rotation_from_a_key_no_longer_current_changes_nothing() {
        let (repo, dir) = sqlite_file().await;
        let app = app_on(repo.clone(), &master()).await;
        let server = server_with(&app, "stale", None).await;
        let (t, s) = (server.tenant_id.clone(), server.id.clone());
        let stale_view = repo.list_keys(&t, &s).await.unwrap();
        assert!(rotate(&app, &root(), &server, server.created_at + 10)
            .await
            .unwrap());
        let after_first = repo.list_keys(&t, &s).await.unwrap();
        // A second rotator that read the keys before the first rotation loses.
        let es = stale_view
            .iter()
            .find(|k| k.alg == SigningAlg::ES256)
            .unwrap();
        let new = generate(&app, &server, SigningAlg::ES256, server.created_at + 11)
            .await
            .unwrap();
        assert!(!repo
            .rotate_key_if_current(
                &new,
                &es.kid,
                server.created_at + 4000,
                server.created_at + 11,
                &AuditRecord::new(
                    &root(),
                    "key.rotate",
                    Resource::server(&t, &s).segment("keys")
                ),
            )
            .await
            .unwrap());
        assert_eq!(repo.list_keys(&t, &s).await.unwrap(), after_first);
        let _ = std::fs::remove_dir_all(dir);
    }
}
