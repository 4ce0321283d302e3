"""Our IPO (the paper's summed-margin form) is not TRL's per-token IPO: the library README and the run summary
say so, so that nobody compares the two unknowingly."""

from __future__ import annotations

from pathlib import Path

import prefdisco
from prefdisco.stages.summary import write_summary


def test_library_readme_says_ipo_is_not_trls():
    readme = (Path(prefdisco.__file__).parent / "objective_library" / "README.md").read_text()
    assert "summed* log-ratio margin" in readme and "TRL >= 0.9" in readme and "per token" in readme


def test_summary_notes_the_ipo_difference_when_ipo_is_a_baseline(records, reference, tmp_path):
    write_summary(records, tmp_path / "s.csv", tmp_path / "s.md", reference=reference)
    note = [line for line in (tmp_path / "s.md").read_text().splitlines() if line.startswith("Baseline note")]
    assert note == ["Baseline note: IPO here regresses the summed log-ratio margin (the paper's form); TRL >= 0.9's "
                    "IPO normalises it per token, so the two are different objectives at the same beta."]

    without_ipo = [r for r in records if r.get("library_name") != "ipo"]
    write_summary(without_ipo, tmp_path / "t.csv", tmp_path / "t.md", reference=reference)
    assert "Baseline note" not in (tmp_path / "t.md").read_text()
