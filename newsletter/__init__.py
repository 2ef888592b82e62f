"""newsletter: compose a digest of recent articles and mail it to a list's subscribers."""

__version__ = "0.1.0"
