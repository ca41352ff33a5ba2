"""synthforge: synthetic tool-calling data and MLX fine-tuning as a DVC pipeline."""

__version__ = "0.1.0"
