"""The routing table: hosts, wildcards, Exact/Prefix semantics, precedence, conflicts, default backend,
backends resolved through EndpointSlices, certificates."""

from __future__ import annotations

import pytest

from kubelite.proxy.ingress.routes import (
    INVALID_SECRET,
    PORT_NOT_FOUND,
    RULE_CONFLICT,
    SECRET_NOT_FOUND,
    SERVICE_NOT_FOUND,
    UNSUPPORTED_BACKEND,
    Build,
    Endpoint,
    build_routes,
    host_matches,
    normalize_host,
    normalize_path,
    references,
)

from .helpers import FakeCluster, Obj, backend, endpoint_slice, ingress, path, rule, service, tls_secret

# One Service per name, each with one endpoint whose address tells them apart.
NAMES = ("a", "b", "c", "d", "e", "web", "api", "exact", "prefix", "other", "fallback")


def cluster(*extra: Obj) -> FakeCluster:
    objects: list[Obj] = []
    for i, name in enumerate(NAMES):
        objects.append(service(name, ("http", 80)))
        objects.append(endpoint_slice(name, [f"10.0.0.{i + 1}"], ("http", 8080)))
    return FakeCluster(*objects, *extra)


def build(*ingresses: Obj, extra: tuple[Obj, ...] = ()) -> Build:
    return build_routes(ingresses, cluster(*extra))


def target(result: Build, host: str, request_path: str) -> str | None:
    """The Service a request goes to, or None."""
    route = result.table.route(normalize_host(host), normalize_path(request_path) or "")
    return route.backend.service.split("/")[1] if route is not None else None


