"""Access-token verification shared by every service (auth_svc signs, everyone verifies).

Tokens are EdDSA (Ed25519) JWTs. Verification pins the algorithm (so `alg: none` and
HS256-with-the-public-key tricks fail), requires exp/iat/sub, checks issuer and audience, and
looks the key up by `kid` so keys can rotate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.errors import Unauthenticated

ALGORITHM = "EdDSA"
DEFAULT_ISSUER = "zquant-auth"
DEFAULT_AUDIENCE = "zquant"
LEEWAY_SECONDS = 5


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    username: str
    is_admin: bool
    jti: str
    expires_at: int
    # The user's token epoch when it was issued (claim "ep", 0 when absent): auth_svc refuses
    # tokens from an epoch before the user's last password change or disable.
    epoch: int = 0


def verify_access_token(
    token: str,
    key_for_kid: Callable[[str], Ed25519PublicKey | None],
    *,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
) -> AccessClaims:
    """Returns the claims of a valid access token or raises Unauthenticated (never says why in detail
    beyond what helps a legitimate client: expired vs invalid)."""
    if len(token) > 4096:
        raise Unauthenticated("invalid access token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Unauthenticated("invalid access token") from None
    if header.get("alg") != ALGORITHM or not isinstance(header.get("kid"), str):
        raise Unauthenticated("invalid access token")
    key = key_for_kid(header["kid"])
    if key is None:
        raise Unauthenticated("invalid access token")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "nbf", "sub", "iss", "aud", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("access token expired") from None
    except jwt.PyJWTError:
        raise Unauthenticated("invalid access token") from None
    if claims.get("typ") != "access":
        raise Unauthenticated("invalid access token")
    try:
        return AccessClaims(
            user_id=int(claims["sub"]),
            username=str(claims.get("name", "")),
            is_admin=bool(claims.get("adm", False)),
            jti=str(claims["jti"]),
            expires_at=int(claims["exp"]),
            epoch=int(claims.get("ep", 0)),
        )
    except (TypeError, ValueError):
        raise Unauthenticated("invalid access token") from None
