"""One module per revision of the ``notifications`` schema, applied in order."""
