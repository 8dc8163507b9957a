"""The first ten minutes (issue R, item 5): the quickstart prints a time estimate measured on this machine before it
trains, draws the logged loss as a PNG beside the GIF, and ends with a summary of where the model, GIF, plot and judged
figure are; the Space shows examples that fit the loaded checkpoint (a chat question only for a chat model)."""

import json
import math
import re
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

from editflow_hf.training import progress


def history(losses, every=20, summary=True):
    """A trainer_state.json log_history: one entry per logged step, then the Trainer's closing summary."""
    entries = [{"loss": loss, "grad_norm": 1.0, "learning_rate": 3e-4, "epoch": 0.01 * i, "step": every * (i + 1)}
               for i, loss in enumerate(losses)]  # fmt: skip
    if summary:
        entries.append({"train_runtime": 10.0, "train_loss": sum(losses) / len(losses), "step": every * len(losses)})
    return entries


def curve_pixels(png):
    """The (x, y) pixels drawn in the curve's colour."""
    from PIL import Image

    with Image.open(png) as opened:
        assert opened.format == "PNG"
        image = opened.convert("RGB")
    pixels = image.load()
    return image, [(x, y) for x in range(image.width) for y in range(image.height) if pixels[x, y] == progress.LINE]


def assert_is_a_loss_plot(png, falling=True):
    """A real plot: a PNG of a plot's size, text and axes drawn (dark pixels), and a curve spanning the plot area
    that (for a falling loss) sits higher on the left than on the right."""
    image, curve = curve_pixels(png)
    assert image.size == (720, 420)
    dark = sum(1 for pixel in image.getdata() if max(pixel) < 120)
    assert dark > 500, "no axes or labels drawn"
    assert len(curve) > 200, "no curve drawn"
    xs = [x for x, _ in curve]
    assert max(xs) - min(xs) > 0.5 * image.width, "the curve does not span the plot"
    if falling:
        left = [y for x, y in curve if x < min(xs) + 20]
        right = [y for x, y in curve if x > max(xs) - 20]
        assert sum(left) / len(left) < sum(right) / len(right), "a falling loss must be drawn falling (y grows down)"


def test_loss_curve_is_a_plot_of_the_logged_losses(tmp_path):
    losses = [10.7 * math.exp(-i / 6) + 7 for i in range(15)]  # 15 points, as 300 steps logged every 20
    state = tmp_path / "trainer_state.json"
    state.write_text(json.dumps({"log_history": history(losses)}))
    png = progress.plot_loss_curve(state, tmp_path / "loss_curve.png")
    assert png.exists()
    assert_is_a_loss_plot(png)
    # the folder holding trainer_state.json works too; the Trainer's summary line is not a point of the curve
    assert progress.loss_points(progress.read_log_history(tmp_path)) == [(20 * (i + 1), v) for i, v in enumerate(losses)]


def test_a_rising_loss_is_drawn_rising_and_one_point_is_still_a_plot(tmp_path):
    png = progress.plot_loss_curve({"log_history": history([1.0, 2.0, 3.0, 4.0])}, tmp_path / "up.png")
    image, curve = curve_pixels(png)
    xs = [x for x, _ in curve]
    assert sum(y for x, y in curve if x < min(xs) + 20) > sum(y for x, y in curve if x > max(xs) - 20) / 2
    one = progress.plot_loss_curve({"log_history": history([5.0], summary=False)}, tmp_path / "one.png")
    assert len(curve_pixels(one)[1]) > 10  # the point is drawn


def test_no_logged_loss_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no training loss was logged"):
        progress.plot_loss_curve({"log_history": [{"train_loss": 3.0, "step": 3}]}, tmp_path / "x.png")
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "training" / "quickstart_report.py"), "plot",
                           str(tmp_path / "missing.json"), str(tmp_path / "x.png")],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 1 and proc.stderr.startswith("quickstart: no loss curve:") and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("low, high", [(7.2, 10.7), (0.0031, 0.33), (0, 300), (5.0, 5.0), (-1, 1)])
def test_ticks_cover_the_range_with_round_steps(low, high):
    ticks = progress.nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and 2 <= len(ticks) <= 8
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1


