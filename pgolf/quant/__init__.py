"""Compression stage: quantizers and byte compressors, each registered by name."""
