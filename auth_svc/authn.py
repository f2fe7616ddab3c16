"""The `Authenticator` auth_svc's own interceptor uses: the domain layer, in process (no RPC to
itself). Every call re-reads the user by primary key, so a disabled account is refused at once
even with an unexpired access token."""

from __future__ import annotations

from auth_svc.service import AuthService
from services.principal import Credentials, Principal


class LocalAuthenticator:
    def __init__(self, service: AuthService) -> None:
        self._service = service

    def authenticate(self, credentials: Credentials) -> Principal:
        return self._service.authenticate(credentials)
