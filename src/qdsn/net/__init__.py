"""Reaching other hosts: the outbound-fetch policy."""
