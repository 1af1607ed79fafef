"""The first-VM smoke test: a guest image built from Debian packages, and the run against a cloud."""
