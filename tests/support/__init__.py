"""Helpers shared by the test suite (fake upstream DNS server, ...)."""
