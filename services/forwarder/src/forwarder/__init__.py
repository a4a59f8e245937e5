"""The forwarder: credential validation, retries, circuit breaking and the Cakemail API calls."""
