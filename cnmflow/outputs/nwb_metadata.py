"""The ``nwb_metadata`` file: what only the experimenter knows (subject, session, device, indicator).

NWB and DANDI want facts no movie holds. Users give them in a small YAML or JSON file::

    subject:  {subject_id: m12, species: Mus musculus, sex: F, age: P90D}
    session:  {session_id: day1, session_start_time: 2024-05-02T10:31:00+02:00,
               experimenter: [Doe, Jane], lab: Doe lab, institution: Some University}
    device:   {name: nVista3, manufacturer: Inscopix, description: head-mounted miniscope}
    imaging_plane: {indicator: GCaMP6f, location: CA1, excitation_lambda: 455, emission_lambda: 510}

Every key is optional; what is missing gets a placeholder that `placeholders` lists, so a
file is always written and the user sees what to fill in. ``session_start_time`` is used
only where the movie has no start time of its own (tif/avi); a list gives one per movie, in
the order the movies were given. A naive time means UTC, as everywhere in cnmflow.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from cnmflow.errors import InputError

#: Allowed keys per section, and the type of their values.
SECTIONS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "subject": {"subject_id": str, "species": str, "sex": str, "age": str, "date_of_birth": (str, datetime, date),
                "description": str, "genotype": str, "strain": str, "weight": str},
    "session": {"session_id": str, "session_description": str, "session_start_time": (str, datetime, list),
                "experimenter": (str, list), "lab": str, "institution": str, "experiment_description": str,
                "keywords": (str, list)},
    "device": {"name": str, "description": str, "manufacturer": str},
    "imaging_plane": {"indicator": str, "location": str, "description": str,
                      "excitation_lambda": (int, float), "emission_lambda": (int, float)},
}

#: What a file gets for a missing value (NWB requires these fields, or nwbinspector calls them critical).
PLACEHOLDERS: dict[str, dict[str, Any]] = {
    "subject": {"subject_id": "unknown", "sex": "U", "age": "P0D/"},  # P0D/: "0 days or older", i.e. unknown
    "device": {"name": "Microscope", "description": "imaging device not given (nwb_metadata device.*)"},
    "imaging_plane": {"indicator": "unknown", "location": "unknown", "excitation_lambda": math.nan,
                      "emission_lambda": math.nan},
}

#: The facts a DANDI upload needs that no movie holds (reported while they are placeholders).
WANTED = ("subject.subject_id", "subject.species", "subject.sex", "subject.age", "device.name",
          "imaging_plane.indicator", "imaging_plane.location", "imaging_plane.excitation_lambda",
          "imaging_plane.emission_lambda")

SEX_VALUES = ("M", "F", "U", "O", "XO", "XX")


@dataclass(frozen=True)
class NwbMetadata:
    """The user's facts per NWB section (plain values, validated); empty sections are allowed."""

    subject: dict[str, Any] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)
    device: dict[str, Any] = field(default_factory=dict)
    imaging_plane: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None

    def section(self, name: str) -> dict[str, Any]:
        """The section's values with placeholders for the required ones the user left out."""
        return {**PLACEHOLDERS.get(name, {}), **getattr(self, name)}

    def placeholders(self) -> list[str]:
        """``section.key`` of every fact DANDI wants that is missing or a placeholder (to tell the user)."""
        given = {f"{name}.{key}" for name in SECTIONS for key in getattr(self, name)}
        if "subject.date_of_birth" in given:
            given.add("subject.age")
        return [key for key in WANTED if key not in given]

    def check_movie_count(self, n_movies: int) -> None:
        """InputError unless ``session_start_time`` is one time or one per movie (call before compute)."""
        for index in range(n_movies):
            self.start_time(index, n_movies)

    def start_time(self, movie_index: int, n_movies: int) -> datetime | None:
        """The user's session start for movie ``movie_index`` (None when not given)."""
        value = self.session.get("session_start_time")
        if value is None:
            return None
        if isinstance(value, list):
            if len(value) != n_movies:
                raise InputError(f"{self.source or 'nwb_metadata'}: session.session_start_time lists {len(value)} "
                                 f"times for {n_movies} movies; give one time, or one per movie in the order given")
            value = value[movie_index]
        return _as_datetime(value, self.source)


