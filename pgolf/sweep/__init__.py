"""`pgolf sweep`: hyperparameter search over preset keys (Optuna), on one machine or many."""
