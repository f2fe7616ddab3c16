"""Shared runtime for the zquant services: config, logging, database, gRPC bootstrap, auth, errors.

Generated protobuf/gRPC stubs live in ``services/stubs`` (made by ``make proto``) and are
importable as the ``zquant`` package (``from zquant.auth.v1 import auth_pb2``).
"""
