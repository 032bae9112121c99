"""The package version: one place, read by pyproject.toml and ``audioembed --version``."""

__version__ = "0.1.0"
