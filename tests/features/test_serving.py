"""End to end: derived features declared in a project's data config, trained with the real
CLI, served over HTTP by ``mlcycle serve`` with no Python preprocessing, and answering what
the numpy + scikit-learn pipeline answers for the same rows."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlcycle.config.hydra_app import compose, to_config
from mlcycle.config.project import Project
from mlcycle.train.fit import fit_model
from mlcycle.workflow import prepare
from tests._cli import run
from tests.conftest import free_port
from tests.features._drinks import drinks_frame

pytestmark = pytest.mark.slow

DRINKS_YAML = """\
defaults:
  - /schema/data/dataset@_here_
  - _self_

name: drinks
path: data/drinks.csv
label: tip
derived:
  - {name: unit_price, kind: ratio, numerator: amount, denominator: items}
  - {name: amount_band, kind: bins, feature: amount, edges: [5, 10, 20]}
  - {name: order_month, kind: date_part, feature: ordered_at, part: month}
  - {name: order_hour, kind: date_part, feature: ordered_at, part: hour}
  - name: tea_or_coffee_only
    kind: flag
    any: [{feature: drink, in: [tea, coffee]}]
"""
DERIVED_NAMES = ["unit_price", "amount_band", "order_month", "order_hour", "tea_or_coffee_only"]
TRICKY: list[dict[str, Any]] = [
    {"drink": "tea", "amount": 10.0, "items": 0, "ordered_at": 1709164800},  # leap day, edge
    {"drink": None, "amount": None, "items": 2, "ordered_at": 1700000000},
    {"drink": "matcha", "amount": 20.0, "items": 4, "ordered_at": None},  # unseen, no date
    {"drink": "coffee", "amount": 0.0, "items": 0, "ordered_at": 1735689599},  # 0 / 0
    {"drink": "water", "amount": 3.5, "items": 1, "ordered_at": 1704067200},  # new year
]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("features") / "proj"
    run(["init", str(root), "--no-example"], cwd=root.parent)
    drinks_frame(600).to_csv(root / "data" / "drinks.csv", index=False)
    (root / "conf" / "data").mkdir(exist_ok=True)
    (root / "conf" / "data" / "drinks.yaml").write_text(DRINKS_YAML)
    run(["train", "data=drinks", "train.register=false"], cwd=root)
    yield root


def _bundle(project: Path) -> Path:
    (bundle,) = (project / "bundles" / "drinks").iterdir()
    return bundle


def test_the_bundle_takes_raw_inputs_and_records_the_derived_features(project: Path) -> None:
    bundle = _bundle(project)
    signature = json.loads((bundle / "signature.json").read_text())
    assert [(i["name"], i["features"]) for i in signature["inputs"]] == [
        ("numeric", ["amount", "items", "ordered_at"]),
        ("categorical", ["drink"]),
    ]
    lineage = json.loads((bundle / "lineage.json").read_text())
    declared = lineage["config"]["data"]["derived"]
    assert [d["name"] for d in declared] == DERIVED_NAMES
    assert lineage["config"]["train"]["preprocess"]["derived"] == declared
    import onnx

    props = {p.key: p.value for p in onnx.load(str(bundle / "model.onnx")).metadata_props}
    assert [d["name"] for d in json.loads(props["mlcycle.derived"])] == DERIVED_NAMES
    parity = json.loads((bundle / "evaluation.json").read_text())["parity"]
    assert parity["passed"] and parity["max_abs_diff"] < 1e-5


def test_the_server_answers_what_the_numpy_and_sklearn_pipeline_answers(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLCYCLE_PROJECT_ROOT", raising=False)
    cfg = to_config(compose(["data=drinks"], project=Project(project)))
    splits = prepare(cfg, Project(project))
    trained = fit_model(splits.train, cfg.model, cfg.train)  # the same run, in-process
    assert trained.pipeline.steps[0][0] == "derive"
    test_rows = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in splits.test.frame.astype(object).to_dict("records")
    ]
    rows = [*TRICKY, *test_rows]
    frame = pd.DataFrame(rows).astype({"amount": float, "ordered_at": float, "items": float})
    expected = trained.predict_proba(frame)

    with _server(_bundle(project), project, tmp_path) as url:
        doc = _post(f"{url}/predict", {"records": rows})
    got = np.array([[p["probabilities"][c] for c in trained.classes] for p in doc["predictions"]])
    assert got.shape == expected.shape == (len(rows), 2)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [p["label"] for p in doc["predictions"]] == list(trained.predict(frame))


def test_the_serving_path_needs_no_training_libraries(project: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from mlcycle.bundle import Bundle\n"
        f"b = Bundle.load({str(_bundle(project))!r})\n"
        "b.predict({'numeric': np.array([[3.0, 0.0, 1.7e9]], np.float32),\n"
        "           'categorical': np.array([['tea']], object)})\n"
        "bad = {'sklearn', 'pandas', 'mlflow', 'torch', 'mlcycle.features'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_a_bad_derived_feature_stops_training_with_a_clear_error(project: Path) -> None:
    bad = "data.derived=[{name: r, kind: ratio, numerator: drink, denominator: items}]"
    proc = run(["train", "data=drinks", "train.register=false", bad], cwd=project, check=False)
    assert proc.returncode == 2
    assert (
        "error: data.derived[0] 'r': 'numerator' names 'drink', a categorical feature; it must "
        "be numeric. For a categorical feature use a flag term" in proc.stderr
    )
    assert len(list((project / "bundles" / "drinks").iterdir())) == 1  # nothing new exported


class _server:
    """``mlcycle serve --model BUNDLE`` on a free port, in its own process group."""

    def __init__(self, bundle: Path, cwd: Path, tmp: Path) -> None:
        self.bundle, self.cwd, self.log = bundle, cwd, tmp / "server.log"

    def __enter__(self) -> str:
        port = free_port()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mlcycle", "serve", "--model", str(self.bundle),
                 "--port", str(port), "serve.validation.unseen_category=pass",
                 "serve.validation.allow_missing=true"],
                cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                env={k: v for k, v in os.environ.items() if k != "MLCYCLE_PROJECT_ROOT"},
                start_new_session=True,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1).close()
                return url
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    pytest.fail(f"mlcycle serve did not start: {self.log.read_text()[-3000:]}")
                time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _post(url: str, doc: Any) -> Any:
    req = urllib.request.Request(
        url, data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{exc.code}: {exc.read().decode()[:2000]}") from None
