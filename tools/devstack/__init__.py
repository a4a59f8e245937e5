"""Starts the whole stack (sandbox, forwarder, edge) on this machine: `make run` and the end-to-end tests."""
