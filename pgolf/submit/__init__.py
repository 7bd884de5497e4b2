"""Submission: multi-seed runs, the contest's significance test, records folder, plots and report."""
