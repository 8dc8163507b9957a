"""EditFlowCollator: every row's x_t plus its edits rebuilds x1; shapes, padding, protection, time law, seeding."""

import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from editflow_hf.path.collator import EditFlowCollator
from test_alignment import apply_edits

BOS, MASK, PAD = 101, 103, 0


def make_collator(**kwargs):
    return EditFlowCollator(mask_token_id=MASK, bos_token_id=BOS, pad_token_id=PAD, **kwargs)


def random_features(rng, n=8, max_len=40, prompt=False):
    features = []
    for _ in range(n):
        x1 = [BOS] + rng.integers(1000, 2000, size=rng.integers(0, max_len)).tolist()
        feature = {"input_ids": x1}
        if prompt:
            feature["prompt_len"] = int(rng.integers(1, len(x1) + 1))
        features.append(feature)
    return features


def rows(batch):
    """(x_t, pos, kind, token) of each row, cut out of the padded batch."""
    for b, length in enumerate(batch["attention_mask"].sum(1).tolist()):
        sel = batch["edit_batch"] == b
        yield b, batch["input_ids"][b, :length].numpy(), *(batch[k][sel].numpy() for k in ("edit_pos", "edit_kind", "edit_token"))


@pytest.mark.parametrize("x0_sampler", ["masks[length:16]", "masks[min:0,max:30]", "empty"])
@pytest.mark.parametrize("tie_break", ["spread", "left", "right", "random"])
def test_rows_rebuild_x1(x0_sampler, tie_break):
    rng = np.random.default_rng(0)
    collator = make_collator(x0_sampler=x0_sampler, tie_break=tie_break, seed=1)
    for _ in range(5):
        features = random_features(rng, prompt=True)
        batch = collator(features)
        for b, x_t, pos, kind, token in rows(batch):
            x1, prompt_len = features[b]["input_ids"], features[b]["prompt_len"]
            assert apply_edits(x_t, pos, kind, token) == x1
            assert x_t[:prompt_len].tolist() == x1[:prompt_len]
            assert (pos[kind != 2] >= prompt_len).all() and (pos[kind == 2] >= prompt_len - 1).all()
            assert set(x_t[prompt_len:].tolist()) <= set(x1[prompt_len:]) | {MASK}
            if x0_sampler == "empty":
                assert (kind == 2).all()


def test_output_layout():
    rng = np.random.default_rng(1)
    features = random_features(rng, n=6)
    batch = make_collator(seed=0, pad_to_multiple_of=8)(features)
    assert set(batch) == {"input_ids", "attention_mask", "t", "x1_len", "prompt_len", "edit_batch", "edit_pos", "edit_kind", "edit_token", "edit_prop_rate"}
    for key in ("input_ids", "attention_mask", "prompt_len", "edit_batch", "edit_pos", "edit_kind", "edit_token"):
        assert batch[key].dtype == torch.long, key
    assert batch["t"].dtype == batch["x1_len"].dtype == torch.float32
    n, width = batch["input_ids"].shape
    assert n == 6 and width % 8 == 0
    lengths = batch["attention_mask"].sum(1)
    assert width - 8 < lengths.max() <= width
    assert (batch["attention_mask"] == (torch.arange(width)[None] < lengths[:, None])).all()
    assert (batch["input_ids"][batch["attention_mask"] == 0] == PAD).all()
    assert (batch["input_ids"][:, 0] == BOS).all()
    assert batch["x1_len"].tolist() == [len(f["input_ids"]) for f in features]
    assert batch["prompt_len"].tolist() == [1] * 6
    assert (batch["edit_pos"] < lengths[batch["edit_batch"]]).all()
    assert (batch["edit_batch"].diff() >= 0).all()


