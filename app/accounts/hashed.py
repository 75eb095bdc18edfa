"""Secrets we hand out (API tokens, session ids, share and invite links) are stored only as
their SHA-256: a copy of the tables opens nothing."""

from __future__ import annotations

import hashlib


def digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
