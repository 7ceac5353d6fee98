"""podfiles: /etc/hosts, /etc/resolv.conf and /etc/hostname of a pod."""

from __future__ import annotations

from kubelite.kubelet.runtime import podfiles


def test_hosts_of_a_pod_on_the_pod_network() -> None:
    text = podfiles.hosts_file(hostname="web-0", ips=["10.42.0.7"])
    assert text == (
        "# Kubernetes-managed hosts file.\n"
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "fe00::0\tip6-mcastprefix\n"
        "fe00::1\tip6-allnodes\n"
        "fe00::2\tip6-allrouters\n"
        "10.42.0.7\tweb-0\n"
    )


def test_hosts_with_subdomain_and_aliases() -> None:
    text = podfiles.hosts_file(
        hostname="web-0",
        ips=["10.42.0.7", "fd00::7"],
        subdomain="web",
        namespace="shop",
        domain="cluster.local",
        host_aliases=[("1.2.3.4", ["foo.local", "bar.local"])],
    )
    assert "10.42.0.7\tweb-0.web.shop.svc.cluster.local\tweb-0\n" in text
    assert "fd00::7\tweb-0.web.shop.svc.cluster.local\tweb-0\n" in text
    assert text.endswith("\n# Entries added by HostAliases.\n1.2.3.4\tfoo.local\tbar.local\n")


def test_host_network_pods_get_the_node_hosts() -> None:
    text = podfiles.hosts_file(hostname="node", ips=[], host_network=True, node_hosts="127.0.0.1 localhost",
                               host_aliases=[("5.6.7.8", ["x"])])
    assert text == "127.0.0.1 localhost\n\n# Entries added by HostAliases.\n5.6.7.8\tx\n"


def test_cluster_domain_from_search_path() -> None:
    searches = ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert podfiles.cluster_domain(searches, "shop") == "cluster.local"
    assert podfiles.cluster_domain(["example.com"], "shop") == ""


def test_resolv_conf() -> None:
    text = podfiles.resolv_conf(servers=["10.43.0.10"], searches=["a.svc.cluster.local", "cluster.local"],
                                options=["ndots:5"])
    assert text == "search a.svc.cluster.local cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n"


def test_resolv_conf_without_dns_config_is_the_node_one() -> None:
    assert podfiles.resolv_conf(servers=[], searches=[], options=[], node_resolv="nameserver 1.1.1.1\n") == (
        "nameserver 1.1.1.1\n"
    )


def test_hostname_file() -> None:
    assert podfiles.hostname_file("web-0") == "web-0\n"
