"""TLS for both listeners: modern settings, and certificates reloaded from disk without a restart."""
