"""kolejka server: a Django project whose one app, `kolejka.server.grid`, holds the grid."""
