"""The HTTP API (docs/api.md): small viewsets over the rules in the grid's modules, routed in
`kolejka.server.urls`."""
