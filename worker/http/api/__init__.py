"""The HR teams' HTTP API under /v1."""
