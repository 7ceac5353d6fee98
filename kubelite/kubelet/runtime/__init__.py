"""kubelite's container runtime: the gRPC `RuntimeService`/`ImageService` of kubelite/proto/runtime.proto.

Entry point: `kubelite.kubelet.runtime.server.serve_runtime`. This package's ``__init__`` stays empty on
purpose: every container's log shim runs ``python -m kubelite.kubelet.runtime.shim`` and must not pay for
importing grpc.

Modules, one job each:
- ``server``: serve the two services on a unix socket until told to stop.
- ``service``: the gRPC servicers, translating messages (``convert``) and errors (``errors``) to and from
  `manager.Runtime` and the image store.
- ``manager``: the runtime itself: sandboxes and containers, their records, create/start/stop/remove.
- ``sandbox``: a pod sandbox's persistent IPC/UTS namespaces (its netns comes from the pod network),
  /dev/shm and the files every container of the pod shares (/etc/hosts, /etc/resolv.conf, /etc/hostname).
- ``podfiles``: the text of those files (pure).
- ``bundle``: the OCI runtime spec of a container (pure), with command and user resolution.
- ``backends``: how containers run: `RuncBackend` (runc + overlayfs + cgroups) and `ProcessBackend` (plain
  host processes, no isolation).
- ``runc``: an asyncio wrapper over the runc command line.
- ``rootfs``: the mounts the runtime makes (overlayfs root filesystems, pods' /dev/shm tmpfs).
- ``cgroups``: where a container's cgroups are and what they say (usage, OOM kills).
- ``shim``: the long-lived per-container process that owns the container's stdio, writes its log and
  records how it exited, so that containers outlive the runtime.
- ``crilog``: the CRI log format with rotation (used by the shim).
- ``state``: records of sandboxes and containers persisted on disk.
- ``streams``: exec (pipes or a pty) and port-forward (a socket opened inside the pod's netns).
- ``deps``: the interfaces of the image store and the pod network the runtime calls.
"""