def test_time_law_and_remaining_edit_count():
    """t ~ U[0, 1 - eps); each of the max(N, M) unmatched columns stays an edit with probability 1 - kappa(t)."""
    collator = make_collator(x0_sampler="masks[length:20]", scheduler="cosine", time_epsilon=0.2, seed=3)
    x1 = [BOS] + list(range(1000, 1040))
    t, edits = [], []
    for _ in range(40):
        batch = collator([{"input_ids": x1}] * 32)
        t.append(batch["t"])
        edits.append(torch.bincount(batch["edit_batch"], minlength=32))
    t, edits = torch.cat(t).double(), torch.cat(edits).double()
    assert t.min() >= 0 and t.max() < 0.8 and abs(t.mean().item() - 0.4) < 0.02
    expected = 40 * torch.cos(0.5 * torch.pi * t)  # (1 - kappa(t)) * max(N, M) for the cosine schedule
    assert abs(edits.sum() / expected.sum() - 1) < 0.02
    early, late = t < 0.3, t > 0.5
    assert edits[early].mean() > edits[late].mean()


def test_seeding_reproducible_and_pickles():
    features = random_features(np.random.default_rng(2))
    a, b = make_collator(seed=5), make_collator(seed=5)
    for _ in range(2):
        batch_a, batch_b = a(features), b(features)
        assert all(torch.equal(batch_a[k], batch_b[k]) for k in batch_a)
    torch.manual_seed(11)
    unseeded = make_collator()(features)
    torch.manual_seed(11)
    assert torch.equal(make_collator()(features)["t"], unseeded["t"])
    clone = pickle.loads(pickle.dumps(a))
    assert clone._rng is None and torch.equal(clone(features)["t"], make_collator(seed=5)(features)["t"])


class _Repeat(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, index):
        return {"input_ids": [BOS] + list(range(1000, 1030))}


@pytest.mark.parametrize("seed", [None, 4])
def test_workers_draw_different_streams(seed):
    collator = make_collator(seed=seed)
    collator([{"input_ids": [BOS, 1000]}])  # an rng made in the parent must not be inherited by the workers
    loader = torch.utils.data.DataLoader(_Repeat(), batch_size=4, num_workers=2, collate_fn=collator)
    first, second = (batch["t"] for batch in loader)
    assert not torch.equal(first, second)


def test_from_tokenizer(minilm_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    collator = EditFlowCollator.from_tokenizer(tokenizer, x0_sampler="masks[length:8]", seed=0)
    assert (collator.mask_token_id, collator.bos_token_id, collator.pad_token_id) == (
        tokenizer.mask_token_id,
        tokenizer.cls_token_id,
        tokenizer.pad_token_id,
    )
    ids = [tokenizer.cls_token_id] + tokenizer("to be or not to be", add_special_tokens=False)["input_ids"]
    batch = collator([{"input_ids": ids}])
    assert batch["input_ids"][0, 0] == tokenizer.cls_token_id


def test_errors():
    no_mask = SimpleNamespace(mask_token_id=None, bos_token_id=None, cls_token_id=101, pad_token_id=0)
    with pytest.raises(ValueError, match="no mask token"):
        EditFlowCollator.from_tokenizer(no_mask)
    no_pad = SimpleNamespace(mask_token_id=103, bos_token_id=None, cls_token_id=101, pad_token_id=None)
    with pytest.raises(ValueError, match="pad token"):
        EditFlowCollator.from_tokenizer(no_pad)
    with pytest.raises(ValueError, match="mask_token_id"):
        EditFlowCollator(mask_token_id=None, bos_token_id=BOS, pad_token_id=PAD)
    with pytest.raises(ValueError, match="tie_break must be one of"):
        make_collator(tie_break="middle")
    with pytest.raises(ValueError, match="Valid forms"):
        make_collator(x0_sampler="masks[len:3]")
    with pytest.raises(ValueError, match="valid names"):
        make_collator(scheduler="quadratic")
    collator = make_collator(seed=0)
    with pytest.raises(ValueError, match="add_special_tokens=False"):
        collator([{"input_ids": [1000, 1001]}])
    with pytest.raises(ValueError, match="prompt_len"):
        collator([{"input_ids": [BOS, 1000], "prompt_len": 0}])
    with pytest.raises(ValueError, match="'input_ids'"):
        collator([[BOS, 1000]])
    with pytest.raises(ValueError, match="empty list"):
        collator([])
