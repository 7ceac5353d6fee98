"""Who is calling (``authn``) and whether they may (``authz``).

``authn.authn_middleware`` runs first on every request and stores a ``UserInfo`` on
``request["user"]``; handlers then build ``authz.Attributes`` and ask an ``authz.Authorizer``.
"""
