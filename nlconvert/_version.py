"""The version of nlconvert: read by the package, the model files it writes and the build."""

__version__ = "0.3.0"
