"""EditFlowLoss against a plain float64 reference (full-vocabulary log-softmax, a Python loop over edits),
gradient flow to every head, and a short optimisation that lowers the loss. The loss takes the model's outputs:
`loss_fn(model(**batch.model_inputs()), batch)` (`compute` below)."""

import math

from dataclasses import replace

import numpy as np
import pytest
import torch

from builders import BOS, MASK, PAD, tiny_editflow_model
from editflow_hf.modeling.edits_editflow import EditKind
from editflow_hf.modeling.scheduling_editflow import get_scheduler
from editflow_hf.objective.loss import EditFlowLoss
from editflow_hf.path.collator import EditFlowBatch, EditFlowCollator

VOCAB = 48


def tiny_model(seed=0):
    model = tiny_editflow_model(seed=seed, vocab_size=VOCAB)
    with torch.no_grad():  # spread the rates over a wide range so that every term matters
        model.rate_head.weight.normal_(0.0, 0.5)
        model.rate_head.bias.normal_(0.0, 1.0)
    return model


def random_batch(seed, x0_sampler="masks[min:0,max:8]", prompt=True, n=8, time_epsilon=1e-3):
    rng = np.random.default_rng(seed)
    features = []
    for _ in range(n):
        x1 = [BOS] + rng.integers(4, VOCAB, size=rng.integers(0, 16)).tolist()
        features.append({"input_ids": x1, "prompt_len": int(rng.integers(1, min(len(x1), 4) + 1)) if prompt else 1})
    collator = EditFlowCollator(
        mask_token_id=MASK, bos_token_id=BOS, pad_token_id=PAD, x0_sampler=x0_sampler, time_epsilon=time_epsilon, seed=seed
    )
    return collator(features)


def compute(loss_fn, model, batch):
    return loss_fn(model(**batch.model_inputs()), batch)


def reference_loss(model, batch, scheduler="linear", max_w=20.0, normalize="x1_len", eps=1e-8, prop_rate=None):
    """Plain reference: the per-sequence loss formula, full logits everywhere, one loop iteration per edit; edit e
    weighs w(t) + prop_rate[e] when `prop_rate` (a localized path's propagation rates) is given, else w(t)."""
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    sub_logp = torch.log_softmax(out.sub_logits.double(), dim=-1)
    ins_logp = torch.log_softmax(out.ins_logits.double(), dim=-1)
    rates = [out.sub_rate.double(), out.del_rate.double(), out.ins_rate.double()]
    schedule = get_scheduler(scheduler)
    total = 0.0
    for b in range(batch["input_ids"].shape[0]):
        t = batch["t"][b].double()
        w = float(schedule.derivative(t) / (1 - schedule.kappa(t)))
        w = w if max_w is None else min(w, max_w)
        length = int(batch["attention_mask"][b].sum())
        prompt_len = int(batch["prompt_len"][b])
        survival = 0.0
        for i in range(length):
            if i >= prompt_len:
                survival = survival + rates[0][b, i] + rates[1][b, i]
            if i >= prompt_len - 1:
                survival = survival + rates[2][b, i]
        weighted_log_lik = 0.0
        for e in torch.nonzero(batch["edit_batch"] == b).flatten().tolist():
            pos, kind, token = (int(batch[k][e]) for k in ("edit_pos", "edit_kind", "edit_token"))
            log_lik = torch.log(rates[kind][b, pos] + eps)
            if kind == EditKind.SUB:
                log_lik = log_lik + sub_logp[b, pos, token]
            elif kind == EditKind.INS:
                log_lik = log_lik + ins_logp[b, pos, token]
            weighted_log_lik = weighted_log_lik + (w + (prop_rate[e] if prop_rate is not None else 0.0)) * log_lik
        norm = {"x1_len": float(batch["x1_len"][b]), "x_t_len": float(length), "none": 1.0}[normalize]
        total = total + (w * survival - weighted_log_lik) / norm
    return total / batch["input_ids"].shape[0]


@pytest.mark.parametrize(
    "seed, scheduler, max_w, normalize, time_epsilon",
    [
        (0, "linear", 20.0, "x1_len", 1e-3),
        (1, "cosine", 3.0, "x_t_len", 1e-3),  # a low clamp: several rows hit it
        (2, "cubic", None, "none", 0.05),
        (3, "linear", 20.0, "x1_len", 1e-3),
    ],
)
def test_matches_reference(seed, scheduler, max_w, normalize, time_epsilon):
    model = tiny_model(seed).double().eval()
    batch = random_batch(seed, time_epsilon=time_epsilon)
    assert (batch["edit_kind"] == 0).any() and (batch["edit_kind"] == 1).any() and (batch["edit_kind"] == 2).any()
    with torch.no_grad():
        ours = compute(EditFlowLoss(scheduler=scheduler, max_w=max_w, normalize=normalize), model, batch)
        expected = reference_loss(model, batch, scheduler=scheduler, max_w=max_w, normalize=normalize)
    assert ours.loss.dtype == torch.float64
    torch.testing.assert_close(ours.loss, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours.survival + ours.edit_nll, ours.loss)
    assert ours.n_edits == len(batch["edit_kind"]) == ours.n_sub + ours.n_del + ours.n_ins


def test_shared_insertion_gaps_and_empty_x0():
    """x0 = BOS: only insertions, many in one gap (they share one logits row); no substitution rows at all."""
    model = tiny_model(4).double().eval()
    batch = random_batch(4, x0_sampler="empty", prompt=False)
    kinds = batch["edit_kind"]
    assert (kinds == 2).all()
    gaps = batch["edit_batch"] * 100 + batch["edit_pos"]
    assert len(gaps.unique()) < len(gaps)
    with torch.no_grad():
        ours = compute(EditFlowLoss(), model, batch)
        torch.testing.assert_close(ours.loss, reference_loss(model, batch), rtol=1e-5, atol=1e-5)
    assert ours.model_output.sub_logits.shape[0] == 0


