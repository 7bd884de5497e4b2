"""`pgolf check`: a submission verified as the contest's reviewers had to, by experiment where possible."""
