"""gRPC adapter for the auth domain: proto messages in, domain calls, proto messages out.

No SQL and no rules here. Two gRPC-specific jobs also live here:

- the client IP for login throttling: the transport peer, or — only when that peer is a
  trusted proxy (ZQ_AUTH_TRUSTED_PROXIES, default loopback where the bundled Envoy runs) — the
  LAST `x-forwarded-for` entry. Envoy with `use_remote_address: true` appends the address it
  accepted the connection from; every earlier entry was written by the client and is ignored.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from zquant.auth.v1 import auth_pb2, auth_pb2_grpc, auth_rest_pb2

from auth_svc import roles
from auth_svc.service import ApiKeyView, AuthService, TokenPair, UserChanges, UserView
from services import rest, rest_contract
from services.principal import current_principal

SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name
REST_SERVICE = auth_rest_pb2.DESCRIPTOR.services_by_name["AuthRestService"]
PUBLIC_METHODS = frozenset(f"/{SERVICE_NAME}/{m}" for m in
                           ("Login", "Refresh", "Logout", "Authenticate", "GetSigningKeys")) \
    | rest_contract.public_methods(REST_SERVICE)
LOGGED_OUT = "logged out"
KEY_REVOKED = "API key revoked"
PASSWORD_RESET = "password reset"  # noqa: S105 (a notice, not a password)
USER_DELETED = "user deleted"
SECRET_SHOWN_ONCE = "keep the secret_key safe: it is shown only once"  # noqa: S105 (a notice, not a secret)


def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


def _user(u: UserView) -> auth_pb2.User:
    return auth_pb2.User(id=u.id, username=u.username, email=u.email, is_active=u.is_active,
                         is_admin=u.is_admin, created_at=_ts(u.created_at), updated_at=_ts(u.updated_at),
                         role_id=roles.role_id(u.is_admin))


def _api_key(k: ApiKeyView) -> auth_pb2.ApiKey:
    return auth_pb2.ApiKey(id=k.id, access_key=k.key, name=k.name, created_at=_ts(k.created_at),
                           last_used_at=_ts(k.last_used_at), expires_at=_ts(k.expires_at), is_active=True,
                           is_service=k.is_service)


def _pair(p: TokenPair) -> auth_pb2.TokenPair:
    return auth_pb2.TokenPair(access_token=p.access_token, refresh_token=p.refresh_token, token_type="bearer",  # noqa: S106
                              expires_in=p.expires_in, refresh_expires_in=p.refresh_expires_in)


def _peer_ip(peer: str) -> str:
    """"ipv4:1.2.3.4:5678" / "ipv6:[::1]:5678" / "ipv6:%5B::1%5D:5678" → the address."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        rest = rest.replace("%5B", "[").replace("%5D", "]")
        return rest[1:rest.index("]")] if rest.startswith("[") and "]" in rest else rest
    return ""  # unix sockets etc.: no client address


def _trusted(ip: str, trusted_proxies: frozenset[str]) -> bool:
    """An address, or a network in CIDR form (Kubernetes: the gateway pods' addresses change)."""
    if ip in trusted_proxies:
        return True
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(p, strict=False) for p in trusted_proxies if "/" in p)


def client_ip(context: grpc.ServicerContext, trusted_proxies: frozenset[str]) -> str:
    ip = _peer_ip(context.peer() or "")
    if _trusted(ip, trusted_proxies):
        forwarded = [v for k, v in context.invocation_metadata() or () if k == "x-forwarded-for"]
        if forwarded and isinstance(forwarded[-1], str):
            last = forwarded[-1].split(",")[-1].strip()
            try:
                return str(ipaddress.ip_address(last))
            except ValueError:
                pass  # garbage in the header: fall back to the proxy's own address
    return ip


