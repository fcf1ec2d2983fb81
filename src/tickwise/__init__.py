"""tickwise: a real-time trading backend on Ray."""

__version__ = "0.1.0"
