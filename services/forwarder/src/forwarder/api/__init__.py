"""The Cakemail HTTP API: its wire format (one module) and an httpx client around it."""
