//! Token claims policies (CONTRACT "Token claims policy"): rules in the Common Expression
//! Language, parsed and checked when a server is saved, compiled once, evaluated in process at
//! every minting.
//!
//! The bound on one evaluation is structural, because the interpreter (cel-rust) has no cost
//! meter: expressions are at most `MAX_EXPRESSION_BYTES` long, a policy has at most
//! `MAX_RULES` rules of at most `MAX_CLAIMS_PER_RULE` claims, and macros that iterate
//! (`all`, `exists`, `exists_one`, `map`, `filter`) may not nest, so the work of one
//! expression is linear in its length times the size of the largest input list.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Most rules one token kind may have.
pub const MAX_RULES: usize = 32;
/// Most claims one rule may set.
pub const MAX_CLAIMS_PER_RULE: usize = 32;
/// Longest expression, in bytes.
pub const MAX_EXPRESSION_BYTES: usize = 1024;

/// Claims the server owns; a policy that sets one is refused.
pub const PROTECTED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "scope",
    "cnf",
    "act",
    "sid",
    "nonce",
    "at_hash",
    "auth_time",
];

const COMPREHENSIONS: &[&str] = &["all", "exists", "exists_one", "map", "filter"];

/// One rule as written in the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Optional CEL bool expression; the rule applies only when it is true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// Claim name to CEL expression.
    pub claims: BTreeMap<String, String>,
}

/// The `claims_policy` server field as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Rules for access tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_token: Vec<RuleSpec>,
    /// Rules for ID tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub id_token: Vec<RuleSpec>,
    /// Rules for `/userinfo`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub userinfo: Vec<RuleSpec>,
}

/// Why a policy was refused at save time: names the rule, the claim and the position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    /// Human text naming `kind[rule].claims.name` (or `.when`) and what is wrong.
    pub message: String,
}

struct CompiledRule {
    when: Option<cel::Program>,
    claims: Vec<(String, cel::Program)>,
}

/// A policy compiled once; cheap to share.
#[derive(Clone, Default)]
pub struct CompiledPolicy {
    access_token: Arc<Vec<CompiledRule>>,
    id_token: Arc<Vec<CompiledRule>>,
    userinfo: Arc<Vec<CompiledRule>>,
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("access_token_rules", &self.access_token.len())
            .field("id_token_rules", &self.id_token.len())
            .field("userinfo_rules", &self.userinfo.len())
            .finish()
    }
}

/// Which token a rule list is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// RFC 9068 access tokens.
    AccessToken,
    /// OpenID Connect ID tokens.
    IdToken,
    /// The `/userinfo` answer.
    Userinfo,
}

/// A rule failed at run time; deliberately carries nothing of the policy or the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("claims policy evaluation failed")]
pub struct EvaluationFailed;

/// The CEL variables of one minting. `subject` and `actor` are the claims of the token
/// exchange's tokens; `Null` for every other grant.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationInput {
    /// Tenant id.
    pub tenant: String,
    /// Server id.
    pub server: String,
    /// `client_id`, its RFC 7591 metadata and `attributes`.
    pub client: serde_json::Value,
    /// `{sub, username, claims}` or `Null`.
    pub user: serde_json::Value,
    /// The grant type name.
    pub grant_type: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The token's audience.
    pub audience: Vec<String>,
    /// Token exchange subject token claims, or `Null`.
    pub subject: serde_json::Value,
    /// Token exchange actor token claims, or `Null`.
    pub actor: serde_json::Value,
}

fn compile(
    kind: &str,
    index: usize,
    place: &str,
    source: &str,
) -> Result<cel::Program, PolicyError> {
    let at = |what: String| PolicyError {
        message: format!("claims_policy.{kind}[{index}].{place}: {what}"),
    };
    if source.len() > MAX_EXPRESSION_BYTES {
        return Err(at(format!(
            "expression longer than {MAX_EXPRESSION_BYTES} bytes"
        )));
    }
    if comprehension_depth(source) > 1 {
        return Err(at(
            "nested comprehensions (all/exists/exists_one/map/filter) are refused".into(),
        ));
    }
    cel::Program::compile(source).map_err(|errors| {
        let first = errors.errors.first();
        let (line, column) = first.map_or((0, 0), |e| e.pos);
        let msg = first.map_or_else(|| "syntax error".to_owned(), |e| e.msg.clone());
        at(format!(
            "syntax error at line {line}, column {column}: {msg}"
        ))
    })
}

