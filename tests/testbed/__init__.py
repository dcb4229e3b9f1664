"""Local Kubernetes control plane for tests (see README.md)."""
