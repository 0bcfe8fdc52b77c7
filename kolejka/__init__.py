"""kolejka: a grid platform that runs other people's programs in resource-limited containers."""

__version__ = "1.0.0.dev0"