class AuthServicer(auth_pb2_grpc.AuthServiceServicer):
    def __init__(self, service: AuthService) -> None:
        self.svc = service

    def Login(self, request: auth_pb2.LoginRequest, context: grpc.ServicerContext) -> auth_pb2.TokenPair:
        ip = client_ip(context, self.svc.settings.trusted_proxies)
        return _pair(self.svc.login(request.username, request.password, ip))

    def Refresh(self, request: auth_pb2.RefreshRequest, context: grpc.ServicerContext) -> auth_pb2.TokenPair:
        return _pair(self.svc.refresh(request.refresh_token))

    def Logout(self, request: auth_pb2.LogoutRequest, context: grpc.ServicerContext) -> auth_pb2.LogoutResponse:
        self.svc.logout(request.refresh_token)
        return auth_pb2.LogoutResponse(message=LOGGED_OUT)

    def GetMe(self, request: auth_pb2.GetMeRequest, context: grpc.ServicerContext) -> auth_pb2.User:
        return _user(self.svc.get_user(current_principal()))

    def CreateUser(self, request: auth_pb2.CreateUserRequest, context: grpc.ServicerContext) -> auth_pb2.User:
        roles.check_password_confirm(request.password, request.password_confirm)
        role = request.role_id if request.HasField("role_id") else None
        is_admin = roles.admin_from_role(role, request.is_admin if request.is_admin else None) or False
        return _user(self.svc.create_user(current_principal(), request.username, request.password,
                                          request.email, is_admin))

    def UpdateUser(self, request: auth_pb2.UpdateUserRequest, context: grpc.ServicerContext) -> auth_pb2.User:
        changes = UserChanges(
            is_active=request.is_active if request.HasField("is_active") else None,
            email=request.email if request.HasField("email") else None,
            password=request.password if request.HasField("password") else None,
            is_admin=roles.admin_from_role(request.role_id if request.HasField("role_id") else None,
                                           request.is_admin if request.HasField("is_admin") else None),
        )
        return _user(self.svc.update_user(current_principal(), request.user_id, changes))

    def ListUsers(self, request: auth_pb2.ListUsersRequest,
                  context: grpc.ServicerContext) -> auth_pb2.ListUsersResponse:
        is_admin = roles.admin_from_role(request.role_id if request.HasField("role_id") else None, None)
        users, total, page = self.svc.list_users(
            current_principal(), request.skip, request.limit, request.order_by, request.order,
            is_active=request.is_active if request.HasField("is_active") else None, is_admin=is_admin,
            username=request.username)
        return auth_pb2.ListUsersResponse(items=[_user(u) for u in users], total=total, skip=page.skip,
                                          limit=page.limit)

    def GetUser(self, request: auth_pb2.GetUserRequest, context: grpc.ServicerContext) -> auth_pb2.User:
        return _user(self.svc.get_user_by_id(current_principal(), request.user_id))

    def ResetPassword(self, request: auth_pb2.ResetPasswordRequest,
                      context: grpc.ServicerContext) -> auth_pb2.ResetPasswordResponse:
        roles.check_password_confirm(request.password, request.password_confirm)
        self.svc.update_user(current_principal(), request.user_id, UserChanges(password=request.password))
        return auth_pb2.ResetPasswordResponse(message=PASSWORD_RESET)

    def DeleteUser(self, request: auth_pb2.DeleteUserRequest,
                   context: grpc.ServicerContext) -> auth_pb2.DeleteUserResponse:
        self.svc.delete_user(current_principal(), request.user_id)
        return auth_pb2.DeleteUserResponse(message=USER_DELETED)

    def ListApiKeys(self, request: auth_pb2.ListApiKeysRequest,
                    context: grpc.ServicerContext) -> auth_pb2.ListApiKeysResponse:
        keys = self.svc.list_api_keys(current_principal())
        return auth_pb2.ListApiKeysResponse(api_keys=[_api_key(k) for k in keys], total=len(keys))

    def CreateApiKey(self, request: auth_pb2.CreateApiKeyRequest,
                     context: grpc.ServicerContext) -> auth_pb2.CreateApiKeyResponse:
        created = self.svc.create_api_key(current_principal(), request.name, request.expires_in_days)
        k = created.key
        return auth_pb2.CreateApiKeyResponse(id=k.id, access_key=k.key, secret_key=created.secret, name=k.name,
                                             created_at=_ts(k.created_at), expires_at=_ts(k.expires_at),
                                             is_active=True, message=SECRET_SHOWN_ONCE)

    def RevokeApiKey(self, request: auth_pb2.RevokeApiKeyRequest,
                     context: grpc.ServicerContext) -> auth_pb2.RevokeApiKeyResponse:
        self.svc.revoke_api_key(current_principal(), request.key_id)
        return auth_pb2.RevokeApiKeyResponse(message=KEY_REVOKED)

    def Authenticate(self, request: auth_pb2.AuthenticateRequest,
                     context: grpc.ServicerContext) -> auth_pb2.Principal:
        if request.access_token:
            p = self.svc.authenticate_access_token(request.access_token)
        else:
            p = self.svc.authenticate_api_key(request.api_key, request.api_secret)
        return auth_pb2.Principal(user_id=p.user_id, username=p.username, is_admin=p.is_admin,
                                  auth_method=p.auth_method, is_service=p.is_service)

    def SetApiKeyService(self, request: auth_pb2.SetApiKeyServiceRequest,
                         context: grpc.ServicerContext) -> auth_pb2.ApiKey:
        return _api_key(self.svc.set_api_key_service(current_principal(), request.user_id, request.key_id,
                                                     request.is_service))

    def GetSigningKeys(self, request: auth_pb2.GetSigningKeysRequest,
                       context: grpc.ServicerContext) -> auth_pb2.GetSigningKeysResponse:
        return auth_pb2.GetSigningKeysResponse(
            keys=[auth_pb2.SigningKey(kid=k.kid, alg=k.alg, public_key_pem=k.public_key_pem)
                  for k in self.svc.signing_keys()],
            issuer=self.svc.settings.issuer, audience=self.svc.settings.audience)


def register(server: grpc.Server, servicer: AuthServicer) -> list[str]:
    auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
    return [SERVICE_NAME, rest.register_rest_service(server, REST_SERVICE, servicer)]
