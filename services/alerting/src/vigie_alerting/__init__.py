"""vigie alerting: fraud, security, model and pipeline-health alerts.

Rules (YAML, ``rules``) are judged by a pure engine (``handlers``); alerts go to the ``alerts``
topic, MongoDB (history, and the webhooks' outbox) and signed webhooks (``adapters``); a REST
API lists, acknowledges, resolves and labels them (``api``). ``app`` wires it all.
"""
