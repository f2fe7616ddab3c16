"""Alembic environment for auth_svc: users, refresh tokens, API keys, signing keys, throttling."""

from auth_svc.models import Base
from services.migration_env import run

run(Base.metadata)
