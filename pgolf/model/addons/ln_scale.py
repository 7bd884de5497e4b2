"""LN scale (PR #315): multiply the outputs of both pre-norms of block i (0-based) by 1/√(i+1).
No parameters; damps deeper blocks' inputs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pgolf.model.addons.base import ADDONS, AddOn


@ADDONS.register("ln_scale")
class LNScale(AddOn):
    @dataclass
    class Options:
        pass

    def norm_scale(self, layer):
        return 1.0 / math.sqrt(layer + 1)
