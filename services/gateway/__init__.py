"""The API gateway: the stack's single entry point (routing, tokens, replicas)."""
