"""Webhooks: subscriptions and task callbacks, delivered from a durable outbox."""
