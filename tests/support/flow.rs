//! A scripted browser for the authorization-code flow over plain HTTP: follows nothing on
//! its own (every redirect is looked at), keeps cookies by path like a browser, and reads the
//! hidden fields of the login and consent forms. The real-browser suite is `tests/browser.rs`.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::Server;

/// One response, read whole.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status.
    pub status: u16,
    /// `Location`, if any.
    pub location: Option<String>,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body as text.
    pub body: String,
}

impl Resp {
    /// A query parameter of the `Location`.
    pub fn location_param(&self, name: &str) -> Option<String> {
        self.location.as_deref().and_then(|l| query_param(l, name))
    }
}

/// A query parameter of a URL.
pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The value of `<input type="hidden" name="{name}" value="…">` in a page.
pub fn hidden(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    Some(body[start..end].to_owned())
}

/// A cookie-keeping HTTP agent that does not follow redirects.
pub struct Agent {
    http: reqwest::Client,
    /// (path, name) → value.
    cookies: Mutex<HashMap<(String, String), String>>,
}

impl Default for Agent {
    fn default() -> Self {
        Self::new()
    }
}

impl Agent {
    /// A fresh agent with no cookies.
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(std::time::Duration::from_secs(30))
                .build()
                .unwrap(),
            cookies: Mutex::new(HashMap::new()),
        }
    }

    fn cookie_header(&self, url: &str) -> Option<String> {
        let path = url::Url::parse(url).ok()?.path().to_owned();
        let jar = self.cookies.lock().unwrap();
        let pairs: Vec<String> = jar
            .iter()
            .filter(|((p, _), _)| path.starts_with(p.as_str()))
            .map(|((_, n), v)| format!("{n}={v}"))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    fn absorb(&self, res: &reqwest::Response) {
        let mut jar = self.cookies.lock().unwrap();
        for v in res.headers().get_all(reqwest::header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let mut parts = v.split(';').map(str::trim);
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let mut path = "/".to_owned();
            let mut expired = false;
            for attr in parts {
                if let Some(p) = attr.strip_prefix("Path=") {
                    path = p.to_owned();
                }
                if attr == "Max-Age=0" {
                    expired = true;
                }
            }
            let key = (path, name.to_owned());
            if expired || value.is_empty() {
                jar.remove(&key);
            } else {
                jar.insert(key, value.to_owned());
            }
        }
    }

    /// Whether a cookie of this name is held.
    pub fn has_cookie(&self, name: &str) -> bool {
        self.cookies.lock().unwrap().keys().any(|(_, n)| n == name)
    }

    /// Every cookie value held.
    pub fn cookie_values(&self) -> Vec<String> {
        self.cookies.lock().unwrap().values().cloned().collect()
    }

    /// Forgets every cookie.
    pub fn clear(&self) {
        self.cookies.lock().unwrap().clear();
    }

    async fn read(&self, res: reqwest::Response) -> Resp {
        self.absorb(&res);
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let location = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Resp {
            status,
            location,
            headers,
            body: res.text().await.unwrap_or_default(),
        }
    }

    /// GET with this agent's cookies.
    pub async fn get(&self, url: &str) -> Resp {
        let mut req = self.http.get(url);
        if let Some(c) = self.cookie_header(url) {
            req = req.header(reqwest::header::COOKIE, c);
        }
        self.read(req.send().await.unwrap()).await
    }

    /// POST a form with this agent's cookies.
    pub async fn post_form(&self, url: &str, form: &[(&str, &str)]) -> Resp {
        let mut req = self.http.post(url).form(form);
        if let Some(c) = self.cookie_header(url) {
            req = req.header(reqwest::header::COOKIE, c);
        }
        self.read(req.send().await.unwrap()).await
    }

    /// Submits the login form of `page` (fetched from `login_url`).
    pub async fn submit_login(
        &self,
        gateway_base: &str,
        page: &Resp,
        username: &str,
        password: &str,
    ) -> Resp {
        let req = hidden(&page.body, "req").expect("login page has req");
        let csrf = hidden(&page.body, "csrf").expect("login page has csrf");
        self.post_form(
            &format!("{gateway_base}/login"),
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// Submits the consent form of `page` with `decision`.
    pub async fn submit_consent(&self, gateway_base: &str, page: &Resp, decision: &str) -> Resp {
        let req = hidden(&page.body, "req").expect("consent page has req");
        let csrf = hidden(&page.body, "csrf").expect("consent page has csrf");
        self.post_form(
            &format!("{gateway_base}/consent"),
            &[("req", &req), ("csrf", &csrf), ("decision", decision)],
        )
        .await
    }

    /// Runs an authorization from `authorize_url` to the redirect back to the client: logs
    /// in when asked, answers consent with `decision` when asked. Returns the final
    /// redirect (to the client) and the pages seen on the way.
    pub async fn authorize(
        &self,
        issuer: &str,
        authorize_url: &str,
        username: &str,
        password: &str,
        decision: &str,
    ) -> (Resp, Vec<String>) {
        let mut seen = Vec::new();
        let mut res = self.get(authorize_url).await;
        for _ in 0..6 {
            let Some(loc) = res.location.clone() else {
                return (res, seen);
            };
            if loc.starts_with(&format!("{issuer}/login")) {
                seen.push("login".to_owned());
                let page = self.get(&loc).await;
                assert_eq!(page.status, 200, "login page: {}", page.body);
                res = self.submit_login(issuer, &page, username, password).await;
            } else if loc.starts_with(&format!("{issuer}/consent")) {
                seen.push("consent".to_owned());
                let page = self.get(&loc).await;
                assert_eq!(page.status, 200, "consent page: {}", page.body);
                res = self.submit_consent(issuer, &page, decision).await;
            } else {
                return (res, seen);
            }
        }
        panic!("too many redirects");
    }

    /// The user's side of the device flow (RFC 8628 §3.3) over HTTP: enters `typed` on
    /// `{issuer}/device`, logs in as `username` when asked (the login page names
    /// `client_name`), answers consent with `decision`, and opens the page it lands on.
    /// Returns that last URL (`…/device?done=approved` or `…=denied`).
    pub async fn enter_device_code(
        &self,
        issuer: &str,
        typed: &str,
        client_name: &str,
        username: &str,
        password: &str,
        decision: &str,
    ) -> String {
        let page = self.get(&format!("{issuer}/device")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = hidden(&page.body, "csrf").unwrap();
        let res = self
            .post_form(
                &format!("{issuer}/device"),
                &[("csrf", &csrf), ("user_code", typed)],
            )
            .await;
        assert_eq!(res.status, 303, "{}", res.body);
        let mut next = res.location.clone().unwrap();
        // Without a session, the built-in login first.
        if next.starts_with(&format!("{issuer}/login")) {
            let page = self.get(&next).await;
            assert!(page.body.contains(client_name), "{}", page.body);
            let res = self.submit_login(issuer, &page, username, password).await;
            next = res.location.unwrap();
        }
        let consent = next;
        assert!(
            consent.starts_with(&format!("{issuer}/consent")),
            "{consent}"
        );
        let page = self.get(&consent).await;
        let res = self.submit_consent(issuer, &page, decision).await;
        assert_eq!(res.status, 303, "{}", res.body);
        let done = res.location.clone().unwrap();
        let page = self.get(&done).await;
        assert_eq!(page.status, 200);
        done
    }
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    (verifier, URL_SAFE_NO_PAD.encode(digest))
}

/// An authorize URL with these parameters.
pub fn authorize_url(issuer: &str, params: &[(&str, &str)]) -> String {
    let mut u = url::Url::parse(&format!("{issuer}/oauth2/authorize")).unwrap();
    {
        let mut q = u.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    u.into()
}

/// Creates a user; returns its id.
pub async fn user(
    server: &Server,
    tid: &str,
    aid: &str,
    username: &str,
    password: &str,
    claims: Value,
) -> String {
    let (s, b) = server
        .admin_post(
            &format!("/admin/tenants/{tid}/servers/{aid}/users"),
            &json!({"username": username, "password": password, "claims": claims}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    b["id"].as_str().unwrap().to_owned()
}

/// Verifies a JWT the server signed with its published JWKS, through jsonwebtoken (independent
/// of Tollgate): the key named by `kid`, the header's alg, `iss` and `aud`. Returns the claims.
pub async fn verify_with_jwks(server: &Server, issuer: &str, jwt: &str, aud: &str) -> Value {
    use jsonwebtoken::{decode, decode_header, jwk::JwkSet, DecodingKey, Validation};
    let jwks: JwkSet = server
        .http
        .get(format!("{issuer}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let header = decode_header(jwt).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid in JWKS");
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[issuer]);
    v.set_audience(&[aud]);
    decode::<Value>(jwt, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .unwrap()
        .claims
}
