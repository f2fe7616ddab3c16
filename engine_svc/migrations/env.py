"""Alembic environment for engine_svc: the market-data tables."""

from engine_svc.data.models import Base
from services.migration_env import run

run(Base.metadata)
