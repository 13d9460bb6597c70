"""The CLI through Typer's CliRunner: formats, exit codes, clear errors."""

from __future__ import annotations

import csv
import io
import json
import os

import pytest
from typer.testing import CliRunner

from tfkt_edge.cli.main import app
from tfkt_edge.examples import EXAMPLES

runner = CliRunner()
CLINICAL, DEGRADED = EXAMPLES / "clinical", EXAMPLES / "degraded"


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def test_clinical_slice_passes_with_exit_0():
    result = invoke("score", CLINICAL, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    (series,) = doc["series"]
    assert series["alert"] is False and series["min_score"] >= 2.0
    assert doc["model"]["preprocess"]["hu_min"] == -1000


def test_degraded_copy_alerts_with_exit_1_and_json_schema():
    result = invoke("score", CLINICAL, DEGRADED, "--format", "json")
    assert result.exit_code == 1, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == {"schema", "model", "series", "skipped"} and doc["schema"] == 2
    by_alert = {s["alert"]: s for s in doc["series"]}
    assert set(by_alert) == {True, False}
    bad = by_alert[True]
    assert bad["mean_score"] < 2.0 and "median score" in bad["reason"]
    for key in ("series_instance_uid", "description", "modality", "n_slices", "mean_score", "min_score", "alert", "reason", "slices"):
        assert key in bad
    (slice_,) = bad["slices"]
    assert set(slice_) == {"path", "sop_instance_uid", "instance_number", "frame", "score", "learned_score", "noise_bound"}
    assert slice_["score"] == min(slice_["learned_score"], slice_["noise_bound"])
    assert 0.0 <= slice_["score"] <= 4.0


def test_csv_written_to_output_file(tmp_path):
    out = tmp_path / "scores.csv"
    result = invoke("score", CLINICAL, DEGRADED, "--format", "csv", "--output", out)
    assert result.exit_code == 1
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 2 and {r["series_alert"] for r in rows} == {"0", "1"}


def test_table_lists_series_and_skips(tmp_path):
    (tmp_path / "junk.bin").write_bytes(os.urandom(512))
    result = invoke("score", DEGRADED, tmp_path)
    assert result.exit_code == 1
    assert "RESCAN ALERT" in result.stdout and "not a DICOM file" in result.stdout


def test_threshold_option_changes_the_verdict():
    assert invoke("score", CLINICAL, "--threshold", "4.0").exit_code == 1


def test_nothing_scorable_exits_2_with_message(tmp_path):
    (tmp_path / "junk.bin").write_bytes(os.urandom(512))
    result = invoke("score", tmp_path, "--format", "json")
    assert result.exit_code == 2
    assert "nothing scorable" in result.stderr
    assert json.loads(result.stdout)["skipped"][0]["reason"] == "not a DICOM file"


def test_bad_usage_exits_2():
    assert invoke("score").exit_code == 2
    assert invoke("score", CLINICAL, "--threshold", "9").exit_code == 2
    assert invoke("score", CLINICAL, "--format", "xml").exit_code == 2


def test_unwritable_output_is_refused_before_scoring(tmp_path):
    result = invoke("score", CLINICAL, "--format", "json", "--output", tmp_path / "no" / "such" / "x.json")
    assert result.exit_code == 2 and "cannot write" in result.stderr


def test_model_without_contract_is_refused(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["score"])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, None)])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(path))
    result = invoke("score", CLINICAL, "--model", path)
    assert result.exit_code == 2 and "carries no preprocessing contract" in result.stderr
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00" * 100)
    result = invoke("score", CLINICAL, "--model", garbage)
    assert result.exit_code == 2 and "not a loadable ONNX model" in result.stderr
    result = invoke("score", CLINICAL, "--model", tmp_path / "missing.onnx")
    assert result.exit_code == 2 and "model file not found" in result.stderr


def test_demo_shows_the_alert():
    result = invoke("demo")
    assert result.exit_code == 0, result.output
    assert "RESCAN ALERT" in result.stdout and "demo ok" in result.stdout


