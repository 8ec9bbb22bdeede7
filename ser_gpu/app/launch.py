"""``python -m ser_gpu.app``: serve the web app for a checkpoint, or an ensemble of several (``streamlit run`` on
:mod:`ser_gpu.app.page`)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from ..errors import CheckpointError, ParameterError

__all__ = ["CHECKPOINT_ENV", "DEVICE_ENV", "PAGE", "build_parser", "checkpoints_from_env", "streamlit_command", "main"]

#: Environment variables through which the launcher hands its settings to the page. The launcher writes
#: the checkpoints as a JSON list of paths; a plain path (set by hand) is read as one checkpoint.
CHECKPOINT_ENV = "SER_GPU_APP_CHECKPOINT"
DEVICE_ENV = "SER_GPU_APP_DEVICE"
#: The Streamlit script.
PAGE = Path(__file__).with_name("page.py")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ser_gpu.app", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, nargs="+", metavar="CHECKPOINT",
                   help="best.pt written by python -m ser_gpu.train; several (e.g. the members of a crossval "
                        "--ensemble fold): their averaged softmax, as predict --checkpoint A B C")
    p.add_argument("--device", default="auto", help="auto (default: CUDA when present), cpu or cuda[:N]")
    p.add_argument("--port", type=int, default=8501, help="port to serve on (default: %(default)s)")
    p.add_argument("--address", default="127.0.0.1",
                   help="address to bind (default: %(default)s, this machine only; 0.0.0.0 for every interface)")
    p.add_argument("--open-browser", action="store_true", help="open the page in the default browser")
    return p


def checkpoints_from_env(value: str) -> List[str]:
    """The checkpoint paths in :data:`CHECKPOINT_ENV`'s ``value``: a JSON list of paths (what the launcher
    writes), else the value itself as one path; ``[]`` for an empty value."""
    if not value:
        return []
    if value.startswith("["):
        try:
            paths = json.loads(value)
        except ValueError:
            paths = None
        if isinstance(paths, list) and all(isinstance(p, str) and p for p in paths):
            return paths
    return [value]


def streamlit_command(*, port: int, address: str, open_browser: bool = False) -> List[str]:
    """The ``streamlit run`` command line: no usage statistics, no file watcher, no e-mail prompt."""
    return [
        sys.executable, "-m", "streamlit", "run", str(PAGE),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "false" if open_browser else "true",
        "--server.showEmailPrompt", "false",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
    ]


def _check_address(address: str, port: int) -> None:
    """That the server can listen on ``address``: it resolves to a local address (a name that does not resolve,
    or another machine's address, ended in a traceback from Streamlit's bind). The port itself is Streamlit's to
    judge (a port in use: its own one-line message)."""
    import socket

    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ParameterError(f"--address {address!r} does not resolve: {exc}") from None
    error = None
    for family, kind, proto, _, sockaddr in infos:  # localhost may resolve to ::1 where IPv6 is off: any will do
        try:
            with socket.socket(family, kind, proto) as sock:
                sock.bind((sockaddr[0], 0))  # any free port: only whether this machine holds the address
            return
        except OSError as exc:
            error = exc
    raise ParameterError(f"--address {address!r} is not an address of this machine: "
                         f"{error.strerror or error}") from None


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if importlib.util.find_spec("streamlit") is None:
        print("error: the app needs Streamlit: pip install 'ser_gpu[app]'", file=sys.stderr)
        return 2
    try:
        from ..checkpoint import load_models
        from .._cli import resolve_device
        from ..data import EMOTIONS

        if not 1 <= args.port <= 65535:
            raise ParameterError(f"--port must be in 1..65535, got {args.port}")
        _check_address(args.address, args.port)
        resolve_device(args.device)
        # a clear one-line error now rather than on the page, with the page's own checks (its label set)
        load_models(args.checkpoint, device="cpu", labels=list(EMOTIONS))
    except (ParameterError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    env[CHECKPOINT_ENV] = json.dumps([str(Path(c).resolve()) for c in args.checkpoint])
    env[DEVICE_ENV] = args.device
    cmd = streamlit_command(port=args.port, address=args.address, open_browser=args.open_browser)
    print(f"serving {' + '.join(args.checkpoint)} at http://{args.address}:{args.port} (Ctrl+C stops)", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    if os.name == "posix":
        os.execve(sys.executable, cmd, env)  # the server takes this process's id: signals reach it directly
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 130
