"""bench: the core harness. It knows no paper; methods arrive as plugins."""
__version__ = "0.1.0"
