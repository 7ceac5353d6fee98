"""The kubelet's streaming server parts: CRI log reading, the WebSocket channel protocol, SPDY/3.1 framing,
exec and port-forward sessions, the runtime they need, and the endpoint's TLS. `kubelite.kubelet.server`
wires them into the HTTPS app."""
