"""The run's config as Snakemake resolved it (schema defaults filled in), written as YAML for the report.

CLI::

    python -m prefdisco.stages.run_config --config JSON --output results/<run>/config.yaml
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import yaml

from ..cli import json_option, setup_logging
from ..io import write_text

log = logging.getLogger(__name__)


def config_text(config: dict) -> str:
    """The config as YAML, keys in the order the run gave them."""
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=json_option, required=True, help="the resolved config (JSON)")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    setup_logging()
    write_text(args.output, config_text(args.config))
    log.info("wrote the run's config to %s", args.output)


if __name__ == "__main__":
    main()
