"""x0 sampler specs: parsing, the counts they produce, and one clear error for every bad spec."""

import pickle

import numpy as np
import pytest

from editflow_hf.path.couplings import EmptyX0, FixedMasks, UniformMasks, X0Sampler, parse_x0_sampler


def test_fixed_masks():
    sampler = parse_x0_sampler("masks[length:64]")
    assert isinstance(sampler, FixedMasks) and sampler.length == 64
    rng = np.random.default_rng(0)
    assert {sampler(n, rng) for n in (0, 5, 500)} == {64}
    assert parse_x0_sampler(" masks[ length : 0 ] ")(10, rng) == 0


def test_empty():
    sampler = parse_x0_sampler("empty")
    assert isinstance(sampler, EmptyX0)
    assert sampler(100, np.random.default_rng(0)) == 0
    assert isinstance(parse_x0_sampler("empty[]"), EmptyX0)


def test_uniform_masks_covers_its_range_inclusively():
    sampler = parse_x0_sampler("masks[min:8,max:12]")
    assert isinstance(sampler, UniformMasks)
    rng = np.random.default_rng(0)
    counts = [sampler(50, rng) for _ in range(500)]
    assert set(counts) == set(range(8, 13))
    assert parse_x0_sampler("masks[max:5, min:5]")(3, rng) == 5


def test_spec_round_trip_and_passthrough():
    for spec in ("masks[length:64]", "masks[min:8,max:64]", "empty"):
        sampler = parse_x0_sampler(spec)
        assert sampler.spec == spec and parse_x0_sampler(sampler.spec) == sampler
        assert parse_x0_sampler(sampler) is sampler
        assert pickle.loads(pickle.dumps(sampler)) == sampler
    assert isinstance(parse_x0_sampler("masks[length:4]"), X0Sampler)


@pytest.mark.parametrize(
    "spec, why",
    [
        ("noise[length:64]", "unknown sampler name 'noise'"),
        ("masks[size:64]", "unknown argument"),
        ("masks[length:64,max:3]", "needs either length, or both min and max"),
        ("masks[min:8]", "needs either length, or both min and max"),
        ("masks", "needs either length, or both min and max"),
        ("masks[min:9,max:8]", "must not exceed max"),
        ("masks[length:-1]", "must be >= 0"),
        ("masks[length:abc]", "must be an integer"),
        ("masks[length64]", "not of the form key:value"),
        ("masks[length:1,length:2]", "given twice"),
        ("empty[length:3]", "takes no arguments"),
        ("masks[length:64", "cannot parse"),
        ("", "cannot parse"),
    ],
)
def test_bad_specs_name_the_valid_forms(spec, why):
    with pytest.raises(ValueError) as err:
        parse_x0_sampler(spec)
    message = str(err.value)
    assert why in message
    for form in ("masks[length:N]", "masks[min:A,max:B]", "empty"):
        assert form in message


def test_non_string_spec():
    with pytest.raises(ValueError, match="expected a string"):
        parse_x0_sampler(64)
