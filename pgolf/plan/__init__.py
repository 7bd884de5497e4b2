"""The 10-minute budget planner: measure a preset's step and eval cost, project it to a target."""
