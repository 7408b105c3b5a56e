"""What the Python tests share: the wlbtune executable the build made (WLBTUNE), running it,
temporary directories, random document lengths, and tuned configs written for a layout and a
packing and sharding of the test's choice.

CTest runs the tests with PYTHONPATH at the build's python/ folder and WLBTUNE at the executable
(tests/CMakeLists.txt).
"""

import json
import os
import subprocess
import tempfile
import unittest

import numpy as np

import wlbtune

WLBTUNE = os.environ.get("WLBTUNE", "")


def need_cli(test: unittest.TestCase) -> None:
    if not WLBTUNE or not os.path.exists(WLBTUNE):
        test.fail(f"WLBTUNE={WLBTUNE!r} is not the wlbtune executable (set by CTest)")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Runs wlbtune with these arguments; stdout and stderr as text."""
    return subprocess.run([WLBTUNE, *args], capture_output=True, text=True, timeout=300)


def cli_error(*args: str) -> str:
    """The message of a wlbtune command that fails: its stderr line after 'wlbtune: error: '."""
    r = run_cli(*args)
    assert r.returncode != 0, f"wlbtune {' '.join(args)} succeeded: {r.stdout}"
    lines = [l for l in r.stderr.splitlines() if l.startswith("wlbtune: error: ")]
    assert len(lines) == 1, r.stderr
    return lines[0][len("wlbtune: error: "):]


def random_lengths(seed: int, n: int, context: int) -> np.ndarray:
    """Heavy-tailed document lengths in [1, context]: mostly short, a few near the context, as
    long-context pretraining data (scaled down)."""
    rng = np.random.default_rng(seed)
    body = rng.lognormal(mean=np.log(context / 40), sigma=1.0, size=n)
    long = rng.uniform(0.2, 1.0, size=n) * context
    lengths = np.where(rng.uniform(size=n) < 0.05, long, body)
    return np.clip(lengths.astype(np.int64), 1, context)


class TempDir:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="wlbtune-python-")
        self.path = self._dir.name

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def cleanup(self) -> None:
        self._dir.cleanup()


_TEMPLATE = None


def config_template(tmp: TempDir) -> dict:
    """A wlbtune.config/1 document from `wlbtune tune` on a small synthetic job (read once):
    the model and hardware sections every config carries."""
    global _TEMPLATE
    if _TEMPLATE is None:
        path = tmp.file("template.json")
        r = run_cli("tune", "--data", "synthetic:lognormal?mu=7&sigma=1&n=2000&seed=3",
                    "--context", "16k", "--layout", "tp=2,cp=2,pp=2,dp=1", "--model", "550m",
                    "-o", path)
        assert r.returncode == 0, r.stderr
        with open(path) as f:
            _TEMPLATE = json.load(f)
    return json.loads(json.dumps(_TEMPLATE))


def write_config(tmp: TempDir, name: str, layout: str, packing: wlbtune.PackingConfig,
                 sharding: wlbtune.ShardingSpec) -> str:
    """A tuned config for `layout` with this packing and sharding, as `wlbtune tune` writes one."""
    c = config_template(tmp)
    c["layout"] = {"spec": layout, "order": "tp-cp-pp-dp"}
    c["context_tokens"] = packing.context_tokens
    c["packing"] = packing.to_dict()
    c["sharding"] = sharding.to_dict()
    c["data"]["context_policy"] = "truncate"
    c["data"]["shuffle_seed"] = None
    path = tmp.file(name)
    with open(path, "w") as f:
        json.dump(c, f)
    return path


def write_lengths(tmp: TempDir, name: str, lengths: np.ndarray) -> str:
    path = tmp.file(name)
    with open(path, "w") as f:
        json.dump([int(x) for x in lengths], f)
    return path


def read_plan_json(path: str):
    """A plan file read with the json module alone (not the module under test): the header,
    the steps, and the end record."""
    with open(path) as f:
        lines = [json.loads(line) for line in f]
    header, steps, end = lines[0], lines[1:-1], lines[-1]
    assert header["schema"] == "wlbtune.plan/1", header["schema"]
    assert end.get("end") is True, end
    return header, steps, end
