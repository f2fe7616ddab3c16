"""Views of a finished backtest shared by every service that shows one: the light series the
console's pages load (``views``) and the self-contained HTML report (``html``).

It lives outside the services on purpose. task_svc serves the report and the views of stored
results; engine_svc's command line writes the same report for a local run (``--html``). Services
talk to each other only through the gRPC stubs, so code both of them import must not be one
service's internals: this package depends only on the contract (``zquant.engine.v1`` messages)
and the chart bundle built from ``web/`` (``assets/``, written by ``make web``).
"""
