"""params.yaml is loaded strictly: unknown keys and wrong types name the key."""

import pytest
import yaml

from synthforge.params import ParamsError, load_params

from conftest import ROOT


def edit(tmp_path, change):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    change(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_shipped_params_load():
    p = load_params(ROOT / "params.yaml")
    assert p.base.seed == 42
    assert list(p.train.stages) == list(p.merge.curriculum) == ["stage1", "stage2", "stage3"]
    assert isinstance(p.train.stages["stage1"].learning_rate, float)


@pytest.mark.parametrize("change, message", [
    (lambda r: r["generate"].update(backnd="template"), "generate.backnd: unknown key"),
    (lambda r: r["train"]["common"].update(batch_size="8"), "train.common.batch_size: expected int"),
    (lambda r: r["train"]["stages"]["stage1"].update(learning_rate="1e-5"), "write 1.0e-5"),
    (lambda r: r["model"]["warmup"].pop("iters"), "model.warmup.iters: missing required key"),
    (lambda r: r["train"]["common"].update(grad_checkpoint=1), "train.common.grad_checkpoint: expected bool"),
    (lambda r: r["merge"]["curriculum"].pop("stage3"), "must name the same stages"),
    (lambda r: r["train"]["common"].update(save_every=15), "multiple of train.common.steps_per_report"),
    (lambda r: r["generate"]["categories"].update(powertools=[1]), "generate.categories.powertools: expected int"),
])
def test_bad_params_name_the_key(tmp_path, change, message):
    with pytest.raises(ParamsError, match=message.replace(".", r"\.").replace("(", r"\(")):
        load_params(edit(tmp_path, change))


def test_missing_file(tmp_path):
    with pytest.raises(ParamsError, match="file not found"):
        load_params(tmp_path / "nope.yaml")
