"""Gradio Space: watch an Edit Flow model write text by insertions, substitutions and deletions.

    EDITFLOW_MODEL=you/editflow-alpaca python space/app.py          # a Hub repo
    EDITFLOW_MODEL=.models/editflow/.../checkpoint-final python space/app.py   # a local folder

The model is loaded once through the `editflow-generation` pipeline (remote code, `trust_remote_code=True`).
Three modes: prompt (the model continues a plain prompt; the pipeline decides whether it goes through the chat
template), infill (the text's [MASK] tokens are filled in, the rest kept) and edit (the model may rewrite the
whole text). The UI streams every sampling step as coloured HTML (inserted blue, substituted red, deleted struck
through, masks grey: the colours of the decode GIF) by iterating the pipeline's steps, then shows the final text
and the GIF. `/generate` is the non-streaming API:
(prompt, tau, mask_length, temperature, seed, mode) -> (final text, decode trace as JSON), infilling with the
checkpoint's infill length (the UI's `/stream` also takes `infill`: fixed or free). The controls open at the
checkpoint's generation config.

The GIF travels inside the page (a data URL), so no file is written per request: neither a temporary folder nor
Gradio's cache grows with the number of requests.

GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose the address (read by `launch()` itself);
EDITFLOW_CONCURRENCY (a positive integer, default 1) is how many generations run at once, the rest wait in the
queue. On a ZeroGPU Space (`spaces` importable) each generation runs under `spaces.GPU`.
"""

import base64
import math
import os
import sys

import gradio as gr
from transformers import pipeline

from editflow_hf.checkpoints import check_model_folder
from editflow_hf.modeling.edits_editflow import INFILL_MODES
from editflow_hf.visualize import Segment, TokenDisplay, gif_bytes, segments_to_html, sequence_segments, step_segments

try:  # ZeroGPU Spaces provide `spaces`; elsewhere the decorator is a no-op
    import spaces

    gpu = spaces.GPU
except ImportError:

    def gpu(function):
        return function


PROG = "space/app.py"
MODEL_ENV = "EDITFLOW_MODEL"
CONCURRENCY_ENV = "EDITFLOW_CONCURRENCY"
MAX_PROMPT_CHARS = 500
MAX_MASK_LENGTH = 256
MIN_TAU, MAX_TAU = 0.005, 0.5
MAX_TEMPERATURE = 2.0
MAX_SEED = 2**31 - 1
QUEUE_SIZE = 32
MODES = ("prompt", "infill", "edit")

CSS = """
#live-trace { min-height: 6em; padding: 0.75em; border: 1px solid var(--border-color-primary); border-radius: 8px; }
#trace-gif img { max-width: 100%; }
.legend span { margin-right: 1em; }
"""

# The legend is rendered by the same code as the trace, so its colours cannot drift from the steps'.
LEGEND = '<div class="legend">' + segments_to_html(
    [Segment("inserted", "inserted"), Segment("substituted", "substituted"), Segment("deleted", "deleted"), Segment("[MASK]", "mask")]
) + "</div>"

MODE_HELP = {
    "prompt": "the model continues the prompt after it (empty: unconditional)",
    "infill": "the model fills in the text's [MASK]s and keeps the rest (infill length: fixed = one token per mask, "
    "free = each masked span may grow or shrink)",
    "edit": "the model may rewrite the whole text (nothing is protected)",
}


def refuse(message: str) -> gr.Error:
    """A refused request: one line in the Space's log (no traceback) and the message, as plain text, to the UI and
    to API callers. Gradio renders an error message as HTML, so instead of escaping it (which gradio_client would
    show as `&#x27;`) the characters that could be markup are replaced by look-alikes (`plain`)."""
    text = plain(message)
    print(f"{PROG}: refused: {text}", file=sys.stderr, flush=True)
    return gr.Error(text, print_exception=False)


def plain(text: str) -> str:
    """`text` on one line, with no character that HTML would read as markup (< > & become ‹ › +)."""
    return " ".join(str(text).split()).translate(str.maketrans({"<": "‹", ">": "›", "&": "+"}))


def fail(message: str) -> None:
    """Stop start-up with one line (no traceback)."""
    sys.exit(f"{PROG}: {message}")


def read_concurrency() -> int:
    """EDITFLOW_CONCURRENCY as a positive integer (default 1); one line and a non-zero exit otherwise."""
    raw = os.environ.get(CONCURRENCY_ENV, "1").strip()
    if not raw.isdigit() or int(raw) < 1:
        fail(f"{CONCURRENCY_ENV} must be a positive integer (how many generations run at once); got {raw!r}.")
    return int(raw)