def test_protected_prompt_rates_do_not_count():
    """Rates inside the prompt must not enter the loss: raising them leaves it unchanged."""
    model = tiny_model(5).eval()
    batch = random_batch(5)
    keep = batch.edit_pos >= 3
    edits = {key: batch[key][keep] for key in ("edit_batch", "edit_pos", "edit_kind", "edit_token", "edit_prop_rate")}
    batch = replace(batch, prompt_len=torch.full_like(batch.prompt_len, 3), **edits)
    loss_fn = EditFlowLoss()
    with torch.no_grad():
        base = compute(loss_fn, model, batch).loss

    class Boost(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, **kwargs):
            out = self.inner(**kwargs)
            boost = torch.zeros_like(out.sub_rate)
            boost[:, :3] = 100.0
            out.sub_rate = out.sub_rate + boost
            out.del_rate = out.del_rate + boost
            boost[:, 2] = 0.0  # the gap after the last prompt token (position 2) stays open
            out.ins_rate = out.ins_rate + boost
            return out

    with torch.no_grad():
        torch.testing.assert_close(compute(loss_fn, Boost(model), batch).loss, base)


def test_gradients_reach_rate_and_token_heads():
    model = tiny_model(6).train()
    compute(EditFlowLoss(), model, random_batch(6)).loss.backward()
    for name in ("rate_head.weight", "sub_head.decoder.weight", "ins_head.decoder.weight", "sub_head.dense.weight"):
        grad = model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    encoder_grads = [p.grad for p in model.encoder.parameters() if p.requires_grad]
    assert all(g is not None for g in encoder_grads) and sum(g.abs().sum() for g in encoder_grads) > 0


@pytest.fixture
def flush_denormals():
    """Adam's moment estimates of a tiny model go subnormal within a few steps, which makes CPU math crawl."""
    torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(False)


def test_a_few_optimizer_steps_reduce_the_loss(flush_denormals):
    model = tiny_model(7).train()
    batch = random_batch(7, prompt=False, n=8)
    loss_fn = EditFlowLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = compute(loss_fn, model, batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.7 * losses[0], losses


def test_bf16_model_gives_float32_loss():
    model = tiny_model(8).eval()
    batch = random_batch(8)
    with torch.no_grad():
        full = compute(EditFlowLoss(), model, batch).loss
        half = compute(EditFlowLoss(), model.to(torch.bfloat16), batch)
    assert half.model_output.sub_logits.dtype == torch.bfloat16
    assert half.loss.dtype == torch.float32
    torch.testing.assert_close(half.loss, full, rtol=0.05, atol=0.05)


def test_errors():
    with pytest.raises(ValueError, match="valid values"):
        EditFlowLoss(normalize="tokens")
    with pytest.raises(ValueError, match="max_w"):
        EditFlowLoss(max_w=0)
    with pytest.raises(ValueError, match="valid names"):
        EditFlowLoss(scheduler="quadratic")
    batch = random_batch(0)
    model = tiny_model()
    with pytest.raises(ValueError, match="EditFlowCollator"):
        EditFlowLoss()(model(**batch.model_inputs()), dict(batch))  # a plain dict of the same tensors
    with pytest.raises(ValueError, match="model_inputs"):
        EditFlowLoss()(model, batch)  # the model itself instead of its outputs
    with pytest.raises(TypeError, match="missing"):
        EditFlowBatch({key: value for key, value in batch.items() if key != "edit_pos"})


def test_batch_is_a_mapping_that_moves_like_a_dict():
    """Trainer._prepare_input and accelerate's send_to_device rebuild a Mapping as type(batch)({key: value})."""
    from accelerate.utils import send_to_device

    batch = random_batch(1)
    rebuilt = type(batch)({key: value for key, value in batch.items()})
    assert isinstance(rebuilt, EditFlowBatch) and list(rebuilt) == list(batch) and len(rebuilt) == 10
    moved = send_to_device(batch, "cpu")
    assert isinstance(moved, EditFlowBatch) and torch.equal(moved.edit_token, batch.edit_token)
    sub_at, ins_at = batch.logits_at()
    assert int(sub_at.sum()) == int((batch.edit_kind == EditKind.SUB).sum())  # one row per substitution
    assert int(ins_at.sum()) == len({(b, p) for b, p, k in zip(batch.edit_batch.tolist(), batch.edit_pos.tolist(), batch.edit_kind.tolist()) if k == EditKind.INS})
    assert set(batch.model_inputs()) == {"input_ids", "attention_mask", "t", "sub_logits_at", "ins_logits_at"}


def test_train_step_benchmark_smoke(capsys):
    """The benchmark runs end to end on a small shape and ends with its JSON line (no timing asserted here)."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "train_step.py"
    spec = importlib.util.spec_from_file_location("train_step_benchmark", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    args = ["--batch", "2", "--seq-len", "24", "--warmup", "1", "--steps", "2", "--x0", "masks[length:8]"]
    try:
        benchmark.main(args + ["--collator-batch", "4", "--collator-seconds", "0.2"])
    finally:
        torch.set_flush_denormal(False)  # the benchmark turns it on for its process
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("ours_s", "mlm_s", "mlm_sparse_s", "encoder_s", "ratio", "collator_batches_per_s"):
        assert result[key] > 0, key
    assert result["ratio"] == pytest.approx(result["ours_s"] / result["mlm_s"])
    assert (result["batch"], result["seq_len"], result["x0"], result["device"][:3]) == (2, 24, "masks[length:8]", "cpu")
