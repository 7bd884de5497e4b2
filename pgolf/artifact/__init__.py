"""Artifact stage: the pickle-free model file, its byte accounting and loading."""
