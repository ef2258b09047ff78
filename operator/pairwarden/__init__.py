"""pairwarden: keeps an active/passive pair of voicemail servers answering calls."""

__version__ = "0.1.0"
GROUP = "pairwarden.io"
VERSION = "v1alpha1"
