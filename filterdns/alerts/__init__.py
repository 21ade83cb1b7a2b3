"""Safeguarding alerts: rules in the policy (``alerts.rules``) watch the query log for bursts
of blocked lookups in sensitive categories or bypass attempts; each burst becomes one alert
in the store, shown in the console and sent to the rule's recipients through the outbox."""
