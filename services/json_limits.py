"""The nesting limit on JSON that users send (a strategy's ``params_schema``, a run's ``params``).

One rule for the services (services/user_json.py enforces it) and the gateway's request check
(protos/request_types.py writes it into deploy/request_types.lua, so Envoy refuses deeper JSON
with the same words before a service is called). No imports: ``make proto`` and the wheel build
read it where only protobuf is installed.
"""

MAX_JSON_DEPTH = 32  # arrays/objects inside each other; a JSON Schema or params need far fewer
DEPTH_MESSAGE = f"is nested too deeply: JSON may nest at most {MAX_JSON_DEPTH} arrays/objects"
