"""The two stores and what they hold: Optuna storage, MLflow tracking, recovery of dead workers, the consistency check, the model registry."""
