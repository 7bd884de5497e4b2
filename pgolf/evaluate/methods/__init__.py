"""Evaluation-time methods; each module registers itself in `pgolf.evaluate.methods.base.METHODS`.

MODULE_OF names the module defining each method, so a run (and an exported submission) imports
only the methods it uses — the illegal fixtures never enter a submission's code.
"""

MODULE_OF = {
    "standard": "standard", "sliding": "sliding", "ttt": "ttt", "slot": "slot", "slot-causal": "slot",
    "hedge": "hedge", "hedge-flattened": "hedge", "hedge-normalized": "hedge_normalized",
    "illegal-prequant-ttt": "illegal_ttt", "illegal-train-then-score-ttt": "illegal_ttt",
    "illegal-ngram-target-key": "illegal_mixers", "illegal-target-only-norm": "illegal_mixers",
    "illegal-late-unnormalized": "illegal_evasive", "illegal-late-train-first-ttt": "illegal_evasive",
    "illegal-late-peek": "illegal_evasive", "illegal-misreported-mixer": "illegal_evasive",
    "illegal-byte-ppm": "illegal_evasive",
}
