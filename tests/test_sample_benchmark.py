"""benchmarks/sample.py, the script `benchmarks/gpu.sh` runs for its sampling figures: at tiny sizes on CPU it times
both modes, and its compiled mode really runs the compiled step (compile time reported apart). No speed is asserted
here (the figures are in benchmarks/RESULTS.md)."""

import json

import torch
import transformers

from conftest import load_benchmark
from editflow_hf.modeling.sampling_editflow import CompiledEditRates


def test_sample_benchmark_times_eager_and_the_compiled_step(monkeypatch, capsys):
    benchmark = load_benchmark("sample")
    calls = []
    original = CompiledEditRates.__call__
    monkeypatch.setattr(CompiledEditRates, "__call__", lambda self, *args: calls.append(args[0].shape) or original(self, *args))
    threads = torch.get_num_threads()
    try:
        result = benchmark.main(["--tau", "0.25", "--mask_length", "4", "--batch_size", "2", "--b1_runs", "1", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    assert set(result) == {"eager", "compiled", "config"}
    assert calls and {shape[0] for shape in calls} >= {1}  # batch 1 went through the compiled step
    assert result["compiled"]["compile_s"] > 0 and "compile_s" not in result["eager"]
    for mode in ("eager", "compiled"):
        figures = result[mode]
        assert figures["s_per_seq_b1"] > 0 and figures["seq_per_s_b64"] > 0 and figures["step_over_encoder"] > 0
    closing = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert closing["provenance"]["versions"]["transformers"] == transformers.__version__  # the figures' releases
