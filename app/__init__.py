"""hookscope: a self-hostable webhook inspector."""

__version__ = "0.1.0"
