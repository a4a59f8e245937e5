"""Keeping the forwarder truthful and fast when the API is slow or down."""
