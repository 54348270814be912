"""Crisis and disaster broadcast service for Indonesian disaster agencies."""

__version__ = "0.1.0"
