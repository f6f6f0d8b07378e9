"""The runtime: registry, scan, outbox dispatcher, daemon, CLI."""
