"""Data stage: the contest's token shards, tokenizers, byte accounting and corpus builders."""
