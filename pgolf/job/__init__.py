"""A whole job over the stages below: loading a preset for a run (`preset`: read, override, check
whole), the main job (`run`: train → pack → eval → audit → export) and full-shape dry runs of
contest presets (`dryrun`)."""
