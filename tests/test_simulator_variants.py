"""benchmarks/simulator_variants.py: the realistic simulator's variants run through ``cnmflow run`` and scored."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from simulator_variants import main, run_values, simulator_settings  # noqa: E402

from cnmflow.outputs.caiman_hdf5 import read_caiman_params  # noqa: E402
from cnmflow.synthetic.realistic import PRESETS  # noqa: E402
from cnmflow.synthetic.realistic_2p import PRESETS_2P  # noqa: E402


def test_a_variant_pushes_one_property_of_the_preset():
    assert simulator_settings("ca1", "default") == {}
    assert simulator_settings("ca1", "dense") == {"n_neurons": int(PRESETS["ca1"].n_neurons * 1.8)}
    assert simulator_settings("cortex_l23", "neuropil") == {"neuropil_level": PRESETS["cortex_l23"].neuropil_level * 3}
    assert simulator_settings("cortex_l23", "gcamp6s") == {"decay_time": 1.0}
    assert simulator_settings("cortex_l23_2p", "grazing2") == {"n_grazing": PRESETS_2P["cortex_l23_2p"].n_grazing * 2}


def test_a_run_sets_what_its_user_would_type():
    assert run_values("ca1", "default", "auto", {}) == {"gSig": "auto", "min_corr": "auto", "min_pnr": "auto"}
    assert run_values("cortex_l23_2p", "gcamp6f", "auto", {"rf": 25}) == {"gSig": "auto", "K": "auto",
                                                                         "decay_time": 0.4, "rf": 25}


def test_a_variant_is_run_through_the_cli_with_the_users_values_and_scored(tmp_path, capsys):
    assert main(["--configs", "cortex_l23", "--variants", "gcamp6s", "--shape", "96", "96", "--frames", "300",
                 "--mode", "table", "--set", "n_processes=1", "--results", str(tmp_path)]) == 0
    row = json.loads((tmp_path / "rows.jsonl").read_text())
    assert row["values"] == {"gSig": 3, "gSiz": 13, "min_corr": 0.7, "min_pnr": 5, "decay_time": 1.0,
                             "n_processes": 1}
    run = tmp_path / "cortex_l23_gcamp6s_96x96x300_s41_table"
    data = read_caiman_params(run / "caiman_output.hdf5")["data"]
    assert data["decay_time"] == 1.0   # the indicator the variant simulates, as its user would type it
    assert row["n_true"] > 10 and 0 < row["K"] and row["f1_iou30"] > 0.5
    assert capsys.readouterr().out.splitlines()[1].split()[:3] == ["cortex_l23", "gcamp6s", "41"]
