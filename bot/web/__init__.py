"""The web app: the simulator page and API (later: webhooks and the operator console)."""
