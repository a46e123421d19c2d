"""Secrets inside URLs: the `user:password@` of a value such as `REDIS=redis://:pass@h:6379`,
whatever the key is named (masking by key name never sees them).

The userinfo is what a URL parser takes it to be: after `scheme://`, up to the last `@` before
the host's end (the first `/`, `?`, `#` or space). A userinfo with a `:` has its password after
the first one; one without is a secret whole (a token given as the user, `https://<token>@host`).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@")


def _secret_part(userinfo: str) -> tuple[str, str]:
    """(what stays shown, the secret) of a userinfo."""
    user, colon, password = userinfo.partition(":")
    return (user + colon, password) if colon else ("", userinfo)


def secrets_in(value: str) -> list[str]:
    """The passwords (or tokens) in the URLs of `value`, as written and percent-decoded."""
    found = []
    for match in _USERINFO.finditer(str(value)):
        secret = _secret_part(match["userinfo"])[1]
        found += [s for s in dict.fromkeys((secret, unquote(secret))) if s]
    return found


def masked(value: str) -> str:
    """`value` with the password of each URL in it shown as `***`, the rest of the URL as it is."""
    def mask(match: re.Match) -> str:
        shown, secret = _secret_part(match["userinfo"])
        return match["scheme"] + shown + ("***" if secret else "") + "@"

    return _USERINFO.sub(mask, str(value))
