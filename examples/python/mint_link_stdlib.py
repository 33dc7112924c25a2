#!/usr/bin/env python3
"""Mint a latchkey signed link with the Python standard library only.

    python3 mint_link_stdlib.py KEY KID URL USER [--ttl 604800] [--max 1]
                                [--mode request|login] [--data '{"list":"news"}']
                                [--headers]

KEY is an HS256 key as `caddy latchkey links keys` prints it (base64url),
KID its kid ("default" unless link_keys names others), URL the absolute
http(s) URL the link opens, USER the user's e-mail address or id. It prints
the URL with ?token=<JWT> added; with --headers, then the two mail headers
an unsubscribe link goes out with (RFC 2369 and RFC 8058), ready to add to
a message. The token format is docs/links.md.
"""

import argparse
import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.parse


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def target_of(url: str) -> str:
    """The tgt claim: host (lower-case, no trailing dot, no port 80 or 443)
    and decoded path ("/" when empty), without scheme or query."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("URL must be an absolute http(s) URL")
    host = parts.hostname.rstrip(".")  # urlsplit lower-cases it
    if ":" in host:  # IPv6
        host = "[" + host + "]"
    if parts.port not in (None, 80, 443):
        host += ":" + str(parts.port)
    return host + (urllib.parse.unquote(parts.path) or "/")


def mint_link(key: bytes, kid: str, url: str, user: str, ttl: int = 7 * 86400,
              max_uses: int = 1, mode: str = "request", data=None, param: str = "token") -> str:
    now = int(time.time())
    claims = {
        "sub": user,                      # e-mail address or decimal user id
        "tgt": target_of(url),
        "exp": now + ttl,
        "iat": now,                       # lets `links revoke --user` work
        "jti": secrets.token_urlsafe(16), # lets `links revoke <jti>` work
        "max": max_uses,                  # 0 = unlimited until exp
        "mode": mode,
    }
    if data:
        claims["data"] = data
    header = {"alg": "HS256", "typ": "JWT", "kid": kid}
    signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode())
                     + "." + b64url(json.dumps(claims, separators=(",", ":")).encode()))
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    token = signing_input + "." + b64url(signature)

    base, _, fragment = url.partition("#")
    link = base + ("&" if "?" in base else "?") + param + "=" + token
    return link + ("#" + fragment if fragment else "")


def unsubscribe_headers(link: str) -> dict:
    """The headers that make a mail client show an unsubscribe button which
    POSTs List-Unsubscribe=One-Click to the link (a request-mode link)."""
    return {
        "List-Unsubscribe": "<" + link + ">",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def main() -> None:
    p = argparse.ArgumentParser(description="Mint a latchkey signed link (HS256).")
    p.add_argument("key", help="HS256 key, base64url, from `caddy latchkey links keys`")
    p.add_argument("kid")
    p.add_argument("url")
    p.add_argument("user", help="e-mail address or user id")
    p.add_argument("--ttl", type=int, default=7 * 86400, help="seconds (default 7 days)")
    p.add_argument("--max", type=int, default=1, help="uses; 0 = unlimited (default 1)")
    p.add_argument("--mode", default="request", choices=["request", "login"])
    p.add_argument("--data", type=json.loads, help="JSON object forwarded upstream")
    p.add_argument("--headers", action="store_true", help="also print the List-Unsubscribe mail headers")
    a = p.parse_args()
    link = mint_link(b64url_decode(a.key), a.kid, a.url, a.user, a.ttl, a.max, a.mode, a.data)
    print(link)
    if a.headers:
        for name, value in unsubscribe_headers(link).items():
            print(name + ": " + value)


if __name__ == "__main__":
    main()
