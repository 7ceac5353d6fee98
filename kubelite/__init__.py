"""kubelite: a small Kubernetes-compatible cluster orchestrator."""
__version__ = "0.1.0"