def load_generator(model_name_or_path: str):
    """The editflow-generation pipeline of a Hub repo or local folder; one clear line when it cannot load
    (missing folder, bad config, truncated or corrupted weights, ...). A local folder first goes through the
    commands' loading gate (`check_model_folder`): a config whose `auto_map` / `custom_pipelines` points at code
    other than the Edit Flow files, or whose sizes are at odds with its weights, is refused before any of its code
    is imported (trust_remote_code would run it)."""
    try:
        check_model_folder(model_name_or_path, what=MODEL_ENV)
        return pipeline("editflow-generation", model=model_name_or_path, trust_remote_code=True)
    except Exception as err:  # any loading failure becomes one line at start-up, whatever raised it
        reason = " ".join(str(err).split()) or type(err).__name__
        fail(
            f"cannot load the Edit Flow model {model_name_or_path!r} from {MODEL_ENV}: {reason[:300]} "
            f"(set {MODEL_ENV} to a Hub repo id or a complete checkpoint folder)."
        )


def check_request(
    prompt, tau, mask_length, temperature, seed, max_mask_length: int, mode: str = "prompt", mask_token: str = "[MASK]",
    infill: str = "free",
):  # fmt: skip
    """The request's values as the pipeline wants them, (prompt, tau, mask_length, temperature, seed, mode, infill);
    gr.Error naming the bad value otherwise."""

    def number(value, name):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise refuse(f"{name} must be a number; got {repr(value)}.")
        if not math.isfinite(value):  # the HTTP API passes NaN and Infinity through
            raise refuse(f"{name} must be a finite number; got {value}.")
        return value

    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise refuse("The prompt must be text.")
    try:
        prompt.encode("utf-8")
    except UnicodeEncodeError:
        raise refuse("The prompt contains an invalid character (a lone surrogate, not real text): retype or re-paste it.") from None
    if len(prompt) > MAX_PROMPT_CHARS:
        raise refuse(f"The prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}. Shorten it.")
    mode = mode or "prompt"
    if mode not in MODES:
        raise refuse(f"mode must be one of {', '.join(MODES)}; got {repr(mode)}.")
    tau = float(number(tau, "tau"))
    if not MIN_TAU <= tau <= MAX_TAU:
        raise refuse(f"tau must be between {MIN_TAU} and {MAX_TAU} (1/tau sampling steps); got {tau}.")
    mask_length = number(mask_length, "mask length")
    if mask_length != int(mask_length) or not 0 <= mask_length <= max_mask_length:
        raise refuse(f"mask length must be a whole number from 0 to {max_mask_length}; got {mask_length}.")
    temperature = float(number(temperature, "temperature"))
    if not 0.0 <= temperature <= MAX_TEMPERATURE:
        raise refuse(f"temperature must be between 0 (greedy) and {MAX_TEMPERATURE}; got {temperature}.")
    if seed is not None:
        seed = number(seed, "seed")
        if seed != int(seed) or not 0 <= seed <= MAX_SEED:
            raise refuse(f"seed must be a whole number from 0 to {MAX_SEED} (or empty for a random run); got {seed}.")
        seed = int(seed)
    if infill not in INFILL_MODES:
        raise refuse(f"infill must be one of {', '.join(INFILL_MODES)}; got {repr(infill)}.")
    if mode == "infill" and mask_token not in prompt:
        raise refuse(f"Infill mode fills in the text's {mask_token} tokens: put {mask_token} where words are missing.")
    if mode == "edit" and not prompt.strip():
        raise refuse("Edit mode rewrites a text: type the text to edit.")
    if not prompt.strip() and mask_length == 0:
        raise refuse("An empty prompt with mask length 0 leaves nothing to generate: raise the mask length.")
    return prompt, tau, int(mask_length), temperature, seed, mode, infill


def example_rows(defaults: dict, mask: str, *, chat: bool, trained_to_edit: bool) -> list[list]:
    """The Space's examples for the loaded checkpoint, as rows of (text, tau, mask_length, temperature, seed, mode,
    infill) at its generation defaults: a question only for a chat model (fine-tuned on chats: its generation config's
    `chat_template`), an opening to continue for a pretrained one; the unconditional and infill examples for every
    model; the edit example only for a model trained to revise (a `corrupt` coupling in its recorded x0_sampler)."""
    tau, masks, temperature, infill = defaults["tau"], defaults["mask_length"], defaults["temperature"], defaults["infill"]
    prompt = "Could you please write a poem for me?" if chat else "Once upon a time"
    rows = [
        [prompt, tau, masks, temperature, 42, "prompt", infill],
        ["", tau, masks, temperature, 0, "prompt", infill],
        [f"To be or {mask} {mask} be, that is the {mask}.", tau, 0, temperature, 7, "infill", "fixed"],
    ]
    if trained_to_edit:
        rows.append(["The quick brown fox jump over the the lazy dog.", tau, 0, 0.7, 3, "edit", infill])
    return rows


