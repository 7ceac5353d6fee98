"""The ingress gateway: an HTTP(S) reverse proxy on every node, driven by Ingress objects of class
``kubelite`` (ingress-nginx's and k3s Traefik's job).

Modules, each with one job: `routes` (the pure routing table), `classes` (which Ingresses are ours, and
the default IngressClass), `http1` and `headers` (message heads, body framing, header rewriting),
`channel` and `pool` (connections), `gateway` (listeners, routing, the callback fast path), `forward` (the
general path: streaming, retries, upgrades), `replies` (the gateway's own answers), `tls` (certificates
by SNI), `status` (status.loadBalancer), `config`, `controller` (informers → table → gateway;
`run_ingress`).
"""

from kubelite.proxy.ingress.classes import CLASS_NAME, CONTROLLER, ensure_ingress_class
from kubelite.proxy.ingress.config import IngressConfig
from kubelite.proxy.ingress.controller import IngressController, run_ingress

__all__ = ["CLASS_NAME", "CONTROLLER", "IngressConfig", "IngressController", "ensure_ingress_class", "run_ingress"]