def test_estimate_adds_up_the_measured_parts():
    speed = progress.Speed(startup=8.0, train_step=0.5, sample_step=0.05)
    parts = progress.estimate_seconds(speed, steps=300, sample_steps=50, judge=False)
    assert parts == {"training": 16 + 150, "sampling": 8 + 2.5}
    lines = progress.estimate_lines(speed, steps=300, sample_steps=50, judge=True)
    assert lines[0] == "quickstart: measured on this machine now: 0.50 s per training step, 50 ms per sampling step, 8 s to load"
    total = 16 + 150 + 8 + 2.5 + 24 + progress.JUDGE_SAMPLE_STEPS * 0.05
    assert lines[1].startswith(f"quickstart: estimate: about {progress.format_duration(total)} in all (training 2 min 46 s")
    assert "judging" in lines[1] and "300 training steps" in lines[1]
    assert progress.format_duration(59.6) == "1 min 00 s" and progress.format_duration(3725) == "1 h 02 min"


def test_measure_speed_times_real_steps_of_the_model(tiny_editflow_dir, shared_data):
    speed = progress.measure_speed(tiny_editflow_dir, shared_data / "tiny-shakespeare.txt", batch_size=4, max_length=32,
                                   x0_sampler="masks[length:8]", steps=2)  # fmt: skip
    for value in (speed.startup, speed.train_step, speed.sample_step):
        assert 0 < value < 60


# ----------------------------------------------------------------------------------------------- the quickstart run


@pytest.mark.slow
def test_quickstart_prints_an_estimate_draws_the_loss_and_ends_with_a_summary():
    """The README's quickstart command, run at tiny scale by tests/test_readme.py (STEPS=3, JUDGE=0): the estimate
    comes before training, the PNG beside the GIF is a plot of trainer_state.json's losses, the summary names each
    output, and each named file exists."""
    from test_readme import run_block, sandbox

    out = run_block("Quickstart #1").stdout
    lines = out.splitlines()
    estimate = next(i for i, line in enumerate(lines) if line.startswith("quickstart: estimate: about "))
    training = next(i for i, line in enumerate(lines) if line.startswith("pt.py: rank 0"))
    assert estimate < training, "the estimate must come before training"
    assert re.search(r"measured on this machine now: [\d.]+ s per training step", lines[estimate - 1])
    assert "3 training steps" in lines[estimate]

    root = sandbox()
    summary = out[out.index("quickstart: done in ") :]
    assert re.match(r"quickstart: done in \d+ min \d\d s \(estimated before training: ", summary)
    fields = dict(re.findall(r"^  (model|decode GIF|loss curve|judged figure): +(\S+)", summary, flags=re.M))
    assert fields == {"model": ".models/quickstart/MiniLM/tiny-shakespeare/checkpoint-final", "decode GIF": "decode_trace.gif",
                      "loss curve": "loss_curve.png", "judged figure": "skipped"}  # fmt: skip
    model = root / fields["model"]
    assert (model / "config.json").exists() and (root / "decode_trace.gif").exists()
    assert f"(the numbers: {fields['model']}/trainer_state.json, log_history)" in summary
    assert_is_a_loss_plot(root / "loss_curve.png", falling=False)
    logged = progress.loss_points(progress.read_log_history(model))
    assert len(logged) == 3  # a short run logs every step


# ----------------------------------------------------------------------------------------------- the Space's examples


@pytest.fixture(scope="module")
def space_app():
    import importlib.util

    spec = importlib.util.spec_from_file_location("editflow_space_app_examples", REPO_ROOT / "space" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_space_examples_fit_the_checkpoint(space_app, tiny_editflow_dir):
    from builders import make_pipe

    generator = make_pipe(tiny_editflow_dir)
    space = space_app.EditFlowSpace(generator, "tiny")
    prompts = lambda: [(row[0], row[5]) for row in space.examples()]  # noqa: E731
    # a pretrained (or only converted) model: no chat question, no edit example
    assert not generator.generation_config.chat_template
    assert prompts() == [("Once upon a time", "prompt"), ("", "prompt"), ("To be or [MASK] [MASK] be, that is the [MASK].", "infill")]
    # fine-tuned on chats (sft writes chat_template=True): the question; trained to revise: the edit example
    generator.generation_config.chat_template = True
    generator.model.config.x0_sampler = "0.5*masks[length:64] + 0.5*corrupt[p:0.2]"
    assert [p for p, _ in prompts()][0] == "Could you please write a poem for me?"
    assert prompts()[-1] == ("The quick brown fox jump over the the lazy dog.", "edit")
    generator.model.config.x0_sampler = "masks[length:64]"
    assert "edit" not in [mode for _, mode in prompts()]
    # every example row fills the Space's seven inputs at the checkpoint's defaults
    for row in space.examples():
        assert len(row) == 7 and row[1] == space.defaults["tau"]
    space.build()  # the page builds with them
