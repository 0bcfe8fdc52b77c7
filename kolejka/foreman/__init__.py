"""kolejka foreman."""
