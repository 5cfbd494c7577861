"""What a user hands over about parameters — a preset, table values, a parameters file — resolved once.

Every entry point (the CLI's ``--set`` / ``--params-file``, ``cnmflow.extract``, the Prefect forms,
a sweep's combinations) turns its input into one :class:`RunRequest`; :meth:`RunRequest.resolve`
is the single step that validates it into the effective parameters with their sources.  What
comes after (the movie checks, the plan, the fit) receives the resolved values and checks them
no more.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Mapping

from pydantic import BaseModel

from cnmflow.engine import check_supported
from cnmflow.params import ResolvedParams
from cnmflow.params_file import resolve_run_params
from cnmflow.params_form import form_with, table_from_form

#: The seed's two parameter columns, as the forms and the CLI offer them.
Preset = Literal["1p", "2p"]


@dataclass(frozen=True)
class RunRequest:
    """The parameters as the user gave them, not yet checked.

    ``table`` holds analysis-table values by their seed names (the form's edits or ``--set``);
    ``params_file`` (CaImAn-style JSON) applies over them only with ``overwrite_params``.
    """

    preset: str = "1p"
    table: Mapping[str, Any] = field(default_factory=dict)
    params_file: str | os.PathLike | None = None
    overwrite_params: bool = False

    @classmethod
    def from_form(cls, form: BaseModel | Mapping[str, Any] | None, *, preset: str = "1p",
                  params_file: str | os.PathLike | None = None, overwrite_params: bool = False) -> "RunRequest":
        """The request a filled form makes; ParameterError (one line) for a bad field or a preset mismatch."""
        return cls(preset=preset, table=table_from_form(form, preset), params_file=params_file,
                   overwrite_params=overwrite_params)

    def with_table(self, values: Mapping[str, Any]) -> "RunRequest":
        """The same request with some table values replaced (a sweep's combination)."""
        return replace(self, table={**self.table, **values})

    def form(self) -> BaseModel:
        """The analysis-table form holding this request's table (what a flow run receives)."""
        return form_with(self.preset, dict(self.table))

    def through_form(self) -> "RunRequest":
        """The request a flow run started with :meth:`form` makes of it (what a sweep's child receives)."""
        return RunRequest.from_form(self.form(), preset=self.preset, params_file=self.params_file,
                                    overwrite_params=self.overwrite_params)

    def resolve(self) -> ResolvedParams:
        """The effective parameters, each with its source; ParameterError, naming the value and where it came
        from, for anything the run could not do."""
        resolved = resolve_run_params(preset=self.preset, table=dict(self.table), params_file=self.params_file,
                                      overwrite_params=self.overwrite_params)
        check_supported(resolved.params)
        return resolved


def request_of(request: RunRequest | None, *, preset: str = "1p", table: Mapping[str, Any] | None = None,
               params_file: str | os.PathLike | None = None, overwrite_params: bool = False) -> RunRequest:
    """``request``, or one made of its fields given as keywords (the library's keyword form)."""
    if request is not None:
        return request
    return RunRequest(preset=preset, table=dict(table or {}), params_file=params_file,
                      overwrite_params=overwrite_params)
