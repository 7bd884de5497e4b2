"""Depth recurrence (#1204 → #1394 → #1493; the 1.0611 record loops layers 3–5).

A span of physical layers [start, end] runs `1 + loops` times in a row, so 11 layers with
start 3, end 5, loops 2 run as 0 1 2 |3 4 5|3 4 5|3 4 5| 6 7 8 9 10: 17 virtual layers, no new
parameters (every weight, gain and scale is the physical layer's). The U-Net split follows the
virtual order (8 encoder / 9 decoder here; see unet_skips).

The loop switches on when the trainer reports `enable_at` of the run done (wallclock fraction, or
step fraction for a fixed-step run): before that the model runs its layers once. A model built
outside training (evaluation, an artifact) runs the looped order, the one it finished training in.
"""

from __future__ import annotations

from pgolf.errors import ConfigError
from pgolf.model.addons.base import ADDONS, AddOn
from pgolf.model.recurrence import RecurrenceOptions, run_order


@ADDONS.register("depth_recurrence")
class DepthRecurrence(AddOn):
    Options = RecurrenceOptions

    def __init__(self, cfg, model_cfg) -> None:
        super().__init__(cfg, model_cfg)
        if not 0.0 <= cfg.enable_at < 1.0:
            raise ConfigError(f"model.addons.depth_recurrence.enable_at must lie in [0, 1), got {cfg.enable_at}")
        self.looped = run_order(model_cfg.num_layers, cfg.start, cfg.end, cfg.loops)
        self.active = True  # a built model runs as it finished training; the trainer starts it off

    def layer_order(self, num_layers):
        return self.looped if self.active else list(range(num_layers))

    def on_train_progress(self, frac):
        active = frac >= self.cfg.enable_at
        changed = active != self.active
        self.active = active
        return changed
