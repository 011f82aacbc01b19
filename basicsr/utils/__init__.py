"""Shared utilities: registries, image I/O, logging, options."""
