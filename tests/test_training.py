"""The training loop: one step per variant, resume, transfer modes, losses."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tfkt_edge.errors import InputError  # noqa: E402
from tfkt_edge.model.network import MODELS  # noqa: E402
from tfkt_edge.train.imagesets import ImageSet  # noqa: E402
from tfkt_edge.train.losses import LOSSES, pairwise_rank  # noqa: E402
from tfkt_edge.train.trainer import Callbacks, TrainConfig, load_checkpoint, train  # noqa: E402


def tiny_set(n: int = 6, seed: int = 0) -> ImageSet:
    """Real-texture images: windowed noise-free gradients plus noise whose strength sets the label."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0.2, 0.7, 512, dtype=np.float32)[None, :].repeat(512, 0)
    labels = np.linspace(4.0, 0.5, n).astype(np.float32)
    images = np.stack([np.clip(base + rng.normal(0, 0.02 * (4.5 - y), base.shape), 0, 1) for y in labels]).astype(np.float16)
    return ImageSet.from_array(images, labels, [f"g{i % 3}" for i in range(n)], [None] * n, [f"i{i}" for i in range(n)])


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "tfkt_v2" else n for n in MODELS.names()])
def test_one_training_step_per_variant(tmp_path, name):
    data = tiny_set(2)
    config = TrainConfig(model=name, epochs=1, batch_size=2, lr=1e-4)
    model = train(config, data, None, tmp_path / "run")
    assert {p.name for p in (tmp_path / "run").iterdir()} >= {"config.json", "log.csv", "loss.png", "last.pt", "model.pt"}
    with (tmp_path / "run" / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and np.isfinite(float(rows[0]["train_loss"]))
    reloaded, checkpoint = load_checkpoint(tmp_path / "run" / "model.pt")
    assert checkpoint["model"] == name and checkpoint["config"]["epochs"] == 1
    x = torch.from_numpy(data.images([0])).unsqueeze(1)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), model.eval()(x))


class Interrupt(Exception):
    pass


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    data, val = tiny_set(6), tiny_set(4, seed=1)
    config = TrainConfig(epochs=3, batch_size=2, lr=1e-3, seed=5)
    straight = train(config, data, val, tmp_path / "straight")

    def stop_after_first(row):
        if row["epoch"] == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(config, data, val, tmp_path / "resumed", callbacks=Callbacks(on_epoch=stop_after_first))
    assert not (tmp_path / "resumed" / "model.pt").exists()
    with pytest.raises(InputError, match="already holds a run"):
        train(config, data, val, tmp_path / "resumed")
    with pytest.raises(InputError, match="different settings \\(lr\\)"):
        train(TrainConfig(epochs=3, batch_size=2, lr=2e-3, seed=5), data, val, tmp_path / "resumed", resume=True)
    resumed = train(config, data, val, tmp_path / "resumed", resume=True)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    with (tmp_path / "resumed" / "log.csv").open() as handle:
        assert [int(r["epoch"]) for r in csv.DictReader(handle)] == [1, 2, 3]


def test_transfer_loads_weights_and_frozen_keeps_the_cnn(tmp_path):
    data = tiny_set(4)
    pre = train(TrainConfig(stage="pretrain", epochs=1, batch_size=2), data, None, tmp_path / "pre")
    init = str(tmp_path / "pre" / "model.pt")
    frozen = train(TrainConfig(mode="frozen", init=init, epochs=1, batch_size=2), data, None, tmp_path / "frozen")
    for (name, a), b in zip(pre.cnn.state_dict().items(), frozen.cnn.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)  # weights and batch-norm statistics untouched
    assert not torch.equal(pre.head.weight, frozen.head.weight)
    config = json.loads((tmp_path / "frozen" / "config.json").read_text())
    assert config["config"]["init"] == init and config["train_images"] == 4
    with pytest.raises(InputError, match="needs --init"):
        train(TrainConfig(mode="transfer", epochs=1), data, None, tmp_path / "x")
    with pytest.raises(InputError, match="holds 'tfkt_edge_s' weights, not 'tfkt_edge_m'"):
        train(TrainConfig(model="tfkt_edge_m", mode="transfer", init=init, epochs=1), data, None, tmp_path / "y")


def test_losses():
    target = torch.tensor([3.0, 2.0, 1.0])
    assert float(pairwise_rank(torch.tensor([3.5, 2.2, 0.4]), target)) == 0.0  # ordered and separated enough
    assert float(pairwise_rank(torch.tensor([1.0, 2.0, 3.0]), target)) > 0.0
    assert float(pairwise_rank(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 2.0]))) == 0.0  # no ordered pair
    predicted = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    LOSSES["mse+rank"](predicted, target, 1.0).backward()
    assert predicted.grad is not None and float(LOSSES["mse+rank"](target, target, 1.0)) == 0.0


class _RunsCode:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["TFKT_TEST_MARKER"]),))


def test_resume_never_unpickles_code_from_a_tampered_checkpoint(tmp_path, monkeypatch):
    data, val = tiny_set(4), tiny_set(2, seed=1)
    config = TrainConfig(epochs=2, batch_size=2, lr=1e-3, seed=5)

    def stop_after_first(row):
        raise Interrupt

    with pytest.raises(Interrupt):
        train(config, data, val, tmp_path / "run", callbacks=Callbacks(on_epoch=stop_after_first))
    marker = tmp_path / "code-ran"
    monkeypatch.setenv("TFKT_TEST_MARKER", str(marker))
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    state["payload"] = _RunsCode()
    torch.save(state, tmp_path / "run" / "last.pt")
    with pytest.raises(InputError, match="cannot resume from .*last.pt"):
        train(config, data, val, tmp_path / "run", resume=True)
    assert not marker.exists()
