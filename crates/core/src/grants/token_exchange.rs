//! Token exchange (RFC 8693): a confidential client trades a subject token — an access token
//! of this server, or a JWT / ID token of one of its `trusted_issuers` — for a new access
//! token about the same subject. Without an actor token this is impersonation; with one it is
//! delegation, and the new token carries `act` (§4.1), nested when the subject token already
//! had one (a chain). The scope only narrows: never more than the subject token held, nor
//! than the client is registered for. The audience is what the client may request
//! (`resource`/`audience` among its registered `audience`s, else `invalid_target`).
//!
//! An exchanged token lists the `jti`s it was exchanged from (`exchanged_from`): revoking the
//! subject token — or the refresh-token family that issued it — revokes the exchanged one.
//!
//! The verified parties ([`Parties`]: the subject's and the actor's claims) are a value of
//! their own, for whatever else wants them (claims policies).

use serde_json::{json, Map, Value};

use super::trusted::{self, Expect};
use super::{access_only, granted_scope, requested_scope, required, Grants};
use crate::client_auth::Authenticated;
use crate::oauth::{ErrorCode, OAuthError, TokenParams, TokenTypeUri};
use crate::registry::ServerRuntime;
use crate::revocation::{self, EXCHANGED_FROM, MAX_EXCHANGE_CHAIN};
use crate::scope::Scopes;
use crate::secrets::ClientSecret;
use crate::store::store_failure;
use crate::tokens::{Subject, Target, TokenResponse};

/// A presented token and its type.
#[derive(Debug)]
struct Presented {
    token: ClientSecret,
    kind: TokenTypeUri,
}

/// A parsed token-exchange request.
#[derive(Debug)]
pub struct TokenExchange {
    subject: Presented,
    actor: Option<Presented>,
    scope: Option<Scopes>,
    target: Target,
}

/// Who a verified token is about, and who vouched for it.
#[derive(Debug, Clone)]
pub struct Party {
    /// Its verified claims.
    pub claims: Map<String, Value>,
    /// Issued by this server (an access token), not by a trusted issuer.
    pub own: bool,
    /// The scope it holds: its `scope`, within what a trusted issuer may vouch for.
    pub scopes: Scopes,
}

impl Party {
    fn text(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

/// The verified subject and actor of an exchange: the inputs of what it issues.
#[derive(Debug, Clone)]
pub struct Parties {
    /// The subject token's party.
    pub subject: Party,
    /// The actor token's party (delegation), if any.
    pub actor: Option<Party>,
}

fn token_type(value: Option<&str>, name: &str) -> Result<TokenTypeUri, OAuthError> {
    let value = required(value, name)?;
    match TokenTypeUri::parse(value) {
        Some(t @ (TokenTypeUri::AccessToken | TokenTypeUri::Jwt | TokenTypeUri::IdToken)) => Ok(t),
        _ => Err(OAuthError::invalid_request(format!(
            "`{name}` must be the access_token, jwt or id_token type of RFC 8693 §3"
        ))),
    }
}

impl TokenExchange {
    /// Parses the request (RFC 8693 §2.1).
    ///
    /// # Errors
    /// `invalid_request` without `subject_token`/`subject_token_type`, for an actor token
    /// without its type (or a type without the token), an unsupported token type or
    /// `requested_token_type`; `invalid_scope` for a malformed `scope`.
    pub fn parse(params: &TokenParams) -> Result<Self, OAuthError> {
        let subject = Presented {
            token: required(params.subject_token.as_ref(), "subject_token")?.clone(),
            kind: token_type(params.subject_token_type.as_deref(), "subject_token_type")?,
        };
        let actor = match (&params.actor_token, &params.actor_token_type) {
            (None, None) => None,
            (Some(token), kind) => Some(Presented {
                token: token.clone(),
                kind: token_type(kind.as_deref(), "actor_token_type")?,
            }),
            (None, Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "`actor_token_type` without `actor_token` (RFC 8693 §2.1)",
                ))
            }
        };
        match params
            .requested_token_type
            .as_deref()
            .map(TokenTypeUri::parse)
        {
            None | Some(Some(TokenTypeUri::AccessToken | TokenTypeUri::Jwt)) => {}
            Some(_) => {
                return Err(OAuthError::invalid_request(
                    "`requested_token_type`: this server issues access tokens by exchange",
                ))
            }
        }
        Ok(Self {
            subject,
            actor,
            scope: requested_scope(params)?,
            target: Target::of(params),
        })
    }

