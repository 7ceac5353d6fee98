"""kubelite: a small Kubernetes-compatible cluster orchestrator."""
