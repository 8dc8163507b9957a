"""Views of an Edit Flow decode trace: an animated GIF (PIL + imageio), an ANSI terminal view and HTML.

A trace is the sampler's `DecodeTrace` (`prompt_len`, `initial`, `steps` of `TraceStep`: the tokens after each
changing step, "inserted" / "substituted" indexing them and "deleted" the previous step's tokens), or its dict
form that `pipeline(..., return_trace=True)` returns under "trace"; every view accepts both.

Every view shows a step as one line of tokens: inserted tokens blue, substituted red, deleted tokens
struck through at the place they left, mask tokens grey; BOS and padding are hidden.
"""

import html
from dataclasses import dataclass
from pathlib import Path

from .modeling.edits_editflow import DecodeTrace, TraceStep
from .path.couplings import SPACE_MARKS, marks_spaces

INSERTED_RGB = (31, 111, 235)
SUBSTITUTED_RGB = (209, 36, 47)
DELETED_RGB = (150, 150, 150)
MASK_RGB = (170, 170, 170)
TEXT_RGB = (20, 20, 20)
PROMPT_RGB = (90, 90, 90)
BACKGROUND_RGB = (255, 255, 255)

ANSI = {
    "inserted": "\x1b[34m",
    "substituted": "\x1b[31m",
    "deleted": "\x1b[9;90m",
    "mask": "\x1b[90m",
    "prompt": "\x1b[1m",
    "plain": "",
}
ANSI_RESET = "\x1b[0m"


@dataclass
class Segment:
    """One displayed token: its text, its kind (plain, prompt, inserted, substituted, deleted, mask) and
    whether it attaches to the previous token without a space (a WordPiece "##" or BPE continuation)."""

    text: str
    kind: str
    attach: bool = False


