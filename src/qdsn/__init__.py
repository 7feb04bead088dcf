"""QDSN, the Quality Data Service Network: quality data usable but not visible."""

__version__ = "0.1.0"
