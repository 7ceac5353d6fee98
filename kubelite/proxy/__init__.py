"""The node's traffic components: the service proxy, cluster DNS (`kubelite.proxy.dns`) and the ingress gateway."""
