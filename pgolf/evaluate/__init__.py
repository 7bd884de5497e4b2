"""Evaluation stage: scoring a model on the validation stream in bits per byte."""
