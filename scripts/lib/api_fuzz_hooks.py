"""Schemathesis hooks for scripts/api-fuzz.

The admin API's OpenAPI document states every constraint JSON Schema can express, from the
validators' own constants. A few rules are beyond JSON Schema; the document describes them, and
this file excuses exactly those rejections, each only when the request really broke that rule
(never a rejection of a request that fits every rule). Every excused failure is counted in
schemathesis's summary ("dropped by filter_failure").
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse

import schemathesis


def _body(case):
    return case.body if isinstance(case.body, dict) else {}


def _error(response):
    try:
        reply = json.loads(response.content)
    except (ValueError, TypeError):
        return None, ""
    if not isinstance(reply, dict):
        return None, ""
    return reply.get("error"), str(reply.get("error_description", ""))


def _utf8_len(value):
    return len(value.encode("utf-8", "surrogatepass")) if isinstance(value, str) else 0


def _https_url_with_host(value):
    if not isinstance(value, str) or _utf8_len(value) > 2048:
        return False
    try:
        url = urllib.parse.urlsplit(value)
        host = url.hostname
    except ValueError:
        return False
    # WHATWG hosts are narrower than RFC 3986 ones: only plain DNS-ish ASCII hosts count here.
    return url.scheme.lower() == "https" and bool(host) and all(c.isalnum() or c in "-." for c in host) and host.isascii() and not any(c.isspace() for c in value)


# (field named by the error, predicate on the request body: True when the body broke the rule)
BEYOND_JSON_SCHEMA = [
    # `expires_at` must lie in the future: the server's clock at the request decides.
    ("expires_at", lambda b: isinstance(b.get("expires_at"), (int, float)) and b["expires_at"] <= time.time() + 5),
    # Passwords are bounded in bytes of UTF-8, which JSON Schema cannot count.
    ("password", lambda b: _utf8_len(b.get("password")) > 1024),
    # The claims object is bounded in serialised bytes.
    ("claims", lambda b: len(json.dumps(b.get("claims"), separators=(",", ":")).encode()) > 16 * 1024),
    # `logo_uri` is bounded in bytes and must parse as a WHATWG URL with a host.
    ("logo_uri", lambda b: not _https_url_with_host(b.get("logo_uri"))),
    # `tls_client_ca` must parse as a PEM bundle of CA certificates; a generated string never
    # holds one (a real bundle is refused only for what the document states: its size).
    ("tls_client_ca", lambda b: "-----BEGIN CERTIFICATE-----" not in str(b.get("tls_client_ca") or "")),
    # Trusted issuers (RFC 7523 / RFC 8693 grants): each entry needs exactly one of `jwks` (a
    # JWK Set that parses, which a generated object never is) and `jwks_uri` (an https URL whose
    # host resolves to a public address, which only the server can tell, and which no generated
    # host does here): so every non-empty list may be refused; an empty one never is.
    ("trusted_issuers", lambda b: bool(b.get("trusted_issuers"))),
]

# Client metadata (RFC 7591): rules across fields, rules that depend on the server the client is
# registered with (its allowed methods) or on the gateway, and values that must parse as what
# they name (a JWK Set, an RFC 4514 DN, an IP address, a WHATWG URL, a URI whose host resolves
# to a public address). All are documented and answered `400 invalid_client_metadata` or
# `invalid_redirect_uri` naming the field; the ones JSON Schema can state (lengths, counts,
# patterns, enums) are in the document and never excused.
CLIENT_RULE_CODES = {"invalid_client_metadata", "invalid_redirect_uri"}
CLIENT_OPERATIONS = {"create_client", "replace_client"}
CLIENT_RULES = (
    "is not allowed by this authorization server",
    "is not supported by this gateway",
    "requires the authorization_code grant type",
    "refresh_token is only issued with the authorization_code or device_code grant",
    "a public client (`none`) cannot use",
    "the authorization_code grant needs at least one redirect URI",
    "applies only to",
    "tls_client_auth requires exactly one of",
    "tls_client_auth takes exactly one subject field",
    "are mutually exclusive",
    "signs with the client secret",
    "for client_secret_jwt must be",
    "for private_key_jwt must be",
    "private_key_jwt requires",
    "self_signed_tls_client_auth",
    "client_id: must match the client in the path",
    "`none` is not allowed",
    "is not an RFC 4514 distinguished name",
    "must be an IPv4 or IPv6 address",
    "must be an absolute URI",
    "must be an absolute URL",
    "each redirect URI must be absolute",
    "must be an e-mail address",
    "must be a DNS name",
    # request_object_signing_alg depends on the method and the registered keys (issue 11);
    # authorization_signed_response_alg on the server's signing_alg.
    "for a client_secret_jwt client, or RS256",
    "must be one this server signs with",
)
# Fields whose every rule is beyond JSON Schema: a JWK Set's keys (their members and
# algorithms) and a `jwks_uri`'s reachability (https, public address).
CLIENT_FIELDS_BEYOND = ("jwks:", "jwks_uri:")
# Rotating the secret of a client whose method has none is refused (`400`), as documented.
ROTATE_WITHOUT_SECRET = "rotate_client_secret"


EXCUSED_LOG = os.environ.get("API_FUZZ_EXCUSED_LOG")


def _excuse(operation_id, failure, response, why):
    """Records an excused failure (one JSON line) when API_FUZZ_EXCUSED_LOG names a file."""
    if EXCUSED_LOG:
        with open(EXCUSED_LOG, "a", encoding="utf-8") as f:
            line = {"operation": operation_id, "code": getattr(failure, "code", None), "status": response.status_code,
                    "error": _error(response)[1][:200], "rule": why}
            f.write(json.dumps(line) + "\n")
    return False


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but the documented rejections JSON Schema cannot express."""
    operation_id = (case.operation.definition.raw or {}).get("operationId")
    # A tenant's audit trail outlives the tenant by design (docs/operations.md): reading it
    # after the delete is not a use after free.
    if getattr(failure, "code", None) == "ST301" and operation_id == "list_audit":
        return _excuse(operation_id, failure, response, "audit trail outlives its tenant")
    if getattr(failure, "code", None) != "ST202":
        return True
    if response.status_code != 400:
        return True
    code, description = _error(response)
    if operation_id in CLIENT_OPERATIONS and code in CLIENT_RULE_CODES:
        if any(rule in description for rule in CLIENT_RULES) or description.startswith(CLIENT_FIELDS_BEYOND):
            return _excuse(operation_id, failure, response, "client metadata rule")
    if operation_id == ROTATE_WITHOUT_SECRET and description.endswith("clients have no secret"):
        return _excuse(operation_id, failure, response, "method without a secret")
    body = _body(case)
    for field, broke in BEYOND_JSON_SCHEMA:
        if description.startswith(f"{field}:") and broke(body):
            return _excuse(operation_id, failure, response, field)
    return True
