"""The Cakemail HTTP API behind one interface (interface.CakemailApi), in two flavors: v2 (the real API, default)
and v1 (the design document's contract). Each flavor's wire module holds its format and classifies its answers."""
