"""SMTP credentials -> Cakemail API tokens, cached so most sessions cost no API call."""
