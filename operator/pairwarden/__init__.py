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
# The oldest Kubernetes minor supported (README, the chart's kubeVersion, `kubectl pairwarden
# version`; tests/plugin/test_packaging.py checks they agree). Before 1.25 the CRD goes without
# its CEL rules (the chart chooses; the operator checks the same rules).
MIN_KUBERNETES = "1.20"
