"""The real Cakemail API's OpenAPI 3.1 document (excerpt of 1.18.25, unchanged): v2 requests are validated by it."""
