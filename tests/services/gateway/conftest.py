"""Fixtures of the gateway's tests; they live in gateway_testkit."""

from gateway_testkit import gateway, servers, signing_key, users

__all__ = ["gateway", "servers", "signing_key", "users"]
