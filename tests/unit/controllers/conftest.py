"""Fixtures: the client tests' fake API server on loopback and a Client connected to it (shared, not copied)."""

from tests.unit.client.conftest import client, fake

__all__ = ["client", "fake"]
