"""The real node's tests: a package, so that its fixtures end with its last test."""
