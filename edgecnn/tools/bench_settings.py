"""What a benchmark measures: :class:`Settings` (batch sizes, threads, budget, engines,
interpolation), the parsers of their command-line lists, and :class:`BenchError` for settings
that cannot run."""

from __future__ import annotations

from dataclasses import dataclass

from edgecnn.errors import EdgecnnError
from edgecnn.runtime.engines.base import PROVIDERS
from edgecnn.spec import INTERPOLATIONS

__all__ = ["BenchError", "Settings", "parse_list", "parse_providers", "thread_label"]


class BenchError(EdgecnnError):
    """A benchmark that cannot run as asked (bad settings, no images, rejected batch size)."""


@dataclass(frozen=True)
class Settings:
    """What to measure. ``threads`` entries: an int, or None for onnxruntime's default (what
    ``edgecnn classify`` uses). Without ``iterations`` or ``duration``, 2 s per configuration.

    ``interpolation``: the resize every model's preprocessing uses in this run instead of the
    one its metadata records (None: each model's own); the report names both."""

    batch_sizes: tuple[int, ...] = (1, 8, 32)
    threads: tuple[int | None, ...] = (1, None)
    warmup: int = 3
    iterations: int | None = None
    duration: float | None = None
    provider: str = "auto"
    rounds: int = 3
    interpolation: str | None = None

    def __post_init__(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise BenchError(f"batch sizes must be >= 1, not {list(self.batch_sizes)}")
        if not self.threads or any(t is not None and t < 1 for t in self.threads):
            raise BenchError(f"thread counts must be >= 1, not {list(self.threads)}")
        if self.warmup < 0:
            raise BenchError(f"`warmup` must be >= 0, not {self.warmup}")
        if self.iterations is not None and self.duration is not None:
            raise BenchError("give `iterations` or `duration`, not both")
        if self.iterations is not None and self.iterations < 1:
            raise BenchError(f"`iterations` must be >= 1, not {self.iterations}")
        if self.duration is not None and not self.duration > 0:
            raise BenchError(
                f"`duration` must be a positive number of seconds, not {self.duration}"
            )
        if self.rounds < 1:
            raise BenchError("rounds must be >= 1")
        if self.interpolation is not None and self.interpolation not in INTERPOLATIONS:
            raise BenchError(
                f"`interpolation` {self.interpolation!r} is not one of {', '.join(INTERPOLATIONS)}"
            )
        if self.provider.strip().lower() != "all":
            parse_providers(self.provider)

    @property
    def providers(self) -> tuple[str, ...]:
        """The engines to measure side by side (see :func:`parse_providers`)."""
        return parse_providers(self.provider)

    @property
    def budget(self) -> tuple[str, float]:
        """("iterations", n) or ("duration", seconds) per model and configuration."""
        if self.iterations is not None:
            return "iterations", float(self.iterations)
        return "duration", self.duration if self.duration is not None else 2.0


def parse_providers(text: str) -> tuple[str, ...]:
    """``auto``, one engine, a comma-separated list, or ``all``: ``auto`` plus every engine
    that loads here (those that do not are left out; ``edgecnn doctor`` says why)."""
    if text.strip().lower() == "all":
        from edgecnn.runtime.engines.registry import engine_statuses

        return ("auto", *[s.engine for s in engine_statuses() if s.loads])
    names = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    wrong = [name for name in names if name not in PROVIDERS]
    if not names or wrong:
        raise BenchError(
            f"provider {text!r}: use {', '.join(PROVIDERS)}, a comma-separated list, or all"
        )
    return names


def thread_label(threads: int | None) -> str:
    """``"auto"`` for onnxruntime's default, else the number."""
    return "auto" if threads is None else str(threads)


def parse_list(text: str, *, allow_auto: bool = False) -> tuple[int | None, ...]:
    """``"1,8,32"`` -> (1, 8, 32); with ``allow_auto`` the word ``auto`` gives None."""
    values: list[int | None] = []
    for part in text.split(","):
        part = part.strip().lower()
        if allow_auto and part == "auto":
            values.append(None)
            continue
        try:
            values.append(int(part))
        except ValueError:
            extra = " or 'auto'" if allow_auto else ""
            raise BenchError(f"{text!r}: {part!r} is not a whole number{extra}") from None
    return tuple(dict.fromkeys(values))
