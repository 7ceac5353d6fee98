"""``kubelite image import|ls|rm|pull``: the node's image store, used directly (as ``k3s ctr images`` is).

These commands open the store of the agent whose data directory is ``--data-dir`` (default as for
``kubelite server``); the agent keeps its files in ``<data-dir>/agent`` (`agent_paths`). They may run while
the agent runs: the store's index and content are safe for several processes (see
kubelite/kubelet/images/store.py). ``pull`` and ``import`` show a progress bar on stderr when it is a
terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from kubelite.apiserver.kubeconfig_writer import default_data_dir
from kubelite.cli.tabwriter import TabWriter
from kubelite.kubelet.images import ImageError, ImageRecord, ImageStore, PullProgress, RegistryAuth
from kubelite.kubelet.images.build import BusyboxMissing, busybox_image
from kubelite.kubelet.paths import AgentPaths

_BYTE_STATUSES = {"Pulling fs layer", "Resuming", "Downloading", "Download complete", "Already exists",
                  "Pull complete"}
_REDRAW_INTERVAL = 0.1


def agent_paths(data_dir: str | None) -> AgentPaths:
    """The node agent's folders for a kubelite data directory."""
    return AgentPaths(Path(os.path.abspath(data_dir or default_data_dir())) / "agent")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=None, help="kubelite's data directory (default: /var/lib/kubelite "
                        "as root, ~/.local/share/kubelite otherwise)")
    image = sub.add_parser("image", help="manage the node's container images (import, ls, rm, pull)")
    image.set_defaults(func=lambda _args: _usage(image))
    verbs = image.add_subparsers(dest="image_command", metavar="COMMAND")

    imp = verbs.add_parser("import", parents=[common], help="import OCI-layout or docker save tarballs")
    imp.add_argument("files", nargs="+", metavar="FILE", help="a tarball (.tar, .tar.gz, .tar.zst)")
    imp.set_defaults(func=_import)

    ls = verbs.add_parser("ls", aliases=["list"], parents=[common], help="list images")
    ls.add_argument("-q", "--quiet", action="store_true", help="only image IDs")
    ls.add_argument("--digests", action="store_true", help="show repository digests")
    ls.add_argument("--no-trunc", action="store_true", help="show whole image IDs")
    ls.set_defaults(func=_list)

    rm = verbs.add_parser("rm", aliases=["remove"], parents=[common], help="remove images (by name or ID)")
    rm.add_argument("refs", nargs="+", metavar="IMAGE")
    rm.set_defaults(func=_remove)

    pull = verbs.add_parser("pull", parents=[common], help="pull an image from a registry")
    pull.add_argument("ref", metavar="IMAGE", help="e.g. busybox, registry.example.com/app:1.0, name@sha256:...")
    pull.add_argument("--creds", default=None, metavar="USER[:PASSWORD]", help="registry credentials (the "
                      "password is asked for when left out)")
    pull.add_argument("--platform", default=None, help="os/arch[/variant] to pull (default: this machine's)")
    pull.set_defaults(func=_pull)

    bb = verbs.add_parser("busybox", parents=[common], help="build a busybox image from this machine's "
                          "/bin/busybox (Debian busybox-static) and import it: pods can run without a registry")
    bb.add_argument("--tag", default="docker.io/library/busybox:latest", metavar="NAME",
                    help="the name to give it (default: busybox, i.e. docker.io/library/busybox:latest)")
    bb.set_defaults(func=_busybox)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _store(args: argparse.Namespace, *, platform: str | None = None) -> ImageStore:
    return ImageStore(agent_paths(args.data_dir).images, platform=platform)


def _import(args: argparse.Namespace) -> int:
    store = _store(args)
    status = 0
    for name in args.files:
        path = Path(name)
        bar = ProgressBar(path.name)
        try:
            records = asyncio.run(store.import_tarball(path, progress=bar))
        except (ImageError, OSError) as e:
            bar.finish()
            print(f"kubelite: cannot import {path}: {e}", file=sys.stderr)
            status = 1
            continue
        bar.finish()
        for record in records:
            for name_ in record.repo_tags or [record.id]:
                print(f"Loaded image: {name_}")
    return status


def _busybox(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="kubelite-busybox-") as tmp:
        try:
            tarball = busybox_image(Path(tmp) / "busybox.tar", name=args.tag)
        except (BusyboxMissing, OSError, subprocess.CalledProcessError) as e:
            print(f"kubelite: {e}", file=sys.stderr)
            return 1
        args.files = [str(tarball)]
        return _import(args)