def gif_html(data: bytes) -> str:
    """The GIF shown inline, with a download link; both are data URLs, so nothing is written to disk."""
    url = "data:image/gif;base64," + base64.b64encode(data).decode("ascii")
    return (
        f'<div id="trace-gif"><img src="{url}" alt="decode trace"></div>'
        f'<div id="trace-gif-file"><a href="{url}" download="decode_trace.gif">decode_trace.gif</a></div>'
    )


class EditFlowSpace:
    """The generation handlers around one loaded pipeline."""

    def __init__(self, generator, model_name: str):
        self.generator = generator
        self.tokenizer = generator.tokenizer
        self.display = TokenDisplay(self.tokenizer)  # built once: it probes the tokenizer's word-piece style
        self.model_name = model_name
        self.mask_token = self.tokenizer.mask_token or "[MASK]"
        self.max_mask_length = max(0, min(MAX_MASK_LENGTH, generator.max_positions - 2))
        # The controls open at the checkpoint's generation config (within the Space's ranges).
        defaults = generator.generation_config.summary()
        self.defaults = {
            "tau": min(max(defaults["tau"], MIN_TAU), MAX_TAU),
            "mask_length": min(defaults["mask_length"], self.max_mask_length),
            "temperature": min(defaults["temperature"], MAX_TEMPERATURE),
            "infill": defaults["infill"],
        }

    def examples(self) -> list[list]:
        """The examples that fit this checkpoint (`example_rows`)."""
        chat = bool(self.generator.generation_config.summary()["chat_template"])
        trained_to_edit = "corrupt" in (getattr(self.generator.model.config, "x0_sampler", None) or "")
        return example_rows(self.defaults, self.mask_token, chat=chat, trained_to_edit=trained_to_edit)

    def _check(self, prompt, tau, mask_length, temperature, seed, mode, infill=None):
        return check_request(
            prompt, tau, mask_length, temperature, seed, self.max_mask_length, mode=mode, mask_token=self.mask_token,
            infill=infill or self.defaults["infill"],
        )  # fmt: skip

    def _steps(self, prompt, tau, mask_length, temperature, seed, mode, infill):
        """The pipeline's steps for one request; its ValueErrors (e.g. too long for the model) become gr.Error.
        The prompt goes in as plain text: the pipeline decides between chat template and raw text."""
        try:
            yield from self.generator.iter_steps(
                prompt,
                tau=tau,
                mask_length=mask_length,
                temperature=temperature,
                seed=seed,
                edit_prompt=mode == "edit",
                infill=infill,
                return_trace=True,
                progress_bar=False,
            )
        except ValueError as err:
            raise refuse(str(err)) from None

    def _start(self, prompt: str, mask_length: int, mode: str, infill: str) -> tuple[list[int], int]:
        """The start sequence (BOS + prompt + masks) and prompt length, as the pipeline builds them."""
        try:
            rows = self.generator.start_rows(prompt, mask_length=mask_length, edit_prompt=mode == "edit", infill=infill)
        except ValueError as err:
            raise refuse(str(err)) from None
        return rows.sequences[0], rows.prompt_lengths[0]

    @gpu
    def generate(self, prompt, tau, mask_length, temperature, seed, mode="prompt", infill=None):
        """Non-streaming API: (final text, decode trace as JSON)."""
        args = self._check(prompt, tau, mask_length, temperature, seed, mode, infill)
        for step in self._steps(*args):
            pass
        output = step.outputs[0][0]
        return output["generated_text"], output["trace"]

    @gpu
    def stream(self, prompt, tau, mask_length, temperature, seed, mode="prompt", infill=None):
        """Yield (step HTML, final text, GIF HTML) while sampling: the start sequence, every step that changed the
        text, then the final text and the GIF. Gradio stops the iteration (and so the sampling) when the page goes."""
        args = self._check(prompt, tau, mask_length, temperature, seed, mode, infill)
        prompt, mask_length, mode, infill = args[0], args[2], args[5], args[6]
        previous, prompt_len = self._start(prompt, mask_length, mode, infill)
        shown_html = segments_to_html(sequence_segments(self.display, previous, prompt_len))
        yield shown_html, "", ""
        for step in self._steps(*args):
            row = step.rows[0]
            if row is not None:
                shown_html = segments_to_html(step_segments(self.display, previous, row, prompt_len))
                previous = row.tokens
            if step.outputs is None:
                if row is not None:
                    yield shown_html, gr.skip(), gr.skip()
                continue
            # The last changed step stays on show, its edits coloured, beside the final text and the GIF.
            output = step.outputs[0][0]
            data, _ = gif_bytes(output["trace"], self.tokenizer, final_text=output["generated_text"])
            yield shown_html, output["generated_text"], gif_html(data)

    def build(self) -> gr.Blocks:
        with gr.Blocks(title="Edit Flows") as demo:
            gr.Markdown(
                "# Edit Flows\n"
                f"Model: `{self.model_name}`. An encoder that writes by **editing**: starting from the prompt "
                "and mask tokens, every step inserts, substitutes or deletes tokens anywhere "
                "([Edit Flows, arXiv 2506.09018](https://arxiv.org/abs/2506.09018))."
            )
            with gr.Row():
                with gr.Column(scale=1):
                    mode = gr.Radio(
                        list(MODES),
                        value="prompt",
                        label="Mode",
                        info="; ".join(f"{name}: {text}" for name, text in MODE_HELP.items()),
                        elem_id="mode",
                    )
                    prompt = gr.Textbox(
                        label="Text",
                        placeholder="Could you please write a poem for me?  (empty: unconditional)",
                        lines=3,
                        max_length=MAX_PROMPT_CHARS,
                        elem_id="prompt",
                    )
                    defaults = self.defaults
                    tau = gr.Slider(MIN_TAU, MAX_TAU, value=defaults["tau"], step=0.005, label="tau (step size; 1/tau steps)")
                    mask_length = gr.Slider(
                        0, self.max_mask_length, value=defaults["mask_length"], step=1,
                        label="mask length (masks appended after the text)",
                    )  # fmt: skip
                    temperature = gr.Slider(
                        0.0, MAX_TEMPERATURE, value=defaults["temperature"], step=0.05, label="temperature (0 = greedy)"
                    )
                    infill = gr.Radio(
                        list(INFILL_MODES), value=defaults["infill"], label="infill length",
                        info="fixed: each [MASK] becomes one token; free: each masked span may grow or shrink",
                        elem_id="infill",
                    )  # fmt: skip
                    seed = gr.Number(value=42, precision=0, label="seed (empty = random)")
                    run = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Column(scale=2):
                    gr.HTML(LEGEND)
                    live = gr.HTML(label="Decoding", elem_id="live-trace")
                    final_text = gr.Textbox(label="Final text", lines=4, interactive=False, elem_id="final-text")
                    gr.Markdown("**Decode trace** (one frame per step that changed the text)")
                    gif = gr.HTML(elem_id="trace-gif-panel")
            inputs = [prompt, tau, mask_length, temperature, seed, mode, infill]
            examples = self.examples()
            gr.Examples(
                examples=examples,
                inputs=inputs,
                label="Examples (" + ", ".join(dict.fromkeys(row[5] for row in examples)) + ")",
            )
            run.click(self.stream, inputs, [live, final_text, gif], api_name="stream")
            prompt.submit(self.stream, inputs, [live, final_text, gif], api_visibility="private")
            # /generate reads unbounded hidden fields, not the sliders, so that an API caller's out-of-range value
            # reaches check_request and gets a message naming the field instead of Gradio's nameless bound check.
            api_inputs = [gr.Textbox(visible=False)] + [gr.Number(visible=False) for _ in range(4)]
            api_inputs.append(gr.Textbox(value="prompt", visible=False))
            api_button = gr.Button(visible=False)
            api_button.click(self.generate, api_inputs, [final_text, gr.JSON(visible=False)], api_name="generate")
        return demo


def main() -> None:
    model_name = os.environ.get(MODEL_ENV)
    if not model_name:
        fail(f"set {MODEL_ENV} to the Edit Flow model to serve (a Hub repo id or a checkpoint folder).")
    concurrency = read_concurrency()  # before the (slow) model load
    space = EditFlowSpace(load_generator(model_name), model_name)
    demo = space.build()
    demo.queue(default_concurrency_limit=concurrency, max_size=QUEUE_SIZE)
    demo.launch(css=CSS)


if __name__ == "__main__":
    main()
