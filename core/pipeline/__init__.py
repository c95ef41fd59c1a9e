"""Job recipes on top of the engine: one job end to end, the ablation and the demo."""
