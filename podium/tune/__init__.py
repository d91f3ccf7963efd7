"""The improve loop's training side: training data from production (SFT, DPO, KTO exports),
and later fine-tuning runs and sweeps. See ``podium/tune/README.md``."""
