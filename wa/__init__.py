"""wa: WeightAlign (Shi, Li, Liu, van Gemert, ICPR 2020) and its relatives, on minigrad."""
__version__ = "0.1.0"
