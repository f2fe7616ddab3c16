"""task_svc: the strategy library, backtest tasks and their state machine, dispatch to
engine_svc, live status streams and results.

Where things live (outside in):
  servicer.py / strategy_servicer.py  gRPC only: proto <-> domain
  tasks.py / strategies.py            domain rules: validation, state machine, quotas
  repository.py                       SQLAlchemy queries, every user query scoped to user_id
  models.py                           the tables
  dispatcher.py                       claims PENDING tasks, runs them on engine_svc, leases
  events.py                           commit-then-publish: in-process bus + PostgreSQL NOTIFY
  engine_client.py                    the only code that talks to engine_svc
  templates/                          the nine template strategies (seeded by a migration)
  app.py / __main__.py                wiring and `python -m task_svc`
"""
