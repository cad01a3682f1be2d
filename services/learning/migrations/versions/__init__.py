"""One module per revision of the ``learning`` schema, applied in order."""