def _list(args: argparse.Namespace) -> int:
    records = _store(args).list()
    if args.quiet:
        for record in records:
            print(record.id if args.no_trunc else _short_id(record.id))
        return 0
    header = ["IMAGE", "TAG", *(["DIGEST"] if args.digests else []), "IMAGE ID", "SIZE"]
    lines = ["\t".join(header)]
    for record in records:
        for repository, tag in _names(record):
            digest = next((d.split("@", 1)[1] for d in record.repo_digests if d.split("@", 1)[0] == repository),
                          "<none>")
            image_id = record.id if args.no_trunc else _short_id(record.id)
            shown_digest = digest if args.no_trunc else _short_id(digest) if digest != "<none>" else digest
            row = [repository, tag, *([shown_digest] if args.digests else []),
                   image_id, human_size(record.size)]
            lines.append("\t".join(row))
    sys.stdout.write(TabWriter(minwidth=20, padding=3).format("\n".join(lines) + "\n"))
    return 0


def _remove(args: argparse.Namespace) -> int:
    store = _store(args)
    status = 0
    for ref in args.refs:
        record = store.resolve(ref)
        try:
            asyncio.run(store.remove(ref))
        except ImageError as e:
            print(f"kubelite: {e}", file=sys.stderr)
            status = 1
            continue
        # As docker rmi: a tag removed from an image that keeps other names is only untagged.
        if record is not None and store.resolve(record.id) is None:
            print(f"Deleted: {record.id}")
        else:
            print(f"Untagged: {ref}")
    return status


def _pull(args: argparse.Namespace) -> int:
    auth = None
    if args.creds is not None:
        username, sep, password = args.creds.partition(":")
        if not sep:
            password = getpass.getpass(f"Password for {username}: ")
        auth = RegistryAuth(username=username, password=password)
    try:
        store = _store(args, platform=args.platform)
    except ValueError as e:
        print(f"kubelite: {e}", file=sys.stderr)
        return 2
    bar = ProgressBar(args.ref)
    try:
        record = asyncio.run(store.pull(args.ref, auth=auth, progress=bar))
    except ImageError as e:
        bar.finish()
        print(f"kubelite: cannot pull {args.ref}: {e}", file=sys.stderr)
        return 1
    bar.finish()
    print(f"Image is up to date for {record.id}")
    return 0


def _names(record: ImageRecord) -> list[tuple[str, str]]:
    names = [(tag.rsplit(":", 1)[0], tag.rsplit(":", 1)[1]) for tag in record.repo_tags]
    if not names:
        names = [(d.split("@", 1)[0], "<none>") for d in record.repo_digests[:1]] or [("<none>", "<none>")]
    return names


def _short_id(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:13]


def human_size(size: float) -> str:
    """Decimal units with four significant digits, as Docker's units.HumanSize (what crictl prints)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{units[i]}"


class ProgressBar:
    """A one-line text progress bar for pulls and imports, redrawn in place on a terminal; silent otherwise
    (scripts get the final lines on stdout only)."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self._layers: dict[str, tuple[int, int]] = {}
        self._reading: tuple[int, int] | None = None
        self._status = ""
        self._drawn = 0.0
        self._shown = False

    def __call__(self, step: PullProgress) -> None:
        if step.status in _BYTE_STATUSES:
            self._layers[step.layer] = (step.current, step.total)
        elif step.status == "Reading":
            self._reading = (step.current, step.total)
        self._status = step.status
        now = time.monotonic()
        if self.enabled and (now - self._drawn >= _REDRAW_INTERVAL or step.status == "Done"):
            self._drawn = now
            self._draw()

    def line(self, width: int) -> str:
        """The bar as text, ``width`` columns at most."""
        if self._layers:
            done = sum(c for c, _ in self._layers.values())
            total = sum(t for _, t in self._layers.values())
        elif self._reading is not None:
            done, total = self._reading
        else:
            done, total = 0, 0
        fraction = min(1.0, done / total) if total else 0.0
        numbers = f"{human_size(done)}/{human_size(total)}" if total else ""
        text = f" {fraction * 100:3.0f}% {numbers} {self._status}"
        label = self.label if len(self.label) <= 40 else "…" + self.label[-39:]
        room = max(10, min(40, width - len(label) - len(text) - 4))
        filled = int(room * fraction)
        return f"{label} [{'#' * filled}{'-' * (room - filled)}]{text}"[:width]

    def _draw(self) -> None:
        width = shutil.get_terminal_size((100, 20)).columns - 1
        self.stream.write("\r" + self.line(width).ljust(width))
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()
