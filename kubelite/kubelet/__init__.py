"""kubelite's node agent (kubelet's counterpart): node registration and heartbeats, pods run as containers, and
`simulated`, a kubelet that plays pods through their lifecycle without running anything (like kwok)."""
