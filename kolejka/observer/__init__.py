"""kolejka observer."""
