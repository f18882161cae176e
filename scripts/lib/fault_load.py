#!/usr/bin/env python3
"""Load generator and judge for scripts/fault-test (standard library only; 127.0.0.1 only).

  fault_load.py setup  GATEWAY ADMIN TOKEN TENANT OUT.json
      creates the server and the clients the load uses (one per authentication method, a
      resource server for introspection), warms them, writes their credentials to OUT.json
  fault_load.py run    SETUP.json STOP_FILE EVENTS.jsonl
      drives the load until STOP_FILE exists: one or more threads per kind of request, each
      on its own keep-alive connection, recording every request (start, end, kind, status
      or the error that left it unanswered)
  fault_load.py judge  SETUP.json EVENTS.jsonl PHASES SERVER_LOG [MAX_RECOVERY_SECONDS]
      reports and checks: requests sent, answered by kind and status, none unanswered, no
      500, no panic in the log, what kept working during each outage, the full recovery
      time after each restart, and that every client whose creation answered 201 exists

PHASES holds lines "NAME EPOCH_SECONDS": redis_down, redis_up, postgres_down, postgres_up, end.
"""

import base64
import hashlib
import hmac
import http.client
import json
import os
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

TIMEOUT = 30  # seconds; longer than any deadline of the server (10 s per database call)
# Kinds of request, and the threads driving each.
KINDS = {
    "token_basic": 2,
    "token_post": 1,
    "token_jwt": 1,
    "introspect": 1,
    "discovery": 1,
    "jwks": 1,
    "admin_create": 2,
}
# What must keep answering 200 while a store is down (the contract in docs/operations.md's
# runbook): from memory while PostgreSQL is down; without the replay store while Redis is.
MUST_WORK = {
    "redis": ["token_basic", "token_post", "discovery", "jwks", "admin_create"],
    "postgres": ["token_basic", "token_post", "token_jwt", "introspect", "discovery", "jwks"],
}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


