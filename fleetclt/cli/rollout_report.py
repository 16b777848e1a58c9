"""A rollout's report on stdout, and its exit code: the same for a run followed live and one read from its journal."""
from __future__ import annotations

from ..rollout.engine import JOURNAL_FAILED, RolloutResult
from . import output
from .status import ExitStatus


def exit_code(result: RolloutResult) -> int:
    """0 when every host succeeded and the journal has it all, 130 when the run was interrupted, 2 otherwise."""
    if result.stop_reason.startswith("interrupted"):
        return ExitStatus.INTERRUPTED
    return ExitStatus.OK if result.ok and not journal_failed(result) else ExitStatus.SOME_FAILED


def journal_failed(result: RolloutResult) -> bool:
    """The run stopped because its journal could not be written (a full or read-only disk)."""
    return result.stop_reason.startswith(JOURNAL_FAILED)


def render(result: RolloutResult, fmt: str) -> None:
    report = result.to_dict()
    if fmt == "table":
        for name, row in report["hosts"].items():
            detail = output.to_json(row["result"], indent=False) if "result" in row else \
                (row.get("error") or {}).get("reason", "")
            print(f"{name:16} stage {row['stage']:<3} {row['status']:12} job {row['job_id'] or '-':<6} {detail}")
        print(f"{result.stop_reason} ({', '.join(f'{n} {s}' for s, n in report['summary'].items())})")
    elif fmt == "yaml":
        print(output.to_yaml(report), end="")
    elif fmt == "jsonl":
        for name, row in report["hosts"].items():
            print(output.to_json({"host": name, **row}, indent=False))
    else:
        print(output.to_json(report))
