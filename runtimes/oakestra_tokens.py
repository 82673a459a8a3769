"""When FLOps logs in to Oakestra again: only when its token has expired.

A 401 from the system manager does not always mean that: ``GET /api/applications/<user id>``
answers 401 for a user id that is not the token's user, and a new login changes nothing
there. The token's own ``exp`` claim and the body of the 401 tell the cases apart
(docs/oakestra.md, "Tokens").
"""

from __future__ import annotations

import base64
import binascii
import json

import httpx

EXPIRY_LEEWAY = 30.0  # seconds: a token this close to its end is renewed before a call
# The 401 bodies that say the token is the problem: flask-jwt-extended's for an expired
# token, and Oakestra's own jwt_auth_required's for an expired (or otherwise bad) one.
_TOKEN_PROBLEMS = ({"msg": "Token has expired"}, {"message": "Missing authentication token"})


def token_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT, read without verifying it (only to know when to renew)."""
    try:
        claims = token.split(".")[1]
        payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    exp = payload.get("exp") if isinstance(payload, dict) else None
    return float(exp) if isinstance(exp, int | float) else None


def token_refused(response: httpx.Response) -> bool:
    """Whether a 401 says the token is the problem, the only 401 a new login cures.

    flask-jwt-extended answers an expired token with ``{"msg": "Token has expired"}``;
    Oakestra's own ``jwt_auth_required`` answers an expired (or otherwise bad) token with
    ``{"message": "Missing authentication token"}``. Any other 401, such as the
    ``{"code": 401, "status": "Unauthorized"}`` of ``GET /api/applications/<user id>`` for a
    user id that is not the token's, is not about the token: logging in again changes
    nothing.
    """
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and any(body == problem for problem in _TOKEN_PROBLEMS)
