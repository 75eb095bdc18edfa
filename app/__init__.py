"""The wiring: web app factory, `analytics` CLI, scheduler process, blueprints, accounts."""