    /// Verifies the subject and actor tokens.
    ///
    /// # Errors
    /// `invalid_request` for a token that does not verify, is revoked, expired, from an
    /// untrusted issuer, or of this server but neither issued to nor addressed to the client.
    pub async fn parties(
        &self,
        ctx: &Grants<'_>,
        server: &ServerRuntime,
        auth: &Authenticated,
    ) -> Result<Parties, OAuthError> {
        let subject = party(ctx, server, auth, &self.subject, "subject_token").await?;
        let actor = match &self.actor {
            Some(a) => Some(party(ctx, server, auth, a, "actor_token").await?),
            None => None,
        };
        Ok(Parties { subject, actor })
    }

    /// Verifies the parties and issues the exchanged access token.
    ///
    /// # Errors
    /// As [`Self::parties`]; `invalid_scope` beyond the subject's scope; `invalid_target`
    /// for an audience the client may not request; `503`.
    pub async fn issue(
        self,
        ctx: &Grants<'_>,
        server: &ServerRuntime,
        auth: &Authenticated,
    ) -> Result<TokenResponse, OAuthError> {
        let parties = self.parties(ctx, server, auth).await?;
        let held = parties
            .subject
            .scopes
            .intersection(&auth.client.client.scopes());
        let scope = granted_scope(self.scope, &held)?;
        let act = act_claim(&parties)?;
        let exchanged_from = chain(&parties.subject)?;
        let sub = parties.subject.text("sub").unwrap_or_default();
        let auth_time = parties
            .subject
            .own
            .then(|| {
                parties
                    .subject
                    .claims
                    .get("auth_time")
                    .and_then(Value::as_i64)
            })
            .flatten();
        let access = ctx
            .minter
            .access_token(
                server,
                auth,
                Subject {
                    sub,
                    auth_time,
                    act: act.as_ref(),
                    exchanged_from: &exchanged_from,
                },
                scope.as_deref(),
                &self.target,
                &crate::revoked_subjects::new_jti(ctx.minter.clock),
            )
            .await?;
        Ok(access_only(
            access,
            server,
            scope,
            Some(TokenTypeUri::AccessToken.as_str()),
        ))
    }
}

/// RFC 8693 §2.2.2: an unacceptable subject or actor token is `invalid_request`.
fn refused(e: OAuthError) -> OAuthError {
    if e.code == ErrorCode::InvalidGrant {
        OAuthError::invalid_request(e.description)
    } else {
        e
    }
}

async fn party(
    ctx: &Grants<'_>,
    server: &ServerRuntime,
    auth: &Authenticated,
    presented: &Presented,
    name: &str,
) -> Result<Party, OAuthError> {
    let token = presented.token.expose();
    if presented.kind == TokenTypeUri::AccessToken {
        let bad = || {
            OAuthError::invalid_request(format!(
                "`{name}` is not an active access token of this server"
            ))
        };
        let claims = revocation::verify_access_token(server, token).ok_or_else(bad)?;
        // Like introspection (RFC 7662 §4): a client trades only tokens issued to it or
        // addressed to it.
        if !revocation::may_learn_about(&server.server, &auth.client.client.client_id, &claims) {
            return Err(bad());
        }
        let (t, s) = (&server.server.tenant_id, &server.server.id);
        let (revoked, _) = ctx
            .registry
            .revoked_subjects(ctx.repo, t, s)
            .await
            .map_err(|e| store_failure(&e))?;
        if revocation::is_access_token_revoked(&revoked, ctx.short_lived, server, &claims).await? {
            return Err(bad());
        }
        let scopes = claims
            .get("scope")
            .and_then(Value::as_str)
            .and_then(|s| Scopes::parse(s).ok())
            .unwrap_or_default();
        return Ok(Party {
            claims,
            own: true,
            scopes,
        });
    }
    let verified = trusted::verify(
        ctx,
        server,
        token,
        Expect {
            audiences: &[&server.issuer],
            max_lifetime: None,
            name,
        },
    )
    .await
    .map_err(refused)?;
    let vouched = verified.issuer.scopes();
    let scopes = match verified.claims.get("scope").and_then(Value::as_str) {
        Some(s) => Scopes::parse(s).unwrap_or_default().intersection(&vouched),
        None => vouched,
    };
    Ok(Party {
        claims: verified.claims,
        own: false,
        scopes,
    })
}

