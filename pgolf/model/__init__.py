"""Model stage: the GPT backbone and its registered components."""