/// Upper estimate of how deeply iterating macros nest, read from the source text: each
/// `.all(`/`.map(`… opens a level that its closing parenthesis ends.
fn comprehension_depth(source: &str) -> usize {
    let bytes = source.as_bytes();
    let mut stack: Vec<bool> = Vec::new();
    let (mut depth, mut max) = (0usize, 0usize);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' => {
                let before = &source[..i];
                let is_macro = COMPREHENSIONS.iter().any(|m| {
                    before
                        .strip_suffix(m)
                        .is_some_and(|rest| rest.trim_end().ends_with('.'))
                });
                if is_macro {
                    depth += 1;
                    max = max.max(depth);
                }
                stack.push(is_macro);
            }
            b')' if stack.pop() == Some(true) => {
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        i += 1;
    }
    max
}

fn compile_rules(kind: &str, rules: &[RuleSpec]) -> Result<Vec<CompiledRule>, PolicyError> {
    if rules.len() > MAX_RULES {
        return Err(PolicyError {
            message: format!("claims_policy.{kind}: more than {MAX_RULES} rules"),
        });
    }
    rules
        .iter()
        .enumerate()
        .map(|(index, rule)| {
            if rule.claims.len() > MAX_CLAIMS_PER_RULE {
                return Err(PolicyError {
                    message: format!("claims_policy.{kind}[{index}].claims: more than {MAX_CLAIMS_PER_RULE} claims"),
                });
            }
            let when = rule.when.as_deref().map(|w| compile(kind, index, "when", w)).transpose()?;
            let claims = rule
                .claims
                .iter()
                .map(|(name, source)| {
                    if PROTECTED_CLAIMS.contains(&name.as_str()) {
                        return Err(PolicyError {
                            message: format!("claims_policy.{kind}[{index}].claims.{name}: the server owns the claim {name}"),
                        });
                    }
                    if name.is_empty() || name.len() > 255 {
                        return Err(PolicyError {
                            message: format!("claims_policy.{kind}[{index}].claims: a claim name must be 1-255 bytes"),
                        });
                    }
                    compile(kind, index, &format!("claims.{name}"), source).map(|p| (name.clone(), p))
                })
                .collect::<Result<_, _>>()?;
            Ok(CompiledRule { when, claims })
        })
        .collect()
}

impl CompiledPolicy {
    /// Checks and compiles a policy; the error names the rule, the claim and the position.
    pub fn compile(spec: &PolicySpec) -> Result<Self, PolicyError> {
        Ok(Self {
            access_token: Arc::new(compile_rules("access_token", &spec.access_token)?),
            id_token: Arc::new(compile_rules("id_token", &spec.id_token)?),
            userinfo: Arc::new(compile_rules("userinfo", &spec.userinfo)?),
        })
    }

    /// Runs the rules for `kind` in order; a later rule wins; `null` claims are left out.
    pub fn evaluate(
        &self,
        kind: TokenKind,
        input: &EvaluationInput,
    ) -> Result<serde_json::Map<String, serde_json::Value>, EvaluationFailed> {
        let rules = match kind {
            TokenKind::AccessToken => &self.access_token,
            TokenKind::IdToken => &self.id_token,
            TokenKind::Userinfo => &self.userinfo,
        };
        let mut out = serde_json::Map::new();
        if rules.is_empty() {
            return Ok(out);
        }
        let mut context = cel::Context::default();
        let vars = serde_json::to_value(input).map_err(|_| EvaluationFailed)?;
        if let serde_json::Value::Object(vars) = vars {
            for (name, value) in vars {
                context.add_variable_from_value(name, to_cel(&value));
            }
        }
        for rule in rules.iter() {
            if let Some(when) = &rule.when {
                match when.execute(&context) {
                    Ok(cel::Value::Bool(true)) => {}
                    Ok(cel::Value::Bool(false)) => continue,
                    _ => return Err(EvaluationFailed),
                }
            }
            for (name, program) in &rule.claims {
                let value = program.execute(&context).map_err(|_| EvaluationFailed)?;
                let value = to_json(&value).ok_or(EvaluationFailed)?;
                if value.is_null() {
                    out.remove(name);
                } else {
                    out.insert(name.clone(), value);
                }
            }
        }
        Ok(out)
    }
}

