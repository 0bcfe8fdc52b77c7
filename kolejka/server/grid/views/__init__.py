"""The HTTP API (docs/api.md): thin views over the rules in the grid's modules."""
