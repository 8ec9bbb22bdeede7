"""``python -m ser_gpu``: the commands at a glance; ``python -m ser_gpu COMMAND [ARGS]`` runs one.

``python -m ser_gpu train --epochs 20`` is ``python -m ser_gpu.train --epochs 20``: the same module's
``main``, the same options, help (``python -m ser_gpu COMMAND --help``) and exit status.
"""

from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

from ._cli import run_main

# command -> (module whose main() runs it, what it does)
COMMANDS = {
    "train": ("ser_gpu.train", "train the classifier (built-in synthetic corpus, or --data-dir)"),
    "crossval": ("ser_gpu.crossval", "speaker-independent cross-validation over actor folds"),
    "evaluate": ("ser_gpu.evaluate", "score checkpoints on a labelled corpus (--snr: under noise)"),
    "predict": ("ser_gpu.predict", "the emotion of audio or video files"),
    "features": ("ser_gpu.features", "the 68 feature rows of audio files, one .npy each"),
    "video": ("ser_gpu.video", "the audio track of every video in a folder, as wav"),
    "app": ("ser_gpu.app.launch", "the Streamlit web app (needs the [app] extra)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: python -m ser_gpu COMMAND [ARGS]   (or python -m ser_gpu.COMMAND [ARGS])", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "python -m ser_gpu COMMAND --help shows a command's options."]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Exit status: the command's own; 0 for the overview (no command, -h, --help); 2 for an unknown command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0
    if args[0] not in COMMANDS:
        print(f"error: unknown command {args[0]!r}; one of: {', '.join(COMMANDS)} (python -m ser_gpu --help)",
              file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[args[0]][0])
    return module.main(args[1:])


if __name__ == "__main__":
    sys.exit(run_main(main))