def nwb_settings(enabled: bool, metadata: NwbMetadata | None = None) -> dict[str, Any]:
    """What the NWB outputs of a run depend on besides its fingerprint, as the manifest records it.

    Why not in the fingerprint: the fingerprint names the computation (it is the components'
    cache key), and NWB on/off or a fixed metadata file must not refit. The run summary keeps
    these settings and a folder is up to date only when they match too (as with ``evaluate``),
    so a changed metadata file re-exports from the cached components. The digest is over the
    checked content, not the file's bytes or path: a comment edit or a moved file changes nothing.
    """
    if not enabled:
        return {"written": False}
    facts = metadata or NwbMetadata()
    content = {name: getattr(facts, name) for name in SECTIONS}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    return {"written": True, "metadata_sha256": digest}


def read_nwb_metadata(path: str | os.PathLike) -> NwbMetadata:
    """Read and check a YAML (``.yaml``/``.yml``) or JSON metadata file; InputError names the problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"NWB metadata file {path} does not exist; give a YAML or JSON file "
                         "with subject/session/device/imaging_plane sections")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a Windows editor's byte-order mark is no syntax error
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml  # noqa: PLC0415

            content = yaml.safe_load(text)
        elif path.suffix.lower() == ".json":
            content = json.loads(text)
        else:
            raise InputError(f"NWB metadata file {path} must end in .yaml, .yml or .json")
    except InputError:
        raise
    except Exception as err:  # yaml.YAMLError, JSONDecodeError, UnicodeDecodeError
        detail = " ".join(str(err).split())
        raise InputError(f"NWB metadata file {path} cannot be read ({detail}); fix its syntax") from None
    return nwb_metadata_from_dict(content if content is not None else {}, source=path)


def nwb_metadata_from_dict(content: Any, *, source: Path | None = None) -> NwbMetadata:
    """Check a metadata mapping (e.g. a flow parameter) and return it as `NwbMetadata`."""
    where = str(source) if source else "nwb_metadata"
    if not isinstance(content, Mapping):
        raise InputError(f"{where}: expected a mapping with the sections {', '.join(SECTIONS)}, "
                         f"got {type(content).__name__}")
    unknown = sorted(set(content) - set(SECTIONS))
    if unknown:
        raise InputError(f"{where}: unknown section(s) {', '.join(map(str, unknown))}; "
                         f"allowed: {', '.join(SECTIONS)}")
    sections = {name: _check_section(where, name, content.get(name) or {}) for name in SECTIONS}
    if sections["session"].get("session_start_time") is not None:
        value = sections["session"]["session_start_time"]
        for item in value if isinstance(value, list) else [value]:
            _as_datetime(item, where)
    return NwbMetadata(**sections, source=source)


def _check_section(where: str, name: str, values: Any) -> dict[str, Any]:
    if not isinstance(values, Mapping):
        raise InputError(f"{where}: section {name} must be a mapping of keys to values, got {type(values).__name__}")
    allowed = SECTIONS[name]
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in allowed:
            raise InputError(f"{where}: {name}.{key} is not a known key; allowed: {', '.join(allowed)}")
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, allowed[key]):
            raise InputError(f"{where}: {name}.{key} = {value!r} has the wrong type ({type(value).__name__}); "
                             "give text (numbers for the wavelengths in nm)")
        checked[key] = value
    if name == "subject" and "date_of_birth" in checked:
        checked["date_of_birth"] = _as_datetime(checked["date_of_birth"], where, "subject.date_of_birth")
    if name == "subject" and checked.get("sex") is not None and checked["sex"] not in SEX_VALUES:
        raise InputError(f"{where}: subject.sex = {checked['sex']!r}; use one of {', '.join(SEX_VALUES)}")
    if name == "imaging_plane":
        checked = {key: float(value) if key.endswith("_lambda") else value for key, value in checked.items()}
    return checked


def _as_datetime(value: Any, where: Any, key: str = "session.session_start_time") -> datetime:
    """An aware datetime from a YAML timestamp or an ISO 8601 string (naive means UTC)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"{where or 'nwb_metadata'}: {key} {value!r} is not an ISO 8601 time; "
                             "write e.g. 2024-05-02T10:31:00+02:00") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime):
        raise InputError(f"{where or 'nwb_metadata'}: {key} {value!r} is not a time; "
                         "write e.g. 2024-05-02T10:31:00+02:00")
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


__all__ = ["NwbMetadata", "nwb_metadata_from_dict", "nwb_settings", "read_nwb_metadata"]
