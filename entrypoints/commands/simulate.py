"""``connector simulate``: the built-in workload as change-event JSONL on stdout."""

from __future__ import annotations

import sys

import click

from adapters.simulator import WorkloadSpec, write_jsonl
from entrypoints.cli import cli, handle_errors


@cli.command("simulate")
@click.option(
    "--count", type=click.IntRange(min=0), default=1000, show_default=True, help="Events to write; 0 = endless."
)
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same events.")
@click.option("--rate", type=click.FloatRange(min=0), default=0.0, help="Events per second; 0 = as fast as possible.")
@click.option("--documents", type=click.IntRange(min=1), default=1000, show_default=True, help="Distinct documents.")
@handle_errors
def simulate_command(count: int, seed: int, rate: float, documents: int) -> None:
    """Write realistic inventory and transaction changes on warehouse.* as change-event JSONL.

    Some documents are unversioned and some invalid; each carries a per-document seq_no.

    \b
    Example:
      connector simulate --count 20000 --seed 7 > events.jsonl
    """
    spec = WorkloadSpec(seed=seed, count=count or None, documents=documents)
    try:
        write_jsonl(spec, sys.stdout.buffer, rate=rate)
    except BrokenPipeError:  # `connector simulate | head` is fine
        sys.stderr.close()
