"""What every Campus service shares: logging, problem responses, request ids."""