class TokenDisplay:
    """Turns token ids into display pieces for WordPiece (`##`) and byte-level BPE (`Ġ`) / SentencePiece (`▁`)
    tokenizers; special tokens other than the mask (BOS, padding) are hidden."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.mask_token_id = tokenizer.mask_token_id
        hidden = {tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.cls_token_id}
        self.hidden_ids = {i for i in hidden if i is not None}
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.sep_token_id
        self.eos_token_id = eos if eos not in self.hidden_ids else None
        self.space_marked = marks_spaces(tokenizer)

    def piece(self, token_id: int) -> tuple[str, bool] | None:
        """(text, attaches to the previous piece) of one token, None for a hidden one."""
        if token_id in self.hidden_ids:
            return None
        raw = self.tokenizer.convert_ids_to_tokens(int(token_id))
        if raw is None:
            return (f"<{token_id}>", False)
        if token_id == self.mask_token_id or token_id in self.tokenizer.all_special_ids:
            return (raw, False)
        if raw.startswith("##"):
            return (raw[2:], True)
        if self.space_marked:
            if raw.startswith(SPACE_MARKS):
                return (raw[1:], False)
            return (self.tokenizer.convert_tokens_to_string([raw]), True)
        return (raw, False)

    def segment(self, token_id: int, kind: str) -> Segment | None:
        piece = self.piece(token_id)
        if piece is None:
            return None
        if token_id == self.mask_token_id and kind in ("plain", "prompt"):
            kind = "mask"
        return Segment(piece[0], kind, piece[1])


def sequence_segments(display: TokenDisplay, tokens: list[int], prompt_len: int = 0) -> list[Segment]:
    """Plain segments of a sequence (no edit marks), the first `prompt_len` tokens as prompt."""
    segments = (display.segment(t, "prompt" if i < prompt_len else "plain") for i, t in enumerate(tokens))
    return [s for s in segments if s is not None]


def step_segments(display: TokenDisplay, previous: list[int], step: TraceStep, prompt_len: int = 0) -> list[Segment]:
    """Segments of one step: its tokens with insertions / substitutions marked and the previous step's deleted
    tokens placed, struck through, where they were.

    Kept tokens appear in both sequences in the same order, so one walk over the previous tokens places each
    deleted one, and flushes before each kept token the insertions that precede it in the new sequence."""
    inserted, substituted, deleted = set(step.inserted), set(step.substituted), set(step.deleted)
    tokens = step.tokens
    out: list[Segment | None] = []
    new_index = 0
    for old_index, old_token in enumerate(previous):
        if old_index in deleted:
            out.append(display.segment(old_token, "deleted"))
            continue
        while new_index in inserted:
            out.append(display.segment(tokens[new_index], "inserted"))
            new_index += 1
        kind = "substituted" if new_index in substituted else ("prompt" if new_index < prompt_len else "plain")
        out.append(display.segment(tokens[new_index], kind))
        new_index += 1
    out.extend(display.segment(tokens[i], "inserted") for i in range(new_index, len(tokens)))
    return [s for s in out if s is not None]


def final_segments(display: TokenDisplay, tokens: list[int], prompt_len: int, final_text: str | None = None) -> list[Segment]:
    """The final frame: the prompt, then `final_text` (the text the pipeline printed, so that both read the same)
    or, without it, the tokens after the prompt up to the first EOS (where the printed text stops too)."""
    if final_text is not None:
        text = [Segment(final_text, "plain")] if final_text else []
        return sequence_segments(display, tokens[:prompt_len], prompt_len) + text
    generated = list(tokens[prompt_len:])
    if display.eos_token_id in generated:
        generated = generated[: generated.index(display.eos_token_id)]
    return sequence_segments(display, [*tokens[:prompt_len], *generated], prompt_len)


def trace_frames(display: TokenDisplay, trace: DecodeTrace | dict, final_text: str | None = None) -> list[tuple[str, list[Segment]]]:
    """(caption, segments) of every changing step, then the final text without marks (see [`final_segments`])."""
    trace = DecodeTrace.from_dict(trace)
    prompt_len = trace.prompt_len
    previous = trace.initial
    frames = []
    for step in trace.steps:
        caption = f"step {step.step}  t = {step.t:.2f}"
        frames.append((caption, step_segments(display, previous, step, prompt_len)))
        previous = step.tokens
    frames.append(("final", final_segments(display, previous, prompt_len, final_text)))
    return frames


def _join(segments: list[Segment], render) -> str:
    parts = []
    for index, segment in enumerate(segments):
        if index > 0 and not segment.attach:
            parts.append(" ")
        parts.append(render(segment))
    return "".join(parts)


def segments_to_ansi(segments: list[Segment]) -> str:
    """One line with ANSI colours: inserted blue, substituted red, deleted struck through, masks grey."""
    return _join(segments, lambda s: f"{ANSI[s.kind]}{s.text}{ANSI_RESET}" if ANSI[s.kind] else s.text)


def trace_to_ansi(trace: DecodeTrace | dict, tokenizer, final_text: str | None = None) -> str:
    """The whole trace for a terminal: one line per changing step, then the final text (see [`final_segments`])."""
    display = TokenDisplay(tokenizer)
    frames = trace_frames(display, trace, final_text)
    return "\n".join(f"[{caption}] {segments_to_ansi(segments)}" for caption, segments in frames)


HTML_STYLE = {
    "inserted": "color:#1f6feb;font-weight:600",
    "substituted": "color:#d1242f;font-weight:600",
    "deleted": "color:#969696;text-decoration:line-through",
    "mask": "color:#aaaaaa",
    "prompt": "color:#5a5a5a",
    "plain": "",
}


def segments_to_html(segments: list[Segment]) -> str:
    """Inline HTML (escaped) with the same colours as the GIF."""

    def render(segment: Segment) -> str:
        text = html.escape(segment.text)
        style = HTML_STYLE[segment.kind]
        return f'<span class="ef-{segment.kind}" style="{style}">{text}</span>' if style else text

    return '<div class="editflow-step" style="font-family:monospace;line-height:1.6">' + _join(segments, render) + "</div>"


def step_to_html(tokenizer, previous_tokens: list[int], step: TraceStep, prompt_len: int = 0) -> str:
    """HTML of one trace step (e.g. the newest one while iterating the pipeline's steps), given the tokens before it."""
    return segments_to_html(step_segments(TokenDisplay(tokenizer), previous_tokens, step, prompt_len))


def trace_to_html(trace: DecodeTrace | dict, tokenizer, step_index: int | None = None) -> str:
    """HTML of the trace at one step (index into its steps; None = the final text)."""
    trace = DecodeTrace.from_dict(trace)
    display = TokenDisplay(tokenizer)
    if step_index is None:
        return segments_to_html(final_segments(display, trace.final_tokens, trace.prompt_len))
    previous = trace.steps[step_index - 1].tokens if step_index > 0 else trace.initial
    return segments_to_html(step_segments(display, previous, trace.steps[step_index], trace.prompt_len))


def _load_font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _layout(segments: list[Segment], font, width: int, space: float) -> list[list[tuple[float, Segment, float]]]:
    """Greedy line wrapping: lines of (x, segment, text width). A word (a segment and the subword pieces attached to
    it) moves to the next line as a whole when it overflows, unless it alone fills a line."""
    lines: list[list[tuple[float, Segment, float]]] = [[]]
    x = 0.0
    word_start = 0  # index in the current line where the current word begins
    for segment in segments:
        text_width = font.getlength(segment.text)
        gap = 0.0 if (segment.attach or not lines[-1]) else space
        if not segment.attach:
            word_start = len(lines[-1])
        if lines[-1] and x + gap + text_width > width and word_start > 0:
            word = [(seg, w) for _, seg, w in lines[-1][word_start:]]
            del lines[-1][word_start:]
            lines.append([])
            x = 0.0
            for seg, w in word:
                lines[-1].append((x, seg, w))
                x += w
            gap = 0.0 if (segment.attach or not lines[-1]) else space
            word_start = 0 if segment.attach else len(lines[-1])
        lines[-1].append((x + gap, segment, text_width))
        x += gap + text_width
    return lines


def gif_bytes(
    trace: DecodeTrace | dict,
    tokenizer,
    *,
    width: int = 720,
    font_size: int = 16,
    frame_ms: int = 120,
    hold_ms: int = 3000,
    final_text: str | None = None,
) -> tuple[bytes, int]:
    """The trace as an animated GIF in memory: (bytes, number of frames). One frame per step that changed the
    sequence, then one frame of the final text shown for `hold_ms` (identical GIF frames would be merged, so the
    hold is a long frame rather than repeats). Lines wrap at `width` pixels; all frames share the height of the
    tallest. The last frame shows `final_text` after the prompt when given (see [`final_segments`])."""
    import imageio.v3 as iio
    import numpy as np
    from PIL import Image, ImageDraw

    display = TokenDisplay(tokenizer)
    font = _load_font(font_size)
    margin = 12
    line_height = int(font_size * 1.5)
    space = font.getlength(" ")
    frames = trace_frames(display, trace, final_text)
    layouts = [(caption, _layout(segments, font, width - 2 * margin, space)) for caption, segments in frames]
    height = 2 * margin + line_height * (1 + max(len(lines) for _, lines in layouts))
    colours = {
        "inserted": INSERTED_RGB,
        "substituted": SUBSTITUTED_RGB,
        "deleted": DELETED_RGB,
        "mask": MASK_RGB,
        "prompt": PROMPT_RGB,
        "plain": TEXT_RGB,
    }

    images = []
    for caption, lines in layouts:
        image = Image.new("RGB", (width, height), BACKGROUND_RGB)
        draw = ImageDraw.Draw(image)
        draw.text((margin, margin), caption, fill=PROMPT_RGB, font=font)
        for row, line in enumerate(lines, start=1):
            y = margin + row * line_height
            for x, segment, text_width in line:
                colour = colours[segment.kind]
                draw.text((margin + x, y), segment.text, fill=colour, font=font)
                if segment.kind == "deleted":
                    strike_y = y + font_size * 0.55
                    draw.line((margin + x, strike_y, margin + x + text_width, strike_y), fill=colour, width=1)
        images.append(np.asarray(image))
    # Pillow wants a plain number for a single frame
    durations = [frame_ms] * (len(images) - 1) + [hold_ms] if len(images) > 1 else hold_ms
    data = iio.imwrite("<bytes>", np.stack(images), extension=".gif", duration=durations, loop=0, plugin="pillow")
    return data, len(images)


def make_gif(trace: DecodeTrace | dict, tokenizer, path: str | Path = "decode_trace.gif", **options) -> int:
    """Write the trace as an animated GIF (see [`gif_bytes`] for the frames and `options`); return its frame count."""
    data, n_frames = gif_bytes(trace, tokenizer, **options)
    Path(path).write_bytes(data)
    return n_frames


__all__ = [
    "Segment",
    "TokenDisplay",
    "final_segments",
    "gif_bytes",
    "make_gif",
    "segments_to_ansi",
    "segments_to_html",
    "sequence_segments",
    "step_segments",
    "step_to_html",
    "trace_frames",
    "trace_to_ansi",
    "trace_to_html",
]