fn to_cel(value: &serde_json::Value) -> cel::Value {
    use serde_json::Value as J;
    match value {
        J::Null => cel::Value::Null,
        J::Bool(b) => cel::Value::Bool(*b),
        J::Number(n) => n
            .as_i64()
            .map(cel::Value::Int)
            .or_else(|| n.as_u64().map(cel::Value::UInt))
            .unwrap_or_else(|| cel::Value::Float(n.as_f64().unwrap_or(0.0))),
        J::String(s) => cel::Value::String(Arc::new(s.clone())),
        J::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        J::Object(map) => {
            let map: std::collections::HashMap<cel::objects::Key, cel::Value> = map
                .iter()
                .map(|(k, v)| (cel::objects::Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            cel::Value::Map(cel::objects::Map { map: Arc::new(map) })
        }
    }
}

fn to_json(value: &cel::Value) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match value {
        cel::Value::Null => J::Null,
        cel::Value::Bool(b) => J::Bool(*b),
        cel::Value::Int(i) => J::from(*i),
        cel::Value::UInt(u) => J::from(*u),
        cel::Value::Float(f) => serde_json::Number::from_f64(*f).map(J::Number)?,
        cel::Value::String(s) => J::String(s.as_str().to_owned()),
        cel::Value::List(items) => J::Array(items.iter().map(to_json).collect::<Option<_>>()?),
        cel::Value::Map(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map.map.iter() {
                let cel::objects::Key::String(k) = k else {
                    return None;
                };
                out.insert(k.as_str().to_owned(), to_json(v)?);
            }
            J::Object(out)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> EvaluationInput {
        EvaluationInput {
            tenant: "acme".into(),
            server: "main".into(),
            client: serde_json::json!({"client_id": "svc", "attributes": {"plan": "gold", "entitlements": ["a", "b"]}}),
            user: serde_json::Value::Null,
            grant_type: "client_credentials".into(),
            scopes: vec!["read".into()],
            audience: vec!["https://api.example".into()],
            subject: serde_json::Value::Null,
            actor: serde_json::Value::Null,
        }
    }

    fn policy(json: serde_json::Value) -> Result<CompiledPolicy, PolicyError> {
        CompiledPolicy::compile(&serde_json::from_value(json).expect("spec"))
    }

    #[test]
    fn recipes_evaluate_in_order_and_drop_nulls() {
        let p = policy(serde_json::json!({"access_token": [
            {"claims": {"tenant": "tenant", "plan": "client.attributes.plan", "gone": "null"}},
            {"when": "client.client_id == 'svc'", "claims": {"plan": "'platinum'", "ent": "client.attributes.entitlements"}},
            {"when": "'https://api.example' in audience", "claims": {"api": "true"}}
        ]}))
        .expect("compiles");
        let claims = p
            .evaluate(TokenKind::AccessToken, &input())
            .expect("evaluates");
        assert_eq!(
            serde_json::Value::Object(claims),
            serde_json::json!({"tenant": "acme", "plan": "platinum", "ent": ["a", "b"], "api": true})
        );
    }

    #[test]
    fn refuses_every_protected_claim_naming_rule_and_claim() {
        for claim in PROTECTED_CLAIMS {
            let err = policy(serde_json::json!({"id_token": [{"claims": {"x": "1"}}, {"claims": {*claim: "'v'"}}]}))
                .expect_err("protected");
            assert!(
                err.message.contains(&format!("id_token[1].claims.{claim}")),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn syntax_error_names_position() {
        let err = policy(serde_json::json!({"access_token": [{"claims": {"x": "1 +"}}]}))
            .expect_err("syntax");
        assert!(
            err.message
                .contains("access_token[0].claims.x: syntax error at line"),
            "{}",
            err.message
        );
    }

    #[test]
    fn refuses_nested_comprehensions_and_long_expressions() {
        let nested = "scopes.all(a, scopes.all(b, a == b))";
        assert!(policy(serde_json::json!({"access_token": [{"claims": {"x": nested}}]})).is_err());
        let long = "1 + ".repeat(400) + "1";
        assert!(policy(serde_json::json!({"access_token": [{"claims": {"x": long}}]})).is_err());
        assert!(policy(
            serde_json::json!({"access_token": [{"claims": {"x": "scopes.map(s, s + '!')"}}]})
        )
        .is_ok());
    }

    #[test]
    fn runtime_error_reveals_nothing() {
        let p = policy(
            serde_json::json!({"access_token": [{"claims": {"x": "user.claims.secret_field"}}]}),
        )
        .expect("compiles");
        let err = p
            .evaluate(TokenKind::AccessToken, &input())
            .expect_err("fails");
        assert_eq!(err.to_string(), "claims policy evaluation failed");
    }
}