class Http:
    """One keep-alive connection to a base URL; reconnects after an error."""

    def __init__(self, base):
        u = urlsplit(base)
        assert u.hostname == "127.0.0.1", base
        self.host, self.port = u.hostname, u.port
        self.conn = None
        self.last_retry_after = None

    def request(self, method, path, body=None, headers=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            res = self.conn.getresponse()
            data = res.read()
            self.last_retry_after = res.getheader("retry-after")
            if res.getheader("connection", "").lower() == "close":
                self.close()
            return res.status, data
        except Exception:
            self.close()
            raise

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def admin_json(http_, token, method, path, body=None):
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        headers["Content-Type"] = "application/json"
        data = json.dumps(body)
    status, raw = http_.request(method, path, data, headers)
    return status, (json.loads(raw) if raw else None)


def setup(gateway, admin, token, tenant, out):
    a = Http(admin)
    s, b = admin_json(a, token, "POST", "/admin/tenants", {"id": tenant, "name": "Faults"})
    assert s == 201, (s, b)
    s, b = admin_json(a, token, "POST", f"/admin/tenants/{tenant}/servers", {"id": "main", "name": "Main"})
    assert s == 201, (s, b)
    clients = {}
    for name, method in [
        ("basic", "client_secret_basic"),
        ("post", "client_secret_post"),
        ("jwt", "client_secret_jwt"),
        ("resource", "client_secret_basic"),
    ]:
        s, b = admin_json(
            a, token, "POST", f"/admin/tenants/{tenant}/servers/main/clients",
            {"client_name": f"fault-{name}", "grant_types": ["client_credentials"],
             "token_endpoint_auth_method": method, "scope": "read"},
        )
        assert s == 201, (s, b)
        clients[name] = {"id": b["client_id"], "secret": b["client_secret"]}
    # The resource server introspects the other clients' tokens (RFC 7662 §4: only a client
    # the server lists in `introspection_clients` may).
    s, b = admin_json(a, token, "PATCH", f"/admin/tenants/{tenant}/servers/main",
                      {"introspection_clients": [clients["resource"]["id"]]})
    assert s == 200, (s, b)
    cfg = {"gateway": gateway, "admin": admin, "token": token, "tenant": tenant, "clients": clients}
    # Warm every client once (the one argon2 verification), and get a token to introspect.
    g = Http(gateway)
    access = None
    for kind in ["token_basic", "token_post", "token_jwt"]:
        status, body = one(cfg, kind, g, a)
        assert status == 200, (kind, status, body)
        access = access or json.loads(body)["access_token"]
    cfg["access_token"] = access
    status, body = one(cfg, "introspect", g, a)
    assert status == 200 and json.loads(body)["active"] is True, (status, body)
    with open(out, "w") as f:
        json.dump(cfg, f)


def assertion(client_id, secret, audience):
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    now = int(time.time())
    claims = b64url(json.dumps({
        "iss": client_id, "sub": client_id, "aud": audience,
        "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex,
    }).encode())
    signing_input = f"{header}.{claims}".encode()
    sig = b64url(hmac.new(secret.encode(), signing_input, hashlib.sha256).digest())
    return f"{header}.{claims}.{sig}"


def one(cfg, kind, gw, admin, created=None):
    """Sends one request of `kind`; returns (status, body)."""
    t, c = cfg["tenant"], cfg["clients"]
    base = f"/{t}/main"
    if kind == "token_basic":
        h = dict(FORM, Authorization=basic(c["basic"]["id"], c["basic"]["secret"]))
        return gw.request("POST", f"{base}/oauth2/token", "grant_type=client_credentials", h)
    if kind == "token_post":
        body = f"grant_type=client_credentials&client_id={c['post']['id']}&client_secret={c['post']['secret']}"
        return gw.request("POST", f"{base}/oauth2/token", body, FORM)
    if kind == "token_jwt":
        a = assertion(c["jwt"]["id"], c["jwt"]["secret"], f"{cfg['gateway']}{base}/oauth2/token")
        body = ("grant_type=client_credentials&client_assertion_type="
                "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=" + a)
        return gw.request("POST", f"{base}/oauth2/token", body, FORM)
    if kind == "introspect":
        h = dict(FORM, Authorization=basic(c["resource"]["id"], c["resource"]["secret"]))
        return gw.request("POST", f"{base}/oauth2/introspect", f"token={cfg['access_token']}", h)
    if kind == "discovery":
        return gw.request("GET", f"{base}/.well-known/openid-configuration")
    if kind == "jwks":
        return gw.request("GET", f"{base}/.well-known/jwks.json")
    if kind == "admin_create":
        status, body = admin.request(
            "POST", f"/admin/tenants/{t}/servers/main/clients",
            json.dumps({"client_name": "fault-created", "grant_types": ["client_credentials"]}),
            {"Authorization": f"Bearer {cfg['token']}", "Content-Type": "application/json"},
        )
        if status == 201 and created is not None:
            created.append(json.loads(body)["client_id"])
        return status, body
    raise ValueError(kind)


def run(setup_file, stop_file, events_file):
    with open(setup_file) as f:
        cfg = json.load(f)
    events, lock = [], threading.Lock()
    created = []

    def worker(kind):
        gw, admin = Http(cfg["gateway"]), Http(cfg["admin"])
        mine = []
        while not os.path.exists(stop_file):
            start = time.time()
            shape = None
            try:
                status, body = one(cfg, kind, gw, admin, created)
                if status == 503:
                    # An outage answer must say so, in JSON, and say when to retry.
                    conn = admin if kind == "admin_create" else gw
                    try:
                        code = json.loads(body).get("error")
                    except ValueError:
                        code = None
                    if code != "temporarily_unavailable" or not conn.last_retry_after:
                        shape = f"503 with error={code!r}, Retry-After={conn.last_retry_after!r}"
            except Exception as e:  # no HTTP answer: refused, reset, timed out
                status = f"unanswered:{type(e).__name__}"
            mine.append((start, time.time(), kind, status, shape))
            if kind == "admin_create":
                time.sleep(0.05)  # pacing: a few hundred clients, not thousands
        with lock:
            events.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k, n in KINDS.items() for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(TIMEOUT * 3)
    with open(events_file, "w") as f:
        for e in sorted(events, key=lambda e: e[0]):
            f.write(json.dumps(e) + "\n")
    with open(events_file + ".created", "w") as f:
        json.dump(created, f)


def judge(setup_file, events_file, phases_file, server_log, max_recovery=30.0):
    with open(setup_file) as f:
        cfg = json.load(f)
    events = [json.loads(line) for line in open(events_file)]
    created = json.load(open(events_file + ".created"))
    phases = {}
    for line in open(phases_file):
        name, at = line.split()
        phases[name] = float(at)
    failures = []

    def ok(status):
        return isinstance(status, int) and 200 <= status < 300

    # Totals.
    print(f"requests sent: {len(events)}")
    by_kind = {}
    for _, _, kind, status, _ in events:
        by_kind.setdefault(kind, {}).setdefault(str(status), 0)
        by_kind[kind][str(status)] += 1
    print("answered, by kind and status:")
    for kind in KINDS:
        counts = by_kind.get(kind, {})
        print(f"  {kind:13} " + "  ".join(f"{s}: {n}" for s, n in sorted(counts.items())))
    unanswered = [e for e in events if not isinstance(e[3], int)]
    print(f"unanswered: {len(unanswered)}")
    if unanswered:
        failures.append(f"{len(unanswered)} requests got no HTTP answer, e.g. {unanswered[:3]}")
    server_errors = [e for e in events if isinstance(e[3], int) and e[3] >= 500 and e[3] != 503]
    print(f"5xx other than 503: {len(server_errors)}")
    if server_errors:
        failures.append(f"{len(server_errors)} answers were 5xx other than 503, e.g. {server_errors[:3]}")
    malformed = [e for e in events if e[4]]
    print(f"503s without a JSON temporarily_unavailable and Retry-After: {len(malformed)}")
    if malformed:
        failures.append(f"{len(malformed)} outage answers were malformed, e.g. {malformed[:3]}")
    log = open(server_log, errors="replace").read()
    panics = log.count("panicked")
    print(f"panics in the server log: {panics}")
    if panics:
        failures.append(f"the server log shows {panics} panic(s)")

    # During each outage: what kept working.
    for store, down, up in [("redis", "redis_down", "redis_up"), ("postgres", "postgres_down", "postgres_up")]:
        lo, hi = phases[down] + 0.5, phases[up]  # requests begun once the store is surely gone
        window = [e for e in events if lo <= e[0] and e[1] <= hi]
        print(f"while {store} was down ({hi - lo:.1f} s):")
        for kind in KINDS:
            mine = [e for e in window if e[2] == kind]
            good = sum(1 for e in mine if ok(e[3]))
            statuses = sorted({str(e[3]) for e in mine})
            print(f"  {kind:13} {good}/{len(mine)} succeeded ({', '.join(statuses) or 'none sent'})")
            if kind in MUST_WORK[store]:
                if not mine:
                    failures.append(f"no {kind} request completed while {store} was down")
                elif good != len(mine):
                    failures.append(f"{kind} must keep working while {store} is down: {good}/{len(mine)}")

    # Full recovery after each restart: for every kind, the start of the first success after
    # its last failure (requests begun after the restart and finished before the next fault);
    # the slowest kind decides.
    bounds = [("redis", "redis_up", "postgres_down"), ("postgres", "postgres_up", "end")]
    for store, up, until in bounds:
        r, end = phases[up], phases[until]
        worst, worst_kind = 0.0, None
        for kind in KINDS:
            mine = [e for e in events if r <= e[0] and e[1] < end and e[2] == kind]
            failed = [e for e in mine if not ok(e[3]) and e[3] != 429]
            after = [e for e in mine if ok(e[3]) and (not failed or e[0] > failed[-1][0])]
            if not after:
                failures.append(f"{kind} never succeeded again after {store} came back")
                continue
            t = after[0][0] - r
            if t > worst:
                worst, worst_kind = t, kind
        print(f"full recovery after the {store} restart: {worst:.2f} s"
              + (f" (last to recover: {worst_kind})" if worst_kind else ""))
        if worst > max_recovery:
            failures.append(f"recovery after the {store} restart took {worst:.1f} s (> {max_recovery} s)")

    # No admin change lost: every client whose creation answered 201 exists.
    a = Http(cfg["admin"])
    seen, cursor = set(), None
    while True:
        path = f"/admin/tenants/{cfg['tenant']}/servers/main/clients?limit=200"
        if cursor:
            path += f"&cursor={cursor}"
        status, page = admin_json(a, cfg["token"], "GET", path)
        if status != 200:
            failures.append(f"listing clients after the faults answered {status}")
            break
        seen.update(c["client_id"] for c in page["items"])
        cursor = page.get("next_cursor")
        if not cursor:
            break
    lost = [c for c in created if c not in seen]
    print(f"clients created (201): {len(created)}, present afterwards: {len(created) - len(lost)}")
    if lost:
        failures.append(f"{len(lost)} clients answered 201 but are gone: {lost[:5]}")

    if failures:
        print("FAILED:")
        for f in failures:
            print(f"  - {f}")
        sys.exit(1)
    print("fault test passed")


if __name__ == "__main__":
    cmd, args = sys.argv[1] if len(sys.argv) > 1 else "", sys.argv[2:]
    if cmd == "setup" and len(args) == 5:
        setup(*args)
    elif cmd == "run" and len(args) == 3:
        run(*args)
    elif cmd == "judge" and len(args) in (4, 5):
        judge(*args[:4], *(float(x) for x in args[4:]))
    else:
        sys.exit(__doc__)
