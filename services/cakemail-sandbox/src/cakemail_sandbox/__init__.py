"""A real HTTP server that behaves like the Cakemail API, with fault injection, for development and tests."""