def test_runtime_scores_without_torch(tmp_path):
    """The scanner-side runtime imports and scores with torch made unimportable."""
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "sys.argv = ['tfkt-edge', 'score', sys.argv[1], '--format', 'json']\n"
            "from tfkt_edge.cli.main import main; main()")
    done = subprocess.run([sys.executable, "-c", code, str(DEGRADED)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    assert json.loads(done.stdout)["series"][0]["alert"] is True
    assert "torch" not in done.stderr


def test_training_commands_without_torch_name_the_extra():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None\n"
            "sys.argv = ['tfkt-edge', 'models']\n"
            "from tfkt_edge.cli.main import main; main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "tfkt-edge[train]" in done.stderr and "Traceback" not in done.stderr


def test_text_from_files_and_errors_is_printed_verbatim(tmp_path):
    """Brackets in a series description or an error message are text, not console markup."""
    import pydicom

    ds = pydicom.dcmread(EXAMPLES / "clinical" / "abdomen.dcm")
    ds.SeriesDescription = "Abdomen [contrast] 1.0"
    ds.save_as(tmp_path / "a.dcm")
    table = runner.invoke(app, ["score", str(tmp_path)], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "Abdomen [contrast] 1.0" in table.stdout

    from tfkt_edge.model.engine_file import EngineSidecar, GpuIdentity, sha256, sidecar_path
    from tfkt_edge.model.preprocess import LDCTIQAC

    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here")
    except ImportError:
        pass
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"engine")
    sidecar_path(engine).write_text(EngineSidecar("10.8.0.43", GpuIdentity("GPU", "9.0"), "fp16",
                                                  {"min": [1, 1, 512, 512], "opt": [1, 1, 512, 512], "max": [1, 1, 512, 512]},
                                                  "x", sha256(engine), LDCTIQAC.to_json(), "m").to_json())
    missing = runner.invoke(app, ["score", str(EXAMPLES), "--backend", "tensorrt", "--model", str(engine)])
    assert missing.exit_code == 2 and "pip install 'tfkt-edge[gpu]'" in missing.stderr


def _commands(group, prefix=()):
    """Every command path of the CLI, sub-commands included."""
    import typer.main

    click_group = typer.main.get_command(group) if not hasattr(group, "commands") else group
    for name, command in click_group.commands.items():
        yield (*prefix, name)
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))


def test_every_command_has_help_with_an_example():
    paths = list(_commands(app))
    assert ("export", "triton") in paths and ("score",) in paths
    for path in paths:
        result = invoke(*path, "-h")
        assert result.exit_code == 0, (path, result.output)
        if "Commands" not in result.output:  # a command, not a group: its help shows how to call it
            assert f"Example: tfkt-edge {' '.join(path)}" in result.output, (path, result.output[:400])


def test_version_prints_one_line():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.startswith("tfkt-edge ") and result.output.count("\n") == 1
    assert "shipped model tfkt_edge_s 0.4.2" in result.output


@pytest.mark.parametrize(("flag", "level"), [("-q", "ERROR"), ("-v", "INFO"), ("-vv", "DEBUG")])
def test_verbosity_works_after_the_command(flag, level):
    import logging

    try:
        result = invoke("score", CLINICAL, flag)
        assert result.exit_code == 0, result.output
        assert logging.getLevelName(logging.getLogger("tfkt_edge").level) == level
    finally:
        invoke("models")  # back to the default level for the tests that follow


def test_verbosity_flags_after_a_double_dash_stay_arguments():
    from tfkt_edge.cli.boundary import hoist_verbosity

    assert hoist_verbosity(["score", "DIR", "-q"]) == ["-q", "score", "DIR"]
    assert hoist_verbosity(["score", "--", "-q"]) == ["score", "--", "-q"]


def test_env_prints_what_a_bug_report_needs():
    import json

    result = invoke("env", "--format", "json")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.output)
    assert facts["model"]["name"] == "tfkt_edge_s" and facts["model"]["version"] == "0.4.2"
    assert facts["model"]["cpu_default"].endswith("tfkt_edge_s_stored.onnx")
    assert "CPUExecutionProvider" in facts["onnxruntime"]["providers"] and facts["cpu_cores"] >= 1
    assert facts["packages"]["pydicom"] != "not installed" and "tensorrt" in facts["gpu"]
    table = invoke("env")
    assert table.exit_code == 0 and "onnxruntime: providers" in table.output


def test_a_score_imports_only_what_scoring_needs():
    """A `score` run registers and imports the score command alone: not the DICOM node, the trainer, the
    exporters, the report's templates or plotting (they cost a one-file score most of its start-up)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "sys.argv = ['tfkt-edge', '-q', 'score', sys.argv[1], '--format', 'json']\n"
            "from tfkt_edge.cli.main import main\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
            "heavy = ('pynetdicom', 'jinja2', 'matplotlib', 'torch', 'tfkt_edge.train', 'tfkt_edge.cli.serve',\n"
            "         'tfkt_edge.cli.export', 'tfkt_edge.service', 'multiprocessing.shared_memory')\n"
            "print(sorted(m for m in sys.modules if m.startswith(heavy)), code, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, str(DEGRADED)], capture_output=True, text=True, timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "[] 1", done.stderr
    assert json.loads(done.stdout)["series"][0]["alert"] is True


@pytest.mark.parametrize(("argv", "command"), [(["score", "x"], "score"), (["-q", "-v", "export", "onnx"], "export"),
                                               (["-h"], None), (["scroe", "x"], None), ([], None)])
def test_the_requested_command_is_the_first_word_that_is_not_an_option(argv, command):
    from tfkt_edge.cli.main import requested

    assert requested(argv) == command
