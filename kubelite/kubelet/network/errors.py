"""The errors of the pod network, one family so that the runtime can catch `NetworkError` and report its
message (it becomes the sandbox's failure reason, as "failed to setup network for sandbox ..." in containerd)."""

from __future__ import annotations


class NetworkError(Exception):
    """The pod network could not do what was asked."""


class NetworkNotReady(NetworkError):
    """No usable CNI network configuration (yet): the node is not ready for pods that need a network."""


class ConfigError(NetworkError):
    """A CNI network configuration file that cannot be used."""


class CniError(NetworkError):
    """Running a CNI plugin failed on the runtime's side: binary not found, no answer, unreadable answer."""


class CniTimeout(CniError):
    """A CNI plugin did not answer within the runtime's timeout and was killed."""


class CniPluginError(CniError):
    """A CNI plugin answered with an error (CNI spec 1.0 section 2, "Errors": ``{code, msg, details}``).

    The message reads as libcni's: ``plugin type="bridge" name="kubelite" failed (add): <msg>: <details>``.
    """

    def __init__(self, *, plugin: str, network: str, command: str, code: int, msg: str, details: str = "") -> None:
        self.plugin = plugin
        self.network = network
        self.command = command
        self.code = code
        self.msg = msg
        self.details = details
        text = f'plugin type="{plugin}" name="{network}" failed ({command.lower()}): {msg}'
        if details:
            text += f": {details}"
        if code:
            text += f" (CNI error code {code})"
        super().__init__(text)
