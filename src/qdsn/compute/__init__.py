"""Certification models sent to the data: packages, the sandbox, attestations, built-in models."""
