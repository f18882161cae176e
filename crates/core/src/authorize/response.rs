//! Delivering the authorization response (RFC 6749 §4.1.2, §4.1.2.1) the way the request's
//! `response_mode` asked: in the redirect URI's query or fragment, as an auto-submitting
//! form post (OAuth 2.0 Form Post Response Mode), or as one JWT signed with the server's key
//! (JARM: `query.jwt`, `fragment.jwt`, `form_post.jwt`), whose claims are the response's
//! parameters plus `iss`, `aud` (the client) and `exp`.

use serde_json::{Map, Value};

use super::flow::{Continue, Step};
use super::{AuthorizeError, RedirectError};
use crate::app::Tollgate;
use crate::ids::ClientId;
use crate::keys::TokenType;
use crate::oauth::{Carrier, ResponseMode};
use crate::registry::ServerRuntime;

/// How long a JWT-secured response is valid (JARM §2.1 recommends at most 10 minutes).
const JARM_TTL: i64 = 300;

/// A response to post to the client (Form Post Response Mode §2): the page posts `fields`
/// to `action`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPost {
    /// The client's redirect URI.
    pub action: String,
    /// The response's parameters.
    pub fields: Vec<(String, String)>,
    /// Where the form may lead (CSP `form-action`): the redirect URI's origin.
    pub redirect_source: String,
}

/// Where a response with `params` for `client_id` goes, delivered in `mode`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The client.
    pub client_id: &'a ClientId,
    /// Its redirect URI for this request.
    pub redirect_uri: &'a str,
    /// The request's response mode.
    pub mode: ResponseMode,
}

/// The browser's next step carrying `params` to the client.
///
/// # Errors
/// An error page when the client is gone or no key signs its responses; `503`.
pub(crate) async fn deliver(
    app: &Tollgate,
    server: &ServerRuntime,
    target: Target<'_>,
    params: Vec<(&'static str, String)>,
) -> Result<Step, AuthorizeError> {
    let params: Vec<(String, String)> = if target.mode.is_jwt() {
        vec![(
            "response".to_owned(),
            sign(app, server, target, params).await?,
        )]
    } else {
        params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    };
    Ok(match target.mode.carrier() {
        Carrier::Query => {
            let pairs: Vec<(&str, &str)> = params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            Step::Redirect(super::with_query(target.redirect_uri, &pairs))
        }
        Carrier::Fragment => Step::Redirect(with_fragment(target.redirect_uri, &params)),
        Carrier::FormPost => Step::FormPost(FormPost {
            action: target.redirect_uri.to_owned(),
            fields: params,
            redirect_source: super::flow::csp_source(target.redirect_uri),
        }),
    })
}

/// The redirect URI with the parameters as its fragment (form-encoded, as in the query).
fn with_fragment(uri: &str, params: &[(String, String)]) -> String {
    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    match url::Url::parse(uri) {
        Ok(mut u) => {
            u.set_fragment(Some(&encoded));
            u.into()
        }
        // Registered URIs are validated as absolute URLs; this cannot happen.
        Err(_) => format!("{uri}#{encoded}"),
    }
}

/// The JARM JWT: signed with the key for the client's `authorization_signed_response_alg`
/// (RS256 by default, like ID tokens).
async fn sign(
    app: &Tollgate,
    server: &ServerRuntime,
    target: Target<'_>,
    params: Vec<(&'static str, String)>,
) -> Result<String, AuthorizeError> {
    let (t, s) = (&server.server.tenant_id, &server.server.id);
    let client = app
        .client(t, s, target.client_id)
        .await
        .map_err(AuthorizeError::from_oauth)?
        .ok_or_else(|| {
            AuthorizeError::page(
                400,
                "The application is no longer registered with this server.",
            )
        })?;
    let registered = client
        .client
        .metadata
        .authorization_signed_response_alg
        .as_deref();
    let Some(key) = server.id_token_key(registered) else {
        tracing::error!(tenant = %t, server = %s, client_id = %target.client_id, "no current key for the client's authorization response algorithm");
        return Err(AuthorizeError::page(
            500,
            "The response could not be signed.",
        ));
    };
    let mut claims = Map::new();
    claims.insert("iss".into(), Value::String(server.issuer.clone()));
    claims.insert("aud".into(), Value::String(target.client_id.to_string()));
    claims.insert("exp".into(), Value::from(app.clock.now() + JARM_TTL));
    for (name, value) in params {
        // `iss` is the claim above (RFC 9207's parameter has the same value).
        if name != "iss" {
            claims.insert(name.into(), Value::String(value));
        }
    }
    app.signer
        .sign(key, TokenType::Jwt, &claims)
        .await
        .map_err(|e| {
            tracing::error!(tenant = %t, server = %s, error = %e, "authorization response signing failed");
            AuthorizeError::page(500, "The response could not be signed.")
        })
}

/// A step's result, with an error for the client delivered in the request's response mode:
/// a plain query-mode error stays an error (the gateway redirects it); any other mode
/// becomes the next step that carries it.
///
/// # Errors
/// The step's own error, or why the error could not be delivered.
pub async fn settle(
    app: &Tollgate,
    server: &ServerRuntime,
    result: Result<Continue, AuthorizeError>,
) -> Result<Continue, AuthorizeError> {
    match result {
        Err(AuthorizeError::Redirect(r)) if r.mode != ResponseMode::Query => {
            let step = deliver_error(app, server, &r).await?;
            Ok(Continue::to(step))
        }
        other => other,
    }
}

async fn deliver_error(
    app: &Tollgate,
    server: &ServerRuntime,
    r: &RedirectError,
) -> Result<Step, AuthorizeError> {
    let target = Target {
        client_id: &r.client_id,
        redirect_uri: &r.redirect_uri,
        mode: r.mode,
    };
    deliver(app, server, target, r.params()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_are_form_encoded_and_replace_none_of_the_query() {
        let uri = with_fragment(
            "https://app.example/cb?x=1",
            &[
                ("code".into(), "a b".into()),
                ("state".into(), "s&t".into()),
            ],
        );
        assert_eq!(uri, "https://app.example/cb?x=1#code=a+b&state=s%26t");
    }
}
