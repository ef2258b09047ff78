"""pairwarden: keeps an active/passive pair of voicemail servers answering calls."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pairwarden")
except PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "0.0.0+unknown"
# The FailoverPair API's coordinates, once for every client of it.
GROUP = "pairwarden.io"
VERSION = "v1alpha1"
PLURAL = "failoverpairs"
