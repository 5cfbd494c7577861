"""The version of cnmflow, in a module of its own so that any module can name it without importing the package's
entry points (``cnmflow.extract`` and everything behind it)."""

__version__ = "0.1.0"
