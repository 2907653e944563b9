"""Mistral-compatible gateway: shared code for the Lambda functions (the layer's package)."""

__version__ = "0.1.0"
