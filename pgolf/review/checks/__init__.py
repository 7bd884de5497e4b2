"""One module per check; each is `check(evidence, options) -> Result`."""