# --- normal forms -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param("Example.COM", "example.com", id="case"),
    pytest.param("example.com:8080", "example.com", id="port"),
    pytest.param("example.com.", "example.com", id="trailing-dot"),
    pytest.param("[::1]:443", "[::1]", id="ipv6"),
    pytest.param("", "", id="empty"),
])
def test_normalize_host(raw: str, expected: str) -> None:
    assert normalize_host(raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [
    pytest.param("/a/b", "/a/b", id="plain"),
    pytest.param("/a//b", "/a/b", id="merged-slashes"),
    pytest.param("/a/./b", "/a/b", id="dot"),
    pytest.param("/a/x/../b", "/a/b", id="dot-dot"),
    pytest.param("/public/../admin", "/admin", id="climb"),
    pytest.param("/a%2Fb", "/a/b", id="encoded-slash"),
    pytest.param("/%61pi", "/api", id="encoded-letter"),
    pytest.param("/a/b/", "/a/b/", id="trailing-slash-kept"),
    pytest.param("/a/b/..", "/a/", id="trailing-dot-dot"),
    pytest.param("/..", None, id="above-root"),
    pytest.param("relative", None, id="not-absolute"),
    pytest.param("*", None, id="asterisk"),
])
def test_normalize_path(raw: str, expected: str | None) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(("pattern", "host", "expected"), [
    ("*.example.com", "a.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "a.b.example.com", False),
    ("*.example.com", ".example.com", False),
    ("example.com", "example.com", True),
    ("example.com", "a.example.com", False),
])
def test_host_matches(pattern: str, host: str, expected: bool) -> None:
    assert host_matches(pattern, host) is expected


# --- paths (the table in the Kubernetes Ingress documentation) --------------------------------------

@pytest.mark.parametrize(("path_type", "rule_paths", "asked", "expected"), [
    pytest.param("Prefix", ["/"], "/aaa/bbb", "a", id="prefix-root-all"),
    pytest.param("Exact", ["/foo"], "/foo", "a", id="exact"),
    pytest.param("Exact", ["/foo"], "/bar", None, id="exact-other"),
    pytest.param("Exact", ["/foo"], "/foo/", None, id="exact-trailing-slash-request"),
    pytest.param("Exact", ["/foo/"], "/foo", None, id="exact-trailing-slash-rule"),
    pytest.param("Prefix", ["/foo"], "/foo", "a", id="prefix-same"),
    pytest.param("Prefix", ["/foo"], "/foo/", "a", id="prefix-request-slash"),
    pytest.param("Prefix", ["/foo/"], "/foo", "a", id="prefix-rule-slash"),
    pytest.param("Prefix", ["/foo/"], "/foo/", "a", id="prefix-both-slash"),
    pytest.param("Prefix", ["/aaa/bb"], "/aaa/bbb", None, id="prefix-not-string-prefix"),
    pytest.param("Prefix", ["/aaa/bbb"], "/aaa/bbb", "a", id="prefix-elements"),
    pytest.param("Prefix", ["/aaa/bbb/"], "/aaa/bbb", "a", id="prefix-elements-rule-slash"),
    pytest.param("Prefix", ["/aaa/bbb"], "/aaa/bbb/", "a", id="prefix-elements-request-slash"),
    pytest.param("Prefix", ["/aaa/bbb"], "/aaa/bbb/ccc", "a", id="prefix-subpath"),
    pytest.param("Prefix", ["/aaa/bbb"], "/aaa/bbbxyz", None, id="prefix-no-partial-element"),
    pytest.param("Prefix", ["/", "/aaa"], "/aaa/ccc", "b", id="prefix-longest"),
    pytest.param("Prefix", ["/", "/aaa", "/aaa/bbb"], "/aaa/bbb", "c", id="prefix-longest-3"),
    pytest.param("Prefix", ["/", "/aaa", "/aaa/bbb"], "/ccc", "a", id="prefix-root-fallback"),
    pytest.param("Prefix", ["/aaa"], "/ccc", None, id="prefix-no-match"),
    pytest.param("Prefix", ["/foo"], "/FOO", None, id="case-sensitive"),
    pytest.param("ImplementationSpecific", ["/foo"], "/foo/bar", "a", id="implementation-specific-is-prefix"),
    pytest.param("ImplementationSpecific", ["/foo"], "/foobar", None, id="implementation-specific-elements"),
    pytest.param("Prefix", ["/api"], "/api/../secret", None, id="normalized-before-matching"),
    pytest.param("Prefix", ["/api"], "/api%2Fv1", "a", id="decoded-before-matching"),
])
def test_path_matching(path_type: str, rule_paths: list[str], asked: str, expected: str | None) -> None:
    paths = [path(p, NAMES[i], 80, path_type) for i, p in enumerate(rule_paths)]
    result = build(ingress("ing", rule("foo.com", *paths)))
    assert target(result, "foo.com", asked) == expected


def test_exact_beats_prefix_of_the_same_path() -> None:
    result = build(ingress("ing", rule("foo.com", path("/foo", "prefix"), path("/foo", "exact", path_type="Exact"))))
    assert target(result, "foo.com", "/foo") == "exact"
    assert target(result, "foo.com", "/foo/bar") == "prefix"


def test_longest_prefix_beats_shorter_exact_elsewhere() -> None:
    result = build(ingress("ing", rule("foo.com", path("/", "prefix"), path("/foo", "exact", path_type="Exact"),
                                       path("/foo/bar", "web"))))
    assert target(result, "foo.com", "/foo/bar/baz") == "web"
    assert target(result, "foo.com", "/foo") == "exact"
    assert target(result, "foo.com", "/foo/") == "prefix"


def test_implementation_specific_without_path_matches_everything() -> None:
    result = build(ingress("ing", rule("foo.com", path(None, "a", path_type="ImplementationSpecific"))))
    assert target(result, "foo.com", "/anything/at/all") == "a"


# --- hosts ------------------------------------------------------------------------------------------

def test_hosts_exact_wildcard_and_any() -> None:
    result = build(ingress("ing", rule("foo.example.com", path("/", "exact")),
                           rule("*.example.com", path("/", "a")),
                           rule(None, path("/", "other"))))
    assert target(result, "foo.example.com", "/") == "exact"
    assert target(result, "FOO.Example.com:8443", "/") == "exact"
    assert target(result, "bar.example.com", "/x") == "a"
    assert target(result, "a.bar.example.com", "/") == "other"  # a wildcard matches one label only
    assert target(result, "example.com", "/") == "other"
    assert target(result, "unrelated.org", "/") == "other"


def test_a_host_without_a_matching_path_falls_through_to_less_specific_rules() -> None:
    result = build(ingress("ing", rule("foo.example.com", path("/api", "api")),
                           rule("*.example.com", path("/web", "web")),
                           rule(None, path("/other", "other")), default=backend("fallback")))
    assert target(result, "foo.example.com", "/api/v1") == "api"
    assert target(result, "foo.example.com", "/web") == "web"
    assert target(result, "foo.example.com", "/other") == "other"
    assert target(result, "foo.example.com", "/nothing") == "fallback"


def test_no_rule_and_no_default_backend_is_none() -> None:
    result = build(ingress("ing", rule("foo.com", path("/api", "api"))))
    assert result.table.route("bar.com", "/api") is None
    assert result.table.route("foo.com", "/web") is None


def test_default_backend_alone() -> None:
    result = build(ingress("ing", default=backend("fallback")))
    route = result.table.route("any.host", "/any/path")
    assert route is not None and route.backend.service == "default/fallback" and route.path_type == ""


def test_rules_of_several_ingresses_merge() -> None:
    result = build(ingress("one", rule("foo.com", path("/a", "a"))),
                   ingress("two", rule("foo.com", path("/b", "b")), namespace="other"),
                   extra=(service("b", ("http", 80), namespace="other"),
                          endpoint_slice("b", ["10.9.9.9"], ("http", 80), namespace="other")))
    assert target(result, "foo.com", "/a") == "a"
    route = result.table.route("foo.com", "/b")
    assert route is not None and route.ingress == "other/two" and route.backend.endpoints == (Endpoint("10.9.9.9", 80),)
    assert result.problems == ()


# --- conflicts --------------------------------------------------------------------------------------

def test_the_oldest_ingress_wins_a_host_and_path() -> None:
    young = ingress("young", rule("foo.com", path("/", "b")), created="2024-06-01T00:00:00Z")
    old = ingress("old", rule("foo.com", path("/", "a")), created="2024-01-01T00:00:00Z")
    result = build(young, old)
    assert target(result, "foo.com", "/") == "a"
    [problem] = result.problems
    assert problem.ingress is young and problem.reason == RULE_CONFLICT
    assert 'host "foo.com" and path "/" (Prefix) is already defined in ingress default/old' in problem.message


def test_equal_ages_are_ordered_by_namespace_and_name() -> None:
    result = build(ingress("zz", rule("foo.com", path("/", "b"))), ingress("aa", rule("foo.com", path("/", "a"))))
    assert target(result, "foo.com", "/") == "a"
    assert [p.ingress["metadata"]["name"] for p in result.problems] == ["zz"]


def test_a_conflict_does_not_affect_the_losers_other_rules() -> None:
    old = ingress("old", rule("foo.com", path("/", "a")), created="2024-01-01T00:00:00Z")
    young = ingress("young", rule("foo.com", path("/", "b"), path("/mine", "c")), rule("bar.com", path("/", "d")),
                    created="2024-02-01T00:00:00Z")
    result = build(old, young)
    assert target(result, "foo.com", "/") == "a"
    assert target(result, "foo.com", "/mine/x") == "c"
    assert target(result, "bar.com", "/") == "d"


@pytest.mark.parametrize(("first", "second", "conflict"), [
    pytest.param(("/foo", "Prefix"), ("/foo/", "Prefix"), True, id="prefix-trailing-slash-is-the-same"),
    pytest.param(("/foo", "Prefix"), ("/foo", "ImplementationSpecific"), True, id="implementation-specific-is-prefix"),
    pytest.param(("/foo", "Prefix"), ("/foo", "Exact"), False, id="exact-and-prefix-coexist"),
    pytest.param(("/foo", "Exact"), ("/foo/", "Exact"), False, id="exact-trailing-slash-differs"),
])
def test_what_conflicts(first: tuple[str, str], second: tuple[str, str], conflict: bool) -> None:
    result = build(ingress("one", rule("foo.com", path(first[0], "a", path_type=first[1]))),
                   ingress("two", rule("foo.com", path(second[0], "b", path_type=second[1])),
                           created="2024-02-01T00:00:00Z"))
    assert bool(result.problems) is conflict


def test_wildcard_and_exact_hosts_do_not_conflict() -> None:
    result = build(ingress("one", rule("*.foo.com", path("/", "a"))),
                   ingress("two", rule("x.foo.com", path("/", "b")), created="2024-02-01T00:00:00Z"))
    assert result.problems == ()
    assert target(result, "x.foo.com", "/") == "b"
    assert target(result, "y.foo.com", "/") == "a"


def test_the_oldest_default_backend_wins() -> None:
    young = ingress("young", default=backend("b"), created="2024-06-01T00:00:00Z")
    result = build(young, ingress("old", default=backend("a")))
    assert target(result, "x", "/") == "a"
    [problem] = result.problems
    assert problem.ingress is young and problem.reason == RULE_CONFLICT and "default backend" in problem.message


def test_a_path_repeated_in_one_ingress_keeps_the_first() -> None:
    result = build(ingress("ing", rule("foo.com", path("/", "a"), path("/", "b"))))
    assert target(result, "foo.com", "/") == "a"
    assert "already defined in this ingress" in result.problems[0].message


# --- backends ---------------------------------------------------------------------------------------

def test_only_ready_endpoints_are_used() -> None:
    slices = endpoint_slice("svc", ["10.0.1.1", ("10.0.1.2", False), "10.0.1.3"], ("http", 8080))
    slices["endpoints"].append({"addresses": ["10.0.1.4"], "conditions": {}})  # unset means ready
    result = build(ingress("ing", rule(None, path("/", "svc"))), extra=(service("svc", ("http", 80)), slices))
    route = result.table.route("x", "/")
    assert route is not None
    assert [e.host for e in route.backend.endpoints] == ["10.0.1.1", "10.0.1.3", "10.0.1.4"]


def test_service_port_by_name_or_number_selects_the_slice_port() -> None:
    svc = service("svc", ("http", 80), ("admin", 81))
    slices = endpoint_slice("svc", ["10.0.1.1"], ("http", 8080), ("admin", 9090))
    result = build(ingress("ing", rule("a.com", path("/", "svc", 80)), rule("b.com", path("/", "svc", "admin"))),
                   extra=(svc, slices))
    a, b = result.table.route("a.com", "/"), result.table.route("b.com", "/")
    assert a is not None and a.backend.endpoints == (Endpoint("10.0.1.1", 8080),)
    assert b is not None and b.backend.endpoints == (Endpoint("10.0.1.1", 9090),)


def test_endpoints_are_merged_across_slices_without_repeats() -> None:
    result = build(ingress("ing", rule(None, path("/", "svc"))),
                   extra=(service("svc", ("", 80)),
                          endpoint_slice("svc", ["10.0.1.2", "10.0.1.1"], ("", 8080), name="s1"),
                          endpoint_slice("svc", ["10.0.1.1", "10.0.1.3"], ("", 8080), name="s2"),
                          endpoint_slice("svc", ["10.0.1.9"], ("other", 1), name="s3")))
    route = result.table.route("x", "/")
    assert route is not None
    assert [e.host for e in route.backend.endpoints] == ["10.0.1.1", "10.0.1.2", "10.0.1.3"]


def test_no_ready_endpoint_gives_an_empty_backend_with_a_reason() -> None:
    result = build(ingress("ing", rule(None, path("/", "svc"))),
                   extra=(service("svc", ("http", 80)), endpoint_slice("svc", [("10.0.1.1", False)], ("http", 80))))
    route = result.table.route("x", "/")
    assert route is not None and route.backend.endpoints == ()
    assert route.backend.unavailable == 'no ready endpoints for service "default/svc" port 80'
    assert result.problems == ()  # not a mistake in the Ingress: pods come and go


def test_missing_service_and_port_are_problems_but_others_route() -> None:
    result = build(ingress("ing", rule("foo.com", path("/gone", "missing"), path("/port", "a", 9999),
                                       path("/named", "a", "nope"), path("/ok", "b"))))
    gone, port, named = (result.table.route("foo.com", p) for p in ("/gone", "/port", "/named"))
    assert gone is not None and gone.backend.unavailable == 'service "default/missing" not found'
    assert port is not None and port.backend.unavailable == 'service "default/a" has no port 9999'
    assert named is not None and named.backend.unavailable == 'service "default/a" has no a port named "nope"'
    assert target(result, "foo.com", "/ok") == "b"
    assert [p.reason for p in result.problems] == [SERVICE_NOT_FOUND, PORT_NOT_FOUND, PORT_NOT_FOUND]


def test_external_name_service() -> None:
    result = build(ingress("ing", rule(None, path("/", "ext", 443))),
                   extra=(service("ext", ("https", 443), type_="ExternalName", external_name="example.org."),))
    route = result.table.route("x", "/")
    assert route is not None and route.backend.endpoints == (Endpoint("example.org", 443),)


def test_resource_backends_are_unsupported() -> None:
    item = {"path": "/", "pathType": "Prefix",
            "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "icons"}}}
    result = build(ingress("ing", rule(None, item)))
    route = result.table.route("x", "/")
    assert route is not None and route.backend.endpoints == () and "not supported" in route.backend.unavailable
    assert [p.reason for p in result.problems] == [UNSUPPORTED_BACKEND]


def test_rules_share_one_backend_per_service_port() -> None:
    result = build(ingress("one", rule("a.com", path("/", "a"))), ingress("two", rule("b.com", path("/", "a"))))
    a, b = result.table.route("a.com", "/"), result.table.route("b.com", "/")
    assert a is not None and b is not None and a.backend is b.backend


def test_rotation_is_round_robin() -> None:
    result = build(ingress("ing", rule(None, path("/", "svc"))),
                   extra=(service("svc", ("", 80)),
                          endpoint_slice("svc", ["10.0.0.1", "10.0.0.2", "10.0.0.3"], ("", 80))))
    route = result.table.route("x", "/")
    assert route is not None
    firsts = [route.backend.rotation()[0].host for _ in range(6)]
    assert firsts == ["10.0.0.1", "10.0.0.2", "10.0.0.3"] * 2
    assert sorted(e.host for e in route.backend.rotation()) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def test_table_endpoints() -> None:
    result = build(ingress("ing", rule("a.com", path("/", "a")), default=backend("b")))
    assert result.table.endpoints() == {Endpoint("10.0.0.1", 8080), Endpoint("10.0.0.2", 8080)}


# --- certificates -----------------------------------------------------------------------------------

def test_certificates_by_host_wildcard_and_default() -> None:
    secrets = (tls_secret("one", b"CERT1", b"KEY1"), tls_secret("star", b"CERT2", b"KEY2"),
               tls_secret("fallback", b"CERT3", b"KEY3"))
    result = build(ingress("ing", rule("a.com", path("/", "a")),
                           tls=[{"hosts": ["a.com"], "secretName": "one"},
                                {"hosts": ["*.b.com"], "secretName": "star"},
                                {"secretName": "fallback"}]), extra=secrets)
    table = result.table
    assert result.problems == ()
    assert (c := table.certificate("A.com")) is not None and c.chain_pem == b"CERT1" and c.key_pem == b"KEY1"
    assert (c := table.certificate("x.b.com")) is not None and c.secret == "default/star"
    assert (c := table.certificate("other.org")) is not None and c.secret == "default/fallback"
    assert (c := table.certificate(None)) is not None and c.secret == "default/fallback"


def test_no_certificate_means_the_gateway_default() -> None:
    result = build(ingress("ing", rule("a.com", path("/", "a"))))
    assert result.table.certificate("a.com") is None


def test_missing_or_incomplete_secret_is_a_problem() -> None:
    incomplete = tls_secret("half", b"CERT", b"")
    result = build(ingress("ing", rule("a.com", path("/", "a")),
                           tls=[{"hosts": ["a.com"], "secretName": "missing"},
                                {"hosts": ["b.com"], "secretName": "half"}]), extra=(incomplete,))
    assert result.table.certificate("a.com") is None and result.table.certificate("b.com") is None
    assert [p.reason for p in result.problems] == [SECRET_NOT_FOUND, INVALID_SECRET]
    assert target(result, "a.com", "/") == "a"  # routing is unaffected


def test_the_oldest_ingress_keeps_a_tls_host() -> None:
    secrets = (tls_secret("one", b"C1", b"K1"), tls_secret("two", b"C2", b"K2"))
    young = ingress("young", rule("a.com", path("/x", "b")), tls=[{"hosts": ["a.com"], "secretName": "two"}],
                    created="2024-05-01T00:00:00Z")
    old = ingress("old", rule("a.com", path("/", "a")), tls=[{"hosts": ["a.com"], "secretName": "one"}])
    result = build(young, old, extra=secrets)
    cert = result.table.certificate("a.com")
    assert cert is not None and cert.secret == "default/one"
    assert [(p.ingress["metadata"]["name"], p.reason) for p in result.problems] == [("young", RULE_CONFLICT)]


def test_references() -> None:
    ing = ingress("ing", rule("a.com", path("/", "a"), path("/b", "b")), default=backend("c"),
                  tls=[{"hosts": ["a.com"], "secretName": "cert"}], namespace="ns")
    services, secrets = references([ing])
    assert services == {"ns/a", "ns/b", "ns/c"}
    assert secrets == {"ns/cert"}
