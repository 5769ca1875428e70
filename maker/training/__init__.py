"""Training microagents: examples from oracles or verified journals, the training loop, model cards."""
