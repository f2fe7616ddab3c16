"""auth_svc: users, password hashing, JWT access / refresh tokens, API keys, `Authenticate`.

Layers (each module imports only the ones below it):

- ``__main__``    process entry: ``serve`` (default), ``create-admin``, ``rotate-keys``
- ``servicer``    gRPC only: proto messages <-> domain calls, nothing else
- ``authn``       the in-process `Authenticator` the server's interceptor uses (no RPC to itself)
- ``service``     the decisions: login, refresh rotation + reuse detection, logout, users, API keys
- ``throttle``    failed-login throttling (per username and per client IP, stored in the DB)
- ``keys``        Ed25519 signing keys (stored in the DB, cached per process) and rotation
- ``passwords``   argon2id hashing
- ``repository``  SQLAlchemy 2 queries, one function per query
- ``models``      the ORM tables (auth_svc's own DeclarativeBase)
- ``settings``    every ZQ_* variable auth_svc reads
"""