/// How deep an `act` claim nests.
fn depth(act: Option<&Value>) -> usize {
    let mut n = 0;
    let mut at = act;
    while let Some(a) = at {
        n += 1;
        at = a.get("act");
    }
    n
}

/// `act` of the new token: the actor, with the subject token's own `act` nested below it (the
/// earlier actors of a chain, RFC 8693 §4.1); without an actor, the subject token's `act`
/// unchanged.
fn act_claim(parties: &Parties) -> Result<Option<Value>, OAuthError> {
    let prior = parties.subject.claims.get("act");
    let act = match &parties.actor {
        None => prior.cloned(),
        Some(actor) => {
            let mut a = Map::new();
            a.insert("sub".into(), json!(actor.text("sub").unwrap_or_default()));
            if !actor.own {
                if let Some(iss) = actor.text("iss") {
                    a.insert("iss".into(), json!(iss));
                }
            }
            if let Some(p) = prior {
                a.insert("act".into(), p.clone());
            }
            Some(Value::Object(a))
        }
    };
    if depth(act.as_ref()) > MAX_EXCHANGE_CHAIN {
        return Err(OAuthError::invalid_request(format!(
            "the delegation chain would be longer than {MAX_EXCHANGE_CHAIN} actors"
        )));
    }
    Ok(act)
}

/// `exchanged_from` of the new token: the subject token's `jti` and its own chain.
fn chain(subject: &Party) -> Result<Vec<String>, OAuthError> {
    if !subject.own {
        return Ok(Vec::new());
    }
    let mut ids: Vec<String> = subject.text("jti").map(str::to_owned).into_iter().collect();
    if let Some(prior) = subject.claims.get(EXCHANGED_FROM).and_then(Value::as_array) {
        ids.extend(prior.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    if ids.len() > MAX_EXCHANGE_CHAIN {
        return Err(OAuthError::invalid_request(format!(
            "the subject token was exchanged more than {MAX_EXCHANGE_CHAIN} times already"
        )));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::needless_pass_by_value)]
    fn party(claims: Value, own: bool) -> Party {
        Party {
            claims: claims.as_object().unwrap().clone(),
            own,
            scopes: Scopes::default(),
        }
    }

    #[test]
    fn act_nests_earlier_actors_below_the_current_one() {
        let subject = party(json!({"sub": "alice", "act": {"sub": "svc-a"}}), true);
        let actor = party(json!({"sub": "svc-b", "iss": "https://ci.example"}), false);
        let act = act_claim(&Parties {
            subject: subject.clone(),
            actor: Some(actor),
        })
        .unwrap();
        assert_eq!(
            act,
            Some(json!({"sub": "svc-b", "iss": "https://ci.example", "act": {"sub": "svc-a"}}))
        );
        // Impersonation keeps what the subject token already said.
        let same = act_claim(&Parties {
            subject,
            actor: None,
        })
        .unwrap();
        assert_eq!(same, Some(json!({"sub": "svc-a"})));
    }

    #[test]
    fn chains_are_bounded() {
        let mut act = json!({"sub": "a0"});
        for i in 1..MAX_EXCHANGE_CHAIN {
            act = json!({"sub": format!("a{i}"), "act": act});
        }
        let subject = party(json!({"sub": "u", "act": act}), true);
        let actor = party(json!({"sub": "one-more"}), true);
        let e = act_claim(&Parties {
            subject,
            actor: Some(actor),
        })
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        let from: Vec<String> = (0..MAX_EXCHANGE_CHAIN).map(|i| format!("j{i}")).collect();
        let subject = party(
            json!({"sub": "u", "jti": "new", EXCHANGED_FROM: from}),
            true,
        );
        assert!(chain(&subject).is_err());
        let subject = party(json!({"sub": "u", "jti": "j"}), true);
        assert_eq!(chain(&subject).unwrap(), vec!["j".to_owned()]);
    }
}
