"""What the three command lines (wa-train, wa-sweep, wa-activations) share: one help style,
one-line usage errors (exit code 2), `--version`, closest-match suggestions, the GPU check and
the check that an output folder can be written.

    p = cli.Parser(prog="wa-train", description="...")
    p.add_argument("--epochs", type=int, default=15, help="epochs to train")   # [default: 15]
    problem = cli.unwritable_folder("runs/x")      # None, or what stops a write there
"""
import argparse
import difflib
import errno
import os
import re
import sys

from minigrad import backend

GPU_INSTALL = 'pip install -e ".[gpu]"'


class UsageError(Exception):
    """A usage error raised instead of exiting (Parser(raise_errors=True): wa-sweep checks every
    cell's wa-train flags before the first run and reports the problem itself)."""


class HelpFormatter(argparse.HelpFormatter):
    """Every option's default as " [default: X]" at the end of its help, unless the help already
    says it; flags that are off unless given show none."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "[default" in text or action.default is None or action.default is False \
                or action.default is argparse.SUPPRESS:
            return text
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            return text
        default = action.default
        if isinstance(default, (list, tuple)):
            default = ",".join(map(str, default))
        return f"{text} [default: {str(default).replace('%', '%%')}]".strip()


class Parser(argparse.ArgumentParser):
    """argparse with one help style, a --version, and errors in one line:
    "wa-train: error: <what is wrong> (see wa-train --help)", exit code 2, no usage block."""

    def __init__(self, *args, raise_errors=False, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)
        self.raise_errors = raise_errors
        from . import __version__
        self.add_argument("--version", action="version", version=f"%(prog)s {__version__}")

    def error(self, message):
        message = " ".join(str(message).split())
        if self.raise_errors:
            raise UsageError(message)
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        sys.exit(2)


def did_you_mean(word, choices):
    """" (did you mean 'gn+wa'?)" for the closest of `choices`, or ""."""
    close = difflib.get_close_matches(str(word).lower(), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def count(n, word):
    """count(1, "epoch") == "1 epoch", count(3, "epoch") == "3 epochs"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def norm_spec_error(flag, spec, error):
    """The one-line message for a bad norm spec: with a closest match when there is one (and
    then without the list of every valid spec, which --help gives)."""
    from .norms import VALID_SPECS
    hint = did_you_mean(spec, VALID_SPECS)
    if hint:
        return f"{flag} {spec}{hint}: {str(error).split('. Valid specs:')[0]}"
    return f"{flag}: {error}"


def model_name_error(flag, name):
    """The one-line message for an unknown model name, with a closest match when there is one;
    None for a known name."""
    from .models import names
    if name in names():
        return None
    return (f"unknown {flag} {name!r}{did_you_mean(name, names())}; choose one of "
            f"{', '.join(natural_order(names()))}")


def natural_order(names):
    """resnet18 before resnet101: names sorted by their letters, then their number."""
    def key(name):
        m = re.match(r"(\D*)(\d*)(.*)", name)
        return m.group(1), int(m.group(2) or 0), m.group(3)
    return sorted(names, key=key)


def gpu_problem():
    """None when --device cuda can run here, else which of the two causes applies and its fix."""
    if backend.cupy is None:
        return f"CuPy is not installed ({GPU_INSTALL}); or use --device cpu"
    if not backend.is_available("cuda"):
        return ("CuPy finds no CUDA device (check the NVIDIA driver with nvidia-smi); "
                "or use --device cpu")
    return None


def check_device(device, error):
    """Call `error` (the parser's) with the reason when --device cannot run here."""
    problem = gpu_problem() if device == "cuda" else None
    if problem:
        error(f"--device cuda: {problem}")


def unwritable_folder(path, flag="--out"):
    """None when files can be written in the folder `path` (made, with its parents, if it does
    not exist), else a one-line reason with the fix.  A folder made here that turns out
    unwritable is not left behind."""
    path = os.fspath(path)
    made = []
    try:
        # Every existing part of the path must be a folder (a file in the way is the usual slip).
        head = os.path.abspath(path)
        while not os.path.exists(head):
            made.append(head)
            head = os.path.dirname(head)
        if not os.path.isdir(head):
            return f"{flag} {path}: {head} is a file, not a folder; choose another {flag}"
        for folder in reversed(made):
            os.mkdir(folder)
        probe = os.path.join(path, f".wa-write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
        return None
    except OSError as e:
        why = e.strerror or str(e)
        if e.errno == errno.EROFS:
            why = "read-only file system"
        for folder in made:                   # innermost first
            try:
                os.rmdir(folder)
            except OSError:
                pass
        return f"{flag} {path}: cannot write there ({why}); choose another {flag}"


def remove_if_empty(path):
    """Remove the folder `path` if it is empty (a run that stopped at a usage error)."""
    try:
        os.rmdir(path)
    except OSError:
        pass
