"""How much of everything one run does: the flags, and the run counts they imply."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from bench.programs import PROGRAMS

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Counts:
    warmup: int
    runs: int


@dataclass(frozen=True)
class Plan:
    languages: list[str]
    quick: bool
    skip_peers: bool
    bare: Counts
    engine: Counts
    cold: Counts
    warm: Counts
    stream: Counts
    peers: Counts
    window: float  # throughput window, seconds
    window_warmup: float
    concurrency: int
    pool_size: int
    # Pause between concurrency-1 calls: the previous run's teardown and the
    # pool's refill (engine work done off the request path) finish in it, as
    # they do for a caller with any think time. Back-to-back load is what the
    # throughput figure measures.
    gap: float
    output: Path


def _languages(text: str) -> list[str]:
    names = [name.strip() for name in text.replace(" ", ",").split(",") if name.strip()]
    unknown = [name for name in names if name not in PROGRAMS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(PROGRAMS)}")
    return names


def parse(argv: list[str] | None) -> Plan:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="CodeBeaker against the bare interpreter, the raw engine and peers.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="few runs, 5 s throughput: a smoke run"
    )
    parser.add_argument(
        "--languages",
        type=_languages,
        default=list(PROGRAMS),
        help=f"comma-separated subset of {','.join(PROGRAMS)}",
    )
    parser.add_argument(
        "--skip-peers", action="store_true", help="leave out epicbox and llm-sandbox"
    )
    parser.add_argument("--throughput-seconds", type=float, default=None)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pool-size", type=int, default=4, help="warm server's --pool-size")
    parser.add_argument(
        "--gap", type=float, default=0.3, help="seconds between concurrency-1 calls"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.json")
    args = parser.parse_args(argv)
    quick: bool = args.quick
    window = args.throughput_seconds or (5.0 if quick else 30.0)

    def counts(full: tuple[int, int], smoke: tuple[int, int]) -> Counts:
        return Counts(*(smoke if quick else full))

    return Plan(
        languages=args.languages,
        quick=quick,
        skip_peers=args.skip_peers,
        bare=counts((5, 60), (2, 10)),
        engine=counts((3, 30), (1, 5)),
        cold=counts((3, 30), (1, 5)),
        warm=counts((5, 60), (2, 10)),
        stream=counts((3, 40), (1, 10)),
        peers=counts((3, 30), (1, 3)),
        window=window,
        window_warmup=1.0 if quick else 3.0,
        concurrency=args.concurrency,
        pool_size=args.pool_size,
        gap=args.gap,
        output=args.output,
    )
