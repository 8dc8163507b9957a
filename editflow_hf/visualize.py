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
        words = [Segment(word, "plain") for word in final_text.split()]  # one per word, so the frame wraps
        return sequence_segments(display, tokens[:prompt_len], prompt_len) + words
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


MISSING_GLYPH = "?"  # drawn for a character that no font on this machine has
MISSING_NOTE = f"({MISSING_GLYPH}: a character no font here draws)"
# Fonts tried after Pillow's default (Latin) for the characters it lacks, by file name (found on the font path):
# DejaVu Sans has Arabic, Hebrew, Greek and Cyrillic. Other characters (CJK...) take a font fontconfig names for them.
FALLBACK_FONT_FILES = ("DejaVuSans.ttf",)


class GlyphFonts:
    """The fonts a GIF draws with, at one size: Pillow's default, then [`FALLBACK_FONT_FILES`], then for a character
    none of them has, a font fontconfig (`fc-list`) names for it. `runs(text)` splits a text into runs of one font;
    a character no font draws becomes [`MISSING_GLYPH`] (counted in `missing`), never a missing-glyph box."""

    def __init__(self, size: int):
        from PIL import ImageFont

        self.size = size
        try:
            self.fonts = [ImageFont.load_default(size=size)]
        except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
            self.fonts = [ImageFont.load_default()]
        for name in FALLBACK_FONT_FILES:
            self._add(name)
        self._font_of: dict[str, int | None] = {}
        self._notdef: dict[int, bytes] = {}
        self.missing = 0

    def _add(self, path: str) -> bool:
        from PIL import ImageFont

        try:
            self.fonts.append(ImageFont.truetype(path, self.size))
            return True
        except OSError:
            return False

    def _has(self, index: int, char: str) -> bool:
        """Whether font `index` has a glyph for `char` (its drawing differs from the font's missing-glyph box)."""
        font = self.fonts[index]
        if index not in self._notdef:
            self._notdef[index] = bytes(font.getmask("\U0010fffd"))
        return bytes(font.getmask(char)) != self._notdef[index]

    def font_index(self, char: str) -> int | None:
        """The first font that draws `char` (a space or control character: the default), None when none does."""
        if char not in self._font_of:
            if not char.isprintable() or char.isspace():
                self._font_of[char] = 0
            else:
                found = next((i for i in range(len(self.fonts)) if self._has(i, char)), None)
                if found is None and self._add(_fontconfig_file(char) or ""):
                    found = len(self.fonts) - 1 if self._has(len(self.fonts) - 1, char) else None
                self._font_of[char] = found
        return self._font_of[char]

    def runs(self, text: str) -> list[tuple[str, object]]:
        """`text` as (text, font) runs; characters no font draws are [`MISSING_GLYPH`] in the default font."""
        runs: list[tuple[str, int]] = []
        for char in text:
            index = self.font_index(char)
            if index is None:
                self.missing += 1
                char, index = MISSING_GLYPH, 0
            if runs and runs[-1][1] == index:
                runs[-1] = (runs[-1][0] + char, index)
            else:
                runs.append((char, index))
        return [(run, self.fonts[index]) for run, index in runs]


