"""The legality audit: prove by experiment that an evaluation pipeline scores before it adapts."""
