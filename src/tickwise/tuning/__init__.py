"""tickwise.tuning: walk-forward re-tuning of every instrument's strategy parameters."""
