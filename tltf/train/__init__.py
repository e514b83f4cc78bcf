"""Training: phases (a strategy as data), the optimizer, callbacks and fit."""
