#!/usr/bin/env python3
"""Mint a latchkey signed link with PyJWT (Debian: python3-jwt; pip: PyJWT).

    python3 mint_link_pyjwt.py KEY KID URL USER [--ttl 604800] [--max 1]
                               [--mode request|login] [--data '{"list":"news"}']

Same arguments and output as mint_link_stdlib.py; docs/links.md is the
token format.
"""

import argparse
import base64
import json
import secrets
import time
import urllib.parse

import jwt  # PyJWT


def target_of(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("URL must be an absolute http(s) URL")
    host = parts.hostname.rstrip(".")
    if ":" in host:
        host = "[" + host + "]"
    if parts.port not in (None, 80, 443):
        host += ":" + str(parts.port)
    return host + (urllib.parse.unquote(parts.path) or "/")


def main() -> None:
    p = argparse.ArgumentParser(description="Mint a latchkey signed link (HS256, PyJWT).")
    p.add_argument("key", help="HS256 key, base64url, from `caddy latchkey links keys`")
    p.add_argument("kid")
    p.add_argument("url")
    p.add_argument("user", help="e-mail address or user id")
    p.add_argument("--ttl", type=int, default=7 * 86400)
    p.add_argument("--max", type=int, default=1)
    p.add_argument("--mode", default="request", choices=["request", "login"])
    p.add_argument("--data", type=json.loads)
    a = p.parse_args()

    key = base64.urlsafe_b64decode(a.key + "=" * (-len(a.key) % 4))
    now = int(time.time())
    claims = {"sub": a.user, "tgt": target_of(a.url), "exp": now + a.ttl, "iat": now,
              "jti": secrets.token_urlsafe(16), "max": a.max, "mode": a.mode}
    if a.data:
        claims["data"] = a.data
    token = jwt.encode(claims, key, algorithm="HS256", headers={"kid": a.kid})
    if isinstance(token, bytes):  # PyJWT 1.x
        token = token.decode("ascii")

    base, _, fragment = a.url.partition("#")
    link = base + ("&" if "?" in base else "?") + "token=" + token
    print(link + ("#" + fragment if fragment else ""))


if __name__ == "__main__":
    main()
