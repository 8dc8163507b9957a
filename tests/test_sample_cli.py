"""editflow-sample / editflow-chat command lines and the trace views (GIF, ANSI, HTML)."""

import io
import os
import subprocess
import sys

import pytest
from PIL import Image
from transformers import AutoModel, AutoTokenizer, pipeline

import editflow_hf
from editflow_hf.apps import chat as chat_cli
from editflow_hf.apps import sample as sample_cli
from editflow_hf.sampling_flags import build_parser, sampling_kwargs
from editflow_hf.modeling.edits_editflow import DecodeTrace, TraceStep
from editflow_hf.modeling.sampling_editflow import EDIT_RULES
from editflow_hf.visualize import TokenDisplay, make_gif, step_segments, step_to_html, trace_to_ansi, trace_to_html

editflow_hf.register()  # the Edit Flow classes with AutoConfig, AutoModel and pipeline()


@pytest.fixture(scope="module")
def pipe(tiny_editflow_dir):
    return pipeline("editflow-generation", model=AutoModel.from_pretrained(tiny_editflow_dir),
                    tokenizer=AutoTokenizer.from_pretrained(tiny_editflow_dir))  # fmt: skip


def test_make_gif_has_one_frame_per_changing_step_plus_the_hold(tiny_editflow_dir, pipe, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["--model_name_or_path", str(tiny_editflow_dir), "--tau", "0.1", "--mask_length", "8", "--seed", "42"]
    assert sample_cli.main(args + ["--make_gif", "--no_progress"]) == 0
    printed = capsys.readouterr().out.strip()
    [expected] = pipe("", tau=0.1, mask_length=8, seed=42, return_trace=True, progress_bar=False)
    assert printed == expected["generated_text"]
    gif = tmp_path / "decode_trace.gif"
    with Image.open(gif) as image:
        assert image.n_frames == len(expected["trace"]["steps"]) + 1
        durations = []
        for index in range(image.n_frames):
            image.seek(index)
            durations.append(image.info["duration"])
    assert durations[-1] > 5 * durations[0]  # the final text is held longer


def test_gif_path_prompt_and_colours_in_gif(tiny_editflow_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # stderr is captured, not a terminal: colours only when forced
    gif = tmp_path / "sub" / "trace.gif"
    gif.parent.mkdir()
    args = ["--model_name_or_path", str(tiny_editflow_dir), "--prompt", "hello there", "--tau", "0.2",
            "--mask_length", "6", "--seed", "1", "--make_gif", "--gif_path", str(gif), "--show_trace", "--no_progress"]  # fmt: skip
    assert sample_cli.main(args) == 0
    err = capsys.readouterr().err
    assert "\x1b[" in err and "[final]" in err  # ANSI trace
    with Image.open(gif) as image:
        colours = set()
        for index in range(image.n_frames):
            image.seek(index)
            colours |= {c for _, c in image.convert("RGB").getcolors(1 << 16)}
    assert any(b > 150 and r < 100 for r, g, b in colours)  # blue insertions somewhere


def test_num_samples_prints_each(tiny_editflow_dir, capsys):
    args = ["--model_name_or_path", str(tiny_editflow_dir), "--tau", "0.25", "--mask_length", "4", "--seed", "3",
            "--num_samples", "3", "--batch_size", "2", "--temperature", "0.5", "--top_p", "0.9", "--no_progress"]  # fmt: skip
    assert sample_cli.main(args) == 0
    assert capsys.readouterr().out.count("\n\n") == 2


@pytest.mark.parametrize(
    "extra, match",
    [
        (["--tau", "0"], "--tau"),
        (["--tau", "1.5"], "--tau"),
        (["--mask_length", "-3"], "--mask_length"),
        (["--top_p", "2"], "--top_p"),
        (["--temperature", "-1"], "--temperature"),
        (["--mask_length", "0"], "mask_length"),
        (["--max_length", "1000000", "--prompt", "a b c d e"], "--max_length"),
        (["--infill", "fixed", "--num_samples", "0"], "--num_samples"),
        (["--strength", "0"], "--strength"),
        (["--strength", "1.5"], "--strength"),
        (["--edit_rule", "gain", "--gain_margin", "1"], "--gain_margin"),
        (["--gain_margin", "nan"], "--gain_margin"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tiny_editflow_dir, capsys, extra, match):
    assert sample_cli.main(["--model_name_or_path", str(tiny_editflow_dir), "--no_progress", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and "Traceback" not in err


def test_edit_mode_flags_reach_the_pipeline(tiny_editflow_dir, capsys):
    args = ["--model_name_or_path", str(tiny_editflow_dir), "--strength", "0.2", "--edit_rule", "threshold"]
    assert sampling_kwargs(build_parser().parse_args(args)).items() >= {"strength": 0.2, "edit_rule": "threshold"}.items()
    text = "the cat sat on the mat"
    run = [*args, "--prompt", text, "--edit_prompt", "True", "--mask_length", "0", "--tau", "0.1", "--no_progress"]
    assert sample_cli.main(run) == 0  # the random tiny model's rates are all below 1/2: nothing fires
    assert capsys.readouterr().out.strip() == text
    parser_rules = next(a.choices for a in build_parser()._actions if a.dest == "edit_rule")
    assert tuple(parser_rules) == EDIT_RULES  # every rule the sampler knows, and no other
    gain = [a if a != "threshold" else "gain" for a in run]
    assert sample_cli.main(gain) == 0  # nor an edit more likely right than needless
    assert capsys.readouterr().out.strip() == text


def test_missing_or_wrong_model_folder_exits_2(tmp_path, tiny_mlm_dir, capsys):
    assert sample_cli.main(["--model_name_or_path", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert sample_cli.main(["--model_name_or_path", str(tiny_mlm_dir)]) == 2
    assert "editflow-convert" in capsys.readouterr().err


def test_console_script_runs_the_seed_command(tiny_editflow_dir, tmp_path):
    """The seed's `sample.py --model_name_or_path ... --tau --mask_length --seed --make_gif`, as editflow-sample."""
    script = "editflow-sample"
    command = [script] if any(os.access(os.path.join(p, script), os.X_OK) for p in os.environ["PATH"].split(os.pathsep)) \
        else [sys.executable, "-m", "editflow_hf.apps.sample"]  # fmt: skip
    proc = subprocess.run(
        [*command, "--model_name_or_path", str(tiny_editflow_dir), "--tau", "0.1", "--mask_length", "8", "--seed", "42", "--make_gif"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "decode_trace.gif").exists()
    bad = subprocess.run([*command, "--model_name_or_path", str(tmp_path / "nope")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_chat_template_flag_takes_dllm_spelling_and_reaches_the_pipeline(tiny_editflow_dir, pipe, capsys):
    parser = build_parser()
    sample_cli.add_sample_arguments(parser)
    for value, expected in (("auto", None), ("True", True), ("true", True), ("on", True), ("False", False), ("off", False)):
        assert parser.parse_args(["--model_name_or_path", "m", "--chat_template", value]).chat_template is expected
    assert parser.parse_args(["--model_name_or_path", "m"]).chat_template is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--model_name_or_path", "m", "--chat_template", "maybe"])
    question = "Could you please write a poem for me?"
    common = ["--model_name_or_path", str(tiny_editflow_dir), "--prompt", question, "--tau", "0.25", "--mask_length", "4",
              "--seed", "7", "--no_progress"]  # fmt: skip
    kwargs = dict(tau=0.25, mask_length=4, seed=7, progress_bar=False)
    printed = {}
    for flag, chat_template in (("True", True), ("False", False), ("auto", None)):
        assert sample_cli.main([*common, "--chat_template", flag]) == 0
        [expected] = pipe(question, chat_template=chat_template, **kwargs)
        printed[flag] = capsys.readouterr().out.strip()
        assert printed[flag] == expected["generated_text"]
    assert printed["True"] != printed["False"] and printed["auto"] == printed["False"]  # a converted model: raw text


def test_chat_loop_answers_each_line_until_exit(tiny_editflow_dir, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\n\nhow are you\nexit\nnever read\n"))
    args = ["--model_name_or_path", str(tiny_editflow_dir), "--tau", "0.25", "--mask_length", "4", "--seed", "0", "--temperature", "0"]
    assert chat_cli.main(args) == 0
    first = capsys.readouterr().out.splitlines()
    assert len(first) == 2
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\nhow are you\n"))
    assert chat_cli.main(args) == 0
    assert capsys.readouterr().out.splitlines() == first  # same seed, same conversation
    monkeypatch.setattr(sys, "stdin", io.StringIO("raw text\n"))
    assert chat_cli.main(args + ["--plain"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert chat_cli.main(["--model_name_or_path", "/definitely/not/here"]) == 2


def test_views_place_every_edit(pipe):
    [out] = pipe("the cat", tau=0.1, mask_length=6, seed=5, return_trace=True, progress_bar=False)
    as_dict, tokenizer = out["trace"], pipe.tokenizer
    trace = DecodeTrace.from_dict(as_dict)
    display = TokenDisplay(tokenizer)
    previous = trace.initial
    for step in trace.steps:
        segments = step_segments(display, previous, step, trace.prompt_len)
        kinds = [s.kind for s in segments]
        assert kinds.count("inserted") == len(step.inserted)
        assert kinds.count("substituted") == len(step.substituted)
        assert kinds.count("deleted") == len(step.deleted)
        assert len(segments) == len(step.tokens) - 1 + len(step.deleted)  # BOS hidden
        previous = step.tokens
    html_text = trace_to_html(trace, tokenizer, step_index=len(trace.steps) - 1)
    assert html_text == trace_to_html(as_dict, tokenizer, step_index=len(trace.steps) - 1)  # typed or dict form
    assert html_text.startswith('<div class="editflow-step"') and "<span" in html_text
    assert step_to_html(tokenizer, trace.initial, trace.steps[0], trace.prompt_len).count("ef-") >= 1
    less_than = tokenizer.convert_tokens_to_ids("<")
    bos = pipe.model.config.bos_token_id
    escaped = step_to_html(tokenizer, [bos], TraceStep(step=1, t=0.5, tokens=[bos, less_than], inserted=[1]))
    assert "&lt;" in escaped and "ef-inserted" in escaped
    ansi = trace_to_ansi(as_dict, tokenizer)
    assert len(ansi.splitlines()) == len(trace.steps) + 1


def test_make_gif_without_changes_writes_the_final_frame(pipe, tmp_path):
    trace = {"prompt_len": 1, "initial": [101, 7592], "steps": []}
    assert make_gif(trace, pipe.tokenizer, tmp_path / "still.gif") == 1
    with Image.open(tmp_path / "still.gif") as image:
        assert image.n_frames == 1


def test_gif_lines_wrap_whole_words_within_the_width():
    from editflow_hf.visualize import GlyphFonts, Segment, _layout

    fonts = GlyphFonts(16)
    # Long words made of many subword pieces: a word must move to the next line whole, never run past the edge.
    segments = []
    for word in range(12):
        segments.append(Segment(f"w{word}", "plain"))
        segments += [Segment("##ab".removeprefix("##"), "inserted", attach=True) for _ in range(6)]
    width = 200
    lines = _layout(segments, fonts, width, fonts.fonts[0].getlength(" "))
    assert len(lines) > 1
    assert "".join(piece.text for line in lines for piece in line) == "".join(f"w{w}" + "ab" * 6 for w in range(12))
    for line in lines:
        last = line[-1]
        assert last.x + last.width <= width, "a line overflows the frame"
        assert not line[0].segment.attach, "a line starts in the middle of a word"


def gif_frames(data: bytes) -> list:
    """Every frame of a GIF as an RGB array."""
    import numpy as np

    with Image.open(io.BytesIO(data)) as image:
        frames = []
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
    return frames


def test_every_gif_frame_keeps_its_text_within_the_width_the_final_one_included(pipe):
    """A 120-token final text (the printed text, drawn by the final frame) and a word wider than a line: in every
    frame the right margin stays background, and the final frame shows the whole text on many lines."""
    from editflow_hf.visualize import GIF_MARGIN, gif_bytes

    tokenizer = pipe.tokenizer
    words = ("shall i compare thee to a summer's day thou art more lovely and more temperate " * 12).split()
    long_word = tokenizer("pneumonoultramicroscopicsilicovolcanoconiosis" * 2, add_special_tokens=False)["input_ids"]
    ids = tokenizer(" ".join(words), add_special_tokens=False)["input_ids"][: 120 - len(long_word)] + long_word
    assert len(ids) == 120  # the last word is wider than a line: it is cut between characters
    bos = pipe.model.config.bos_token_id
    trace = {"prompt_len": 1, "initial": [bos], "steps": [
        {"step": 1, "t": 0.5, "tokens": [bos, *ids[:60]], "inserted": list(range(1, 61)), "substituted": [], "deleted": []},
        {"step": 2, "t": 1.0, "tokens": [bos, *ids], "inserted": list(range(61, 121)), "substituted": [], "deleted": []},
    ]}  # fmt: skip
    final_text = pipe.continuation_text([], ids)
    data, count = gif_bytes(trace, tokenizer, width=720, final_text=final_text)
    frames = gif_frames(data)
    assert count == len(frames) == 3
    for index, frame in enumerate(frames):
        ink = frame.min(axis=2) < 200
        assert not ink[:, -(GIF_MARGIN - 2) :].any(), f"frame {index} draws past its right edge"
    text_rows = (frames[-1].min(axis=2) < 200).any(axis=1)
    line_starts = int((text_rows[1:] & ~text_rows[:-1]).sum())
    assert line_starts >= 6, "the final frame does not show the whole text"  # caption + several lines of text


SCRIPTS = {"Arabic": "مرحبا بالعالم", "Hebrew": "שלום עולם", "CJK": "你好世界 國語"}


def missing_glyph_boxes(fonts, text: str) -> list[str]:
    """The characters of `text` that would draw as a missing-glyph box: the font's drawing of them equals its drawing
    of a character no font has (U+10FFFD); the stated fallback "?" and spaces are not boxes."""
    boxes = []
    for run, font in fonts.runs(text):
        box = bytes(font.getmask("\U0010fffd"))
        boxes += [char for char in run if not char.isspace() and char != "?" and bytes(font.getmask(char)) == box]
    return boxes


def machine_has_font_for(char: str) -> bool:
    import shutil

    if shutil.which("fc-list") is None:
        return False
    return bool(subprocess.run(["fc-list", f":charset={ord(char):x}", "file"], capture_output=True, text=True).stdout.strip())


@pytest.mark.parametrize("script", list(SCRIPTS))
def test_rtl_and_cjk_text_draws_without_missing_glyph_boxes(script):
    """Arabic, Hebrew and CJK draw in a font of this machine that has them; where none has a character, the stated
    fallback "?" stands for it (never a box)."""
    from editflow_hf.visualize import MISSING_GLYPH, GlyphFonts

    fonts = GlyphFonts(16)
    text = SCRIPTS[script]
    assert missing_glyph_boxes(fonts, text) == []
    fonts = GlyphFonts(16)  # `missing` counts every drawing, and the check above drew the text once already
    drawn = "".join(run for run, _ in fonts.runs(text))
    covered = [char for char in text if not char.isspace() and machine_has_font_for(char)]
    assert all(char in drawn for char in covered), (script, drawn)  # a character some font has is drawn, not "?"
    assert len(drawn) == len(text) and fonts.missing == drawn.count(MISSING_GLYPH)


def test_characters_no_font_has_are_drawn_as_the_stated_fallback(pipe, monkeypatch):
    """With no font but Pillow's own (no fallback file, no fontconfig), CJK draws as "?" and every frame's caption
    states what "?" means."""
    from editflow_hf import visualize

    monkeypatch.setattr(visualize, "FALLBACK_FONT_FILES", ())
    monkeypatch.setattr(visualize, "_fontconfig_file", lambda char: None)
    fonts = visualize.GlyphFonts(16)
    assert [run for run, _ in fonts.runs("國 a")] == ["? a"] and fonts.missing == 1
    captions = []
    real_frame = visualize._frame_image
    monkeypatch.setattr(visualize, "_frame_image", lambda caption, *args: captions.append(caption) or real_frame(caption, *args))
    bos = pipe.model.config.bos_token_id
    visualize.gif_bytes({"prompt_len": 1, "initial": [bos], "steps": []}, pipe.tokenizer, final_text="國語 text")
    assert captions and all(visualize.MISSING_NOTE in caption for caption in captions)
