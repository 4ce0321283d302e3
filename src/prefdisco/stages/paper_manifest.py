"""Stage: results/paper/MANIFEST.md -- every paper artifact, the run and config it came from, and for those not
built, what is missing and the command that makes them."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..cli import json_option, setup_logging
from ..io import write_text

log = logging.getLogger(__name__)


def manifest(listing: dict, root: Path = Path(".")) -> str:
    run = listing["configured_run"]
    config_of = {r: c for c, r in listing["presets"].items()}
    lines = ["# Paper artifacts", "", f"Built by this invocation for run `{run}` "
             f"(config `{config_of.get(run, 'the --configfile given')}`), from result files only.", "",
             "| artifact | what | run | config | state |", "| --- | --- | --- | --- | --- |"]
    for path, what in {**listing["shared"], **listing["built"]}.items():
        owner = "-" if path in listing["shared"] else run
        state = "built" if (root / path).exists() else "missing"
        lines.append(f"| `{path}` | {what} | {owner} | {config_of.get(owner, '-')} | {state} |")
    lines += ["", "## Other presets", ""]
    for config, preset_run in listing["presets"].items():
        if preset_run == run:
            continue
        folder = root / "results" / preset_run / "paper"
        built = sorted(p.relative_to(root).as_posix() for p in folder.glob("*") if p.is_file()) if folder.exists() else []
        if built:
            lines.append(f"- `{config}` (run `{preset_run}`): on disk: " + ", ".join(f"`{b}`" for b in built))
        else:
            has = (root / "results" / preset_run / "experiments.csv").exists()
            missing = "its paper artifacts" if has else f"`results/{preset_run}/experiments.csv` and its units"
            lines.append(f"- `{config}` (run `{preset_run}`): missing {missing}; make them with "
                         f"`snakemake --cores all experiments paper --configfile {config}`")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listing", type=json_option, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    write_text(args.output, manifest(args.listing))


if __name__ == "__main__":
    main()
