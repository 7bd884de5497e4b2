"""Evaluation-time methods; each module registers itself in `pgolf.evaluate.methods.base.METHODS`
and is imported on first use through `pgolf.components.MODULES` (so a run, and an exported
submission, carries only the methods it uses: the illegal fixtures never enter a submission)."""
