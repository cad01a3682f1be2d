"""The Campus learning platform backend: the stack the harness is proven on."""