def _fontconfig_file(char: str) -> str | None:
    """A font file fontconfig says has `char` (None without fontconfig or such a font)."""
    import shutil
    import subprocess

    if shutil.which("fc-list") is None:
        return None
    try:
        found = subprocess.run(["fc-list", f":charset={ord(char):x}", "file"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    files = sorted(line.strip().rstrip(":") for line in found.stdout.splitlines() if line.strip())
    return files[0] if files else None


@dataclass
class Piece:
    """A laid-out run of one segment in one font: where it starts on its line and how wide it is."""

    x: float
    segment: Segment
    text: str
    font: object
    width: float


def _pieces(segment: Segment, fonts: GlyphFonts) -> list[tuple[Segment, str, object, float]]:
    """(segment, text, font, width) of each font run of a segment; runs after the first attach to it."""
    runs = fonts.runs(segment.text) or [("", fonts.fonts[0])]
    return [(segment, text, font, font.getlength(text)) for text, font in runs]


def _char_chunks(segment, text, font, width: float) -> list[tuple[Segment, str, object, float]]:
    """A run wider than a line, cut into chunks that each fit (at least one character each)."""
    chunks, current = [], ""
    for char in text:
        if current and font.getlength(current + char) > width:
            chunks.append(current)
            current = ""
        current += char
    chunks.append(current)
    return [(segment, chunk, font, font.getlength(chunk)) for chunk in chunks]


def _layout(segments: list[Segment], fonts: GlyphFonts, width: int, space: float) -> list[list[Piece]]:
    """Greedy line wrapping: lines of [`Piece`]. A word (a segment and the subword pieces attached to it) moves to
    the next line as a whole when it overflows; a word wider than a whole line is cut between characters."""
    lines: list[list[Piece]] = [[]]
    x = 0.0
    word_start = 0  # index in the current line where the current word begins
    for segment in segments:
        for number, (seg, text, font, text_width) in enumerate(_pieces(segment, fonts)):
            attach = segment.attach or number > 0
            if not attach:
                word_start = len(lines[-1])
            for chunk in _char_chunks(seg, text, font, width) if text_width > width else [(seg, text, font, text_width)]:
                gap = 0.0 if (attach or not lines[-1]) else space
                if lines[-1] and x + gap + chunk[3] > width:
                    word = lines[-1][word_start:] if word_start > 0 else []
                    del lines[-1][len(lines[-1]) - len(word) :]
                    lines.append([])
                    x = 0.0
                    for piece in word:
                        lines[-1].append(Piece(x, piece.segment, piece.text, piece.font, piece.width))
                        x += piece.width
                    gap = 0.0 if (attach or not lines[-1]) else space
                    word_start = 0
                lines[-1].append(Piece(x + gap, *chunk))
                x += gap + chunk[3]
                attach = True  # the chunks of a cut word follow each other
    return [_visual_order(_merged(line)) for line in lines]


def _merged(line: list[Piece]) -> list[Piece]:
    """Adjacent pieces of one word in the same font and colour drawn as one text, so a script that joins its
    letters (Arabic) is shaped across its sub-word pieces."""
    out: list[Piece] = []
    end = None  # where the last piece ended as laid out (a merged text's own width may differ)
    for piece in line:
        last = out[-1] if out else None
        if last and last.font is piece.font and last.segment.kind == piece.segment.kind and piece.x == end:
            merged = last.text + piece.text
            out[-1] = Piece(last.x, last.segment, merged, last.font, last.font.getlength(merged))
        else:
            out.append(piece)
        end = piece.x + piece.width
    return out


def _is_rtl(text: str) -> bool:
    """Whether the first strongly directional character of `text` is right-to-left (Arabic, Hebrew...)."""
    import unicodedata

    kinds = (unicodedata.bidirectional(char) for char in text)
    return next((kind in ("R", "AL") for kind in kinds if kind in ("L", "R", "AL")), False)


def _visual_order(line: list[Piece]) -> list[Piece]:
    """Each run of right-to-left pieces mirrored within the room it takes, so its words read from the right."""
    out, index = list(line), 0
    while index < len(out):
        end = index
        while end < len(out) and _is_rtl(out[end].text):
            end += 1
        if end - index > 1:
            left, right = out[index].x, out[end - 1].x + out[end - 1].width
            for k in range(index, end):
                piece = out[k]
                out[k] = Piece(left + right - piece.x - piece.width, piece.segment, piece.text, piece.font, piece.width)
        index = max(end, index + 1)
    return out


GIF_MARGIN = 12  # pixels of background around the text of every GIF frame
GIF_COLOURS = {
    "inserted": INSERTED_RGB,
    "substituted": SUBSTITUTED_RGB,
    "deleted": DELETED_RGB,
    "mask": MASK_RGB,
    "prompt": PROMPT_RGB,
    "plain": TEXT_RGB,
}


def _frame_image(caption: str, lines: list[list[Piece]], fonts: GlyphFonts, size: tuple[int, int], line_height: int):
    """One GIF frame: the caption, then the laid-out lines (deleted pieces struck through)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, BACKGROUND_RGB)
    draw = ImageDraw.Draw(image)
    draw.text((GIF_MARGIN, GIF_MARGIN), caption, fill=PROMPT_RGB, font=fonts.fonts[0])
    for row, line in enumerate(lines, start=1):
        y = GIF_MARGIN + row * line_height
        for piece in line:
            colour = GIF_COLOURS[piece.segment.kind]
            draw.text((GIF_MARGIN + piece.x, y), piece.text, fill=colour, font=piece.font)
            if piece.segment.kind == "deleted":
                strike_y = y + fonts.size * 0.55
                draw.line((GIF_MARGIN + piece.x, strike_y, GIF_MARGIN + piece.x + piece.width, strike_y), fill=colour)
    return image


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
    tallest, and a word wider than a line is cut between characters, so no text runs past the right margin. The
    last frame shows `final_text` after the prompt when given (see [`final_segments`]). Characters Pillow's default
    font lacks are drawn with a font of this machine that has them ([`GlyphFonts`]: Arabic, Hebrew, CJK where such a
    font is installed); one that no font has is drawn as "?" and the caption says so ([`MISSING_NOTE`])."""
    import imageio.v3 as iio
    import numpy as np

    fonts = GlyphFonts(font_size)
    line_height = int(font_size * 1.5)
    space = fonts.fonts[0].getlength(" ")
    frames = trace_frames(TokenDisplay(tokenizer), trace, final_text)
    layouts = [(caption, _layout(segments, fonts, width - 2 * GIF_MARGIN, space)) for caption, segments in frames]
    height = 2 * GIF_MARGIN + line_height * (1 + max(len(lines) for _, lines in layouts))
    note = f"   {MISSING_NOTE}" if fonts.missing else ""
    images = [np.asarray(_frame_image(caption + note, lines, fonts, (width, height), line_height)) for caption, lines in layouts]
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
    "GlyphFonts",
    "MISSING_GLYPH",
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
