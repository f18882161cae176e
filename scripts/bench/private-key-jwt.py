#!/usr/bin/env python3
"""Key and assertion generator for scripts/bench/private-key-jwt (PyJWT + cryptography).

  private-key-jwt.py keygen KEY_PEM            writes a fresh P-256 private key (mode 0600) and
                                               prints the public JWK Set to register
  private-key-jwt.py sign KEY_PEM CLIENT_ID AUD COUNT OUT [LIFETIME]
                                               writes COUNT ES256 client assertions (RFC 7523),
                                               one per line, each with its own jti, exp = now +
                                               LIFETIME seconds (default 3500), using every CPU

The assertions are signed ahead of time so that the load generator spends nothing on crypto and
the server's work per request is what is measured.
"""

import json
import multiprocessing
import os
import sys
import time
import uuid

import jwt  # PyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KID = "bench-1"


def keygen(path):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": KID, "use": "sig", "alg": "ES256"})
    print(json.dumps({"keys": [public]}))


def _sign_chunk(args):
    key_pem, client_id, aud, count, exp = args
    key = serialization.load_pem_private_key(key_pem, password=None)
    out = []
    for _ in range(count):
        claims = {"iss": client_id, "sub": client_id, "aud": aud, "exp": exp, "jti": uuid.uuid4().hex}
        out.append(jwt.encode(claims, key, algorithm="ES256", headers={"kid": KID}))
    return out


def sign(key_path, client_id, aud, count, out_path, lifetime=3500):
    with open(key_path, "rb") as f:
        key_pem = f.read()
    exp = int(time.time()) + lifetime
    workers = max(1, os.cpu_count() or 1)
    chunk = 5000
    jobs = [(key_pem, client_id, aud, min(chunk, count - i), exp) for i in range(0, count, chunk)]
    with multiprocessing.Pool(workers) as pool, open(out_path, "w") as out:
        for lines in pool.imap(_sign_chunk, jobs):
            out.write("\n".join(lines))
            out.write("\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "keygen":
        keygen(sys.argv[2])
    elif len(sys.argv) in (7, 8) and sys.argv[1] == "sign":
        sign(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6], *(int(a) for a in sys.argv[7:]))
    else:
        sys.exit(__doc__)
