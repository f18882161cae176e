//! Issuing an authorization code at the end of the browser flow (RFC 6749 §4.1.2): what the
//! code stands for is chosen here and kept in the short-lived store by the grant that will
//! exchange it (`grants/code.rs`).

use super::flow::Step;
use super::request::AuthorizeRequest;
use super::response::{deliver, Target};
use super::session::Session;
use super::AuthorizeError;
use crate::app::Tollgate;
use crate::grants::code::{self as codes, CodeGrant};
use crate::registry::ServerRuntime;
use crate::secrets::random_token;

/// Issues a code for an approved request and returns the step that takes it to the client
/// (with `code`, `state` and RFC 9207 `iss`) in the request's response mode.
///
/// # Errors
/// When the short-lived store cannot keep the code, or the response cannot be signed.
pub(crate) async fn issue(
    app: &Tollgate,
    server: &ServerRuntime,
    request: &AuthorizeRequest,
    session: &Session,
) -> Result<Step, AuthorizeError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let code = random_token(32);
    let ttl = app.options.code_ttl;
    let now = app.clock.now();
    let grant = CodeGrant {
        client_id: request.client_id.to_string(),
        redirect_uri: request.redirect_uri.clone(),
        scope: request.scope.clone(),
        user_id: session.user_id.to_string(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        nonce: request.nonce.clone(),
        sid: session.sid.clone(),
        code_challenge: request.code_challenge.clone(),
        code_challenge_method: request.code_challenge_method,
        // Dated now: the exchange is refused if its user or client is revoked meanwhile.
        access_jti: crate::revoked_subjects::new_jti(app.clock.as_ref()),
        family_id: uuid::Uuid::new_v4().to_string(),
        expires_at: now + i64::try_from(ttl.as_secs()).unwrap_or(60),
    };
    codes::put(
        app.short_lived.as_ref(),
        t,
        s,
        &code,
        &grant,
        ttl,
        server.server.access_token_ttl,
    )
    .await?;
    let mut params = vec![("code", code)];
    if let Some(state) = &request.state {
        params.push(("state", state.clone()));
    }
    params.push(("iss", server.issuer.clone()));
    let target = Target {
        client_id: &request.client_id,
        redirect_uri: &request.redirect_uri,
        mode: request.response_mode,
    };
    deliver(app, server, target, params).await
}
