"""Alembic environment for task_svc: strategies, tasks, results (version table alembic_version_task)."""

from services.migration_env import run
from task_svc.models import Base

run(Base.metadata)
