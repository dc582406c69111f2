"""See the package docstring; modules here are imported directly."""
