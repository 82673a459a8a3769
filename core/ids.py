"""Identifiers and short names in the original FLOps scheme.

Ids are 24 hex characters in MongoDB ObjectId form (4-byte seconds, 5 random bytes fixed
per process, 3-byte counter), so ids made in one burst are consecutive. Short names are a
prefix plus the first six bytes of an MD5 digest: ``observ`` + md5(project id) (the
prefixes are in ``services.kinds``).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import time

_PROCESS_RANDOM = os.urandom(5)
_COUNTER = itertools.count(secrets.randbelow(0xFFFFFF))


def new_object_id(now: float | None = None) -> str:
    """A new 24-hex-character ObjectId-style id, unique in this process and ordered by time."""
    seconds = int(time.time() if now is None else now) & 0xFFFFFFFF
    counter = next(_COUNTER) & 0xFFFFFF
    return (seconds.to_bytes(4, "big") + _PROCESS_RANDOM + counter.to_bytes(3, "big")).hex()


def is_object_id(text: str) -> bool:
    """Whether ``text`` has the form of an id: 24 lower-case hex characters.

    The secure mode's training actors log in with their project's id as user name, so no
    person may have a name of this form (``broker.security.check_user_name``).
    """
    return len(text) == 24 and all(c in "0123456789abcdef" for c in text)


def short_hash(text: str) -> str:
    """The 12-hex-character name suffix of the original: ``md5(text).digest()[:6].hex()``."""
    return hashlib.md5(text.encode(), usedforsecurity=False).digest()[:6].hex()


def project_app_name(request_id: str) -> str:
    """Name of the project's application; hashes the request id, unique per project."""
    return "proj" + short_hash(request_id)


OBSERVATORY = "observatory"
