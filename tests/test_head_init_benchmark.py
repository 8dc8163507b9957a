"""benchmarks/head_init.py runs end to end on a few steps and ends with its JSON line (no loss asserted here)."""

import importlib.util
import json

from conftest import REPO_ROOT


def test_head_init_benchmark_smoke(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("head_init_benchmark", REPO_ROOT / "benchmarks" / "head_init.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    data = tmp_path / "text.txt"
    data.write_text("\n\n".join(f"to be or not to be, that is question {i}" for i in range(300)))
    benchmark.main([str(data), "--steps", "2", "--logging_steps", "1", "--tail", "1", "--variants", "embeddings_identity"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    run = result["results"]["embeddings_identity"]
    assert result["steps"] == 2 and len(run["token_nll_curve"]) == 2
    assert run["final_token_nll"] == run["token_nll_curve"][-1] > 0
