"""The judge's length-matched scale (`ReferenceLM.length_matched_scale`): samples beside real text and shuffled
real words of the samples' own token lengths, and where the samples sit between them. A tiny random Llama as the
judge (the figures mean nothing; the windows, the counts and the arithmetic are what is checked)."""

import math

import pytest

from editflow_hf.causal_lm import ReferenceLM, describe_scale, load_causal_lm, place_on_scale

from tiny_decoders import build_tiny_causal_lm, corpus


@pytest.fixture(scope="module")
def judge(tmp_path_factory) -> ReferenceLM:
    model, tokenizer = load_causal_lm(str(build_tiny_causal_lm("llama", tmp_path_factory.mktemp("judge"))))
    return ReferenceLM(model, tokenizer)


REFERENCE = corpus(n_words=400, seed=1).splitlines()


def test_each_real_window_is_whole_words_and_the_fewest_that_reach_the_samples_length(judge):
    samples = ["the cat", "a b c d e f g h i j k l", "and so on and so forth until the end of it all, once more"]
    lengths = [judge.token_length(text) for text in samples]
    windows = judge.real_windows(REFERENCE, lengths, seed=3)
    stream = " ".join(" ".join(REFERENCE).split())
    assert len(windows) == len(samples)
    for window, length in zip(windows, lengths):
        assert f" {window} " in f" {stream} "  # a run of whole words of the reference
        words = window.split()
        assert judge.token_length(window) >= length or stream.endswith(window)
        assert len(words) == 1 or judge.token_length(" ".join(words[:-1])) < length  # no longer than needed
    assert judge.real_windows(REFERENCE, lengths, seed=3) == windows  # seeded
    assert judge.real_windows(REFERENCE, lengths, seed=4) != windows


def test_the_scale_scores_samples_real_and_shuffled_windows_of_the_same_count_and_length(judge):
    samples = ["the king said", "", "to be or not to be that is the question", "and the queen"]
    scale = judge.length_matched_scale(samples, REFERENCE, seed=0)
    scored = [text for text in samples if text]  # an empty sample has no length to match
    real = judge.real_windows(REFERENCE, [judge.token_length(text) for text in scored], seed=0)
    assert scale["texts"] == len(scored) == 3
    assert scale["samples"] == pytest.approx(judge.perplexity(samples))  # = generative perplexity
    assert scale["tokens"] == sum(judge.token_length(text) for text in scored)
    assert scale["samples"] == pytest.approx(judge.perplexity(scored))
    assert scale["real"] == pytest.approx(judge.perplexity(real))
    # shuffled: window i's own words in the order of random.Random(seed + i)
    import random

    shuffled = []
    for index, window in enumerate(real):
        words = window.split()
        random.Random(index).shuffle(words)
        assert sorted(words) == sorted(window.split()) and words != window.split()
        shuffled.append(" ".join(words))
    assert scale["shuffled"] == pytest.approx(judge.perplexity(shuffled)) != scale["real"]
    assert scale["place"] == pytest.approx(place_on_scale(scale["samples"], scale["real"], scale["shuffled"]))


def test_the_place_is_zero_at_real_text_one_at_shuffled_words_and_log_linear_between():
    assert place_on_scale(100, 100, 900) == 0
    assert place_on_scale(900, 100, 900) == pytest.approx(1)
    assert place_on_scale(300, 100, 900) == pytest.approx(0.5)  # sqrt(100 * 900): halfway in log perplexity
    assert place_on_scale(3300, 118, 877) == pytest.approx(math.log(3300 / 118) / math.log(877 / 118))
    assert math.isnan(place_on_scale(float("nan"), 100, 900)) and math.isnan(place_on_scale(5, 100, 100))


def test_the_figure_in_words_says_where_the_samples_sit():
    assert "worse than shuffled words" in describe_scale({"samples": 3300, "real": 118, "shuffled": 877, "place": place_on_scale(3300, 118, 877)})
    assert "50% of the way from real text to shuffled words" in describe_scale({"samples": 300, "real": 100, "shuffled": 900, "place": 0.5})
    assert "below real text" in describe_scale({"samples": 50, "real": 100, "shuffled": 900, "place": place_on_scale(50, 100, 900)})


def test_no_reference_text_is_one_line(judge):
    from editflow_hf.errors import EditFlowError

    with pytest.raises(EditFlowError, match="reference texts are empty"):
        judge.length_matched_scale(["the king said"], ["", "  "])
