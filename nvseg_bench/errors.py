"""User-facing errors: one paragraph that names the value and the fix.

Every error the wrapper raises on purpose is an `NvsegError`. The CLI prints `render()` and exits
with `exit_code`; it never shows a traceback unless `--debug` is given.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_PHASE_FAILED = 3  # also a full disk while writing the run's files (DiskFullError)
EXIT_SANITY_FAILED = 4
EXIT_SCHEMA_BUG = 3  # output.json failed its own schema: the run's result stands, the exit code says there is a bug
EXIT_INTERNAL = 1  # a bug in this tool: cli.py says so and points at --debug
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: the shell's 128 + SIGINT


@dataclass
class NvsegError(Exception):
    """A failure the user can act on.

    headline: what failed and what it means for the run ("the dataset is not usable (nothing was run)").
    evidence: lines with the user's own names and values.
    fix: lines that say what to do.
    """

    headline: str
    evidence: list[str] = field(default_factory=list)
    fix: list[str] = field(default_factory=list)
    exit_code: int = EXIT_BAD_INPUT

    def __post_init__(self) -> None:
        super().__init__(self.headline)

    def __str__(self) -> str:
        return self.render(prog="")

    def render(self, prog: str = "nvseg-finetune") -> str:
        first = f"{prog}: {self.headline}" if prog else self.headline
        return "\n".join([first, *(f"  {line}" for line in self.evidence + self.fix)])


class DataContractError(NvsegError):
    """The dataset or datalist breaks the data contract; nothing was run."""


class MappingError(NvsegError):
    """A label mapping the model cannot learn, or that does not parse."""


class ArgumentError(NvsegError):
    """A command-line value that does not parse or contradicts another."""


class DiskFullError(NvsegError):
    """The disk (or quota) filled while a file was written: the work stopped there, exit 3."""

    @classmethod
    def writing(cls, path: Path) -> "DiskFullError":
        return cls(f"the disk holding {path.parent} is full: {path.name} could not be written.",
                   evidence=[f"Writing {path} failed with 'No space left on device' (or the disk quota)."],
                   fix=[f"Free space on the disk of {path.parent} (or choose another folder) and run the command "
                        "again."],
                   exit_code=EXIT_PHASE_FAILED)
