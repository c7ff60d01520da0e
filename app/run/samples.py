"""A workspace's sample inputs: ``samples.json`` beside its pipeline files.

The file is a JSON list of ``{"file", "pipeline", "title", "input", "expect"?}`` (the same
list ``wfstudio demo`` runs). The studio uses it to fill the Run dialog with an input that
works the first time a pipeline is run, and to choose the file a first start opens: the
samples' order is the workspace's own tour. A missing or damaged file means no samples (the
studio works without them); entries that lack a pipeline name are skipped.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAMPLES_FILE = "samples.json"
log = logging.getLogger("wfstudio.app")


@dataclass(frozen=True)
class Sample:
    pipeline: str
    title: str
    input: Any
    file: str = ""  # the pipeline file, relative to the workspace ("" : any file)
    expect: str = "completed"


def load_samples(folder: Path) -> list[Sample]:
    """The samples of the workspace ``folder``, in file order; [] when it has none."""
    path = folder / SAMPLES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        log.warning("%s is not usable, no sample inputs: %s", path, exc)
        return []
    if not isinstance(data, list):
        log.warning("%s should be a JSON list of samples; no sample inputs", path)
        return []
    samples = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("pipeline"), str):
            continue
        samples.append(Sample(pipeline=entry["pipeline"], title=str(entry.get("title") or entry["pipeline"]),
                              input=entry.get("input", {}), file=str(entry.get("file") or ""),
                              expect=str(entry.get("expect") or "completed")))
    return samples


def samples_for(samples: list[Sample], pipeline: str, file: str = "") -> list[Sample]:
    """The samples of ``pipeline``, those that are expected to complete first.

    ``file`` (where the engine loaded the pipeline from, maybe a server's path) only has to
    agree on the file name: two files may define pipelines of the same name."""
    name = Path(file).name if file else ""
    mine = [s for s in samples
            if s.pipeline == pipeline and (not s.file or not name or Path(s.file).name == name)]
    return sorted(mine, key=lambda s: s.expect != "completed")  # stable: file order otherwise


def first_file(folder: Path) -> Path | None:
    """The file a first start opens: the first one the samples name, else the first YAML file."""
    for sample in load_samples(folder):
        path = folder / sample.file
        if sample.file and path.suffix in (".yaml", ".yml") and path.is_file():
            return path
    return next(iter(sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])), None)
