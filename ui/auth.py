"""Optional login for the web UI: a password hash in the settings, or Streamlit's OIDC.

Hashes are ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`` (hashlib.scrypt, constant-time
comparison); ``rag hash-password`` prints one for ``RAG_UI_PASSWORD_HASH``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_N, _R, _P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` to put in ``RAG_UI_PASSWORD_HASH``.

    Raises:
        ValueError: the password is empty.
    """
    if not password:
        raise ValueError("password must not be empty")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password`.

    Raises:
        ValueError: ``stored`` is not such a hash (a configuration error to report).
    """
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ValueError(
            "RAG_UI_PASSWORD_HASH is not a hash made by `rag hash-password` "
            "(expected scrypt$n$r$p$salt$hash)"
        )
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
    except ValueError as exc:
        raise ValueError(f"RAG_UI_PASSWORD_HASH is malformed: {exc}") from exc
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r * p + 2**20
    )
    return hmac.compare_digest(digest, expected)
