"""Fixtures of the gateway's tests; they live in gateway_testkit."""

from gateway_testkit import gateway, redis, servers, signing_key, users

__all__ = ["gateway", "redis", "servers", "signing_key", "users"]
