"""Channels turn a provider's messages into `flows.engine.Inbound` and deliver replies."""
