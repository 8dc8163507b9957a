"""What a person watching a run sees besides the log lines: a time estimate measured on this machine before training
starts (`measure_speed`, `estimate_lines`), and the loss curve of a finished run drawn from its trainer_state.json
(`plot_loss_curve`, with Pillow: matplotlib is not a dependency)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

# ----------------------------------------------------------------------------------------------- the loss curve

BACKGROUND = (255, 255, 255)
INK = (40, 40, 40)
GRID = (225, 225, 225)
LINE = (31, 119, 180)


def loss_points(log_history: list[dict]) -> list[tuple[int, float]]:
    """(step, loss) of every logged training loss (the Trainer's closing `train_loss` summary is not a point)."""
    points = []
    for entry in log_history:
        if "loss" in entry and "step" in entry and math.isfinite(float(entry["loss"])):
            points.append((int(entry["step"]), float(entry["loss"])))
    return points


def read_log_history(trainer_state: str | Path | dict) -> list[dict]:
    """The `log_history` of a trainer_state.json (a file, a folder holding one, or the parsed dict)."""
    if not isinstance(trainer_state, dict):
        path = Path(trainer_state)
        if path.is_dir():
            path = path / "trainer_state.json"
        trainer_state = json.loads(path.read_text(encoding="utf-8"))
    return list(trainer_state.get("log_history", []))


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round values (1, 2, 2.5, 5 x 10^k apart) covering [low, high]."""
    if not high > low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(1, count - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.floor(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(value, 10))
    return ticks


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.2g}"


def plot_loss_curve(trainer_state: str | Path | dict, png: str | Path, *, size: tuple[int, int] = (720, 420),
                    title: str = "training loss") -> Path:  # fmt: skip
    """Draw the logged training losses of `trainer_state` (see `read_log_history`) against the step as a PNG: axes
    with round ticks, a light grid, the curve and its points. Raises ValueError when no loss was logged."""
    from PIL import Image, ImageDraw

    points = loss_points(read_log_history(trainer_state))
    if not points:
        raise ValueError("no training loss was logged (trainer_state.json's log_history holds no 'loss' entry)")
    width, height = size
    image = Image.new("RGB", size, BACKGROUND)
    draw = ImageDraw.Draw(image)
    font, small = _font(16), _font(13)
    left, right, top, bottom = 70, width - 24, 44, height - 52  # the plot area

    steps = [s for s, _ in points]
    losses = [v for _, v in points]
    x_ticks = nice_ticks(min(0, min(steps)), max(steps) if max(steps) > 0 else 1)
    y_ticks = nice_ticks(min(losses), max(losses))
    x_low, x_high = x_ticks[0], x_ticks[-1]
    y_low, y_high = y_ticks[0], y_ticks[-1]

    def xy(step: float, loss: float) -> tuple[float, float]:
        x = left + (step - x_low) / (x_high - x_low) * (right - left)
        y = bottom - (loss - y_low) / (y_high - y_low) * (bottom - top)
        return x, y

    for value in y_ticks:
        _, y = xy(x_low, value)
        draw.line([(left, y), (right, y)], fill=GRID)
        draw.text((left - 8, y), _label(value), fill=INK, font=small, anchor="rm")
    for value in x_ticks:
        x, _ = xy(value, y_low)
        draw.line([(x, top), (x, bottom)], fill=GRID)
        draw.text((x, bottom + 6), _label(value), fill=INK, font=small, anchor="mt")
    draw.rectangle([left, top, right, bottom], outline=INK)
    draw.text((width / 2, 14), f"{title} ({len(points)} logged steps, last {losses[-1]:.3g})", fill=INK, font=font, anchor="mt")
    draw.text(((left + right) / 2, height - 8), "step", fill=INK, font=small, anchor="mb")
    draw.text((8, (top + bottom) / 2), "loss", fill=INK, font=small, anchor="lm")

    line = [xy(s, v) for s, v in points]
    if len(line) > 1:
        draw.line(line, fill=LINE, width=3, joint="curve")
    for x, y in line:
        draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=LINE)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    image.save(png, format="PNG")
    return png


# ----------------------------------------------------------------------------------------------- the estimate


@dataclass
class Speed:
    """Seconds measured on this machine: loading (imports and the model, paid by every command), one optimizer step
    of training at the run's batch and length, one sampling step (a forward of one sequence)."""

    startup: float
    train_step: float
    sample_step: float


def measure_speed(model_dir: str | Path, data_file: str | Path, *, batch_size: int, max_length: int, x0_sampler: str,
                  learning_rate: float = 3e-4, steps: int = 3, started: float | None = None) -> Speed:  # fmt: skip
    """Time `steps` training steps (after one warm-up step) of the model at `model_dir` on blocks of `data_file`, as
    pt.py builds them (BOS + max_length - 1 tokens), with `x0_sampler`, and one sampling forward; `started` is the
    perf_counter value at which this process began (default: now, before the imports)."""
    started = time.perf_counter() if started is None else started
    import torch
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from ..path.collator import EditFlowCollator
    from ..registration import register

    register()  # the Edit Flow classes with the Auto classes: the folder loads as pt.py loads it
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # no "sequence longer than the model" line: the text is cut into blocks below
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModel.from_pretrained(model_dir)
    finally:
        hf_logging.set_verbosity(verbosity)
    startup = time.perf_counter() - started

    text = Path(data_file).read_text(encoding="utf-8")[: 8 * batch_size * max_length * 4]
    hf_logging.set_verbosity_error()
    try:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    finally:
        hf_logging.set_verbosity(verbosity)
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.cls_token_id
    width = max_length - 1
    blocks = [[bos, *ids[i : i + width]] for i in range(0, max(1, len(ids) - width), width)] or [[bos, *ids]]
    features = [{"input_ids": blocks[i % len(blocks)], "prompt_len": 1} for i in range(batch_size)]
    collator = EditFlowCollator.from_tokenizer(tokenizer, x0_sampler=x0_sampler, seed=0)

    from ..objective.loss import EditFlowLoss

    loss_fn = EditFlowLoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        batch = collator(features)
        loss = loss_fn(model(**batch.model_inputs()), batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    train_step = sorted(times[1:])[len(times[1:]) // 2]  # the median, the warm-up step left out

    model.eval()
    x0 = batch.model_inputs()["input_ids"][:1]
    with torch.no_grad():
        model(x0, torch.ones_like(x0))
        start = time.perf_counter()
        for _ in range(3):
            model(x0, torch.ones_like(x0))
        sample_step = (time.perf_counter() - start) / 3
    return Speed(startup=startup, train_step=train_step, sample_step=sample_step)


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def estimate_seconds(speed: Speed, *, steps: int, sample_steps: int, judge: bool) -> dict[str, float]:
    """The parts of a quickstart run, in seconds: training (pt.py: its start and data preparation, then `steps`
    steps), sampling (editflow-sample: its start, then `sample_steps` forwards) and the judge (three starts, then what
    JUDGE_SAMPLE_STEPS sampling forwards cost: editflow-eval's bound and samples, loading SmolLM2 and its scores)."""
    parts = {
        "training": 2 * speed.startup + steps * speed.train_step,  # pt.py loads the model and prepares the data
        "sampling": speed.startup + sample_steps * speed.sample_step,
    }
    if judge:
        parts["judging"] = 3 * speed.startup + JUDGE_SAMPLE_STEPS * speed.sample_step
    return parts


# The judged figure (benchmarks/quickstart_defaults.py --judge) in sampling forwards of the quickstart model, measured
# on the 2-core dev machine (2026-12-07, load average 12): the judge took 964 s where a sampling step took 1.83 s and
# loading took 27 s, (964 - 3 x 27) / 1.83 = 482.
JUDGE_SAMPLE_STEPS = 480


def estimate_lines(speed: Speed, *, steps: int, sample_steps: int, judge: bool) -> list[str]:
    """The estimate the quickstart prints before training: the measured speeds and the time of each part."""
    parts = estimate_seconds(speed, steps=steps, sample_steps=sample_steps, judge=judge)
    total = sum(parts.values())
    return [
        f"quickstart: measured on this machine now: {speed.train_step:.2f} s per training step, "
        f"{speed.sample_step * 1000:.0f} ms per sampling step, {speed.startup:.0f} s to load",
        "quickstart: estimate: about " + format_duration(total) + " in all ("
        + ", ".join(f"{name} {format_duration(seconds)}" for name, seconds in parts.items())
        + f"; {steps} training steps)",
    ]
