"""Evaluation-time methods; each module registers itself in `pgolf.evaluate.methods.base.METHODS`."""
