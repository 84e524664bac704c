"""quant: training, power-of-two PTQ and parameter-package export."""

__version__ = "0.1.0"
