"""cnmflow: CNMF / CNMF-E calcium-imaging source extraction with CaImAn's parameter names."""

__version__ = "0.1.0"
