"""One trial: the Optuna objective that trains the space's params, the model check before it, and the
Keras Tuner engine as an adapter onto it."""
