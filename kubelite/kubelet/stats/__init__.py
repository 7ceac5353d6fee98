"""Resource usage the kubelet serves: the node's from ``/proc`` (`host`), pods' and containers' from the
runtime, as Kubernetes' Summary API (`summary`, ``GET /stats/summary`` on the kubelet's HTTPS endpoint).

The constants live here, apart from `summary` (which needs gRPC), because the API server reads them too.
"""

# Each summary measures CPU rates over this many seconds (the ``window`` of metrics.k8s.io objects).
SAMPLE_WINDOW = 1.0
# A summary is reused this long, so that callers cannot make the kubelet sample continuously.
REUSE_SECONDS = 1.0
