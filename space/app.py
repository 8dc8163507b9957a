"""Gradio Space: watch an Edit Flow model write text by insertions, substitutions and deletions.

    EDITFLOW_MODEL=you/editflow-alpaca python space/app.py          # a Hub repo
    EDITFLOW_MODEL=.models/editflow/.../checkpoint-final python space/app.py   # a local folder

The model is loaded once through the `editflow-generation` pipeline (remote code, `trust_remote_code=True`).
The UI streams every sampling step as coloured HTML (inserted blue, substituted red, deleted struck through,
masks grey: the colours of the decode GIF), then shows the final text and the GIF. `/generate` is the
non-streaming API: (prompt, tau, mask_length, temperature, seed) -> (final text, GIF file).
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT choose the address (read by `launch()` itself);
EDITFLOW_CONCURRENCY (default 1) is how many generations run at once, the rest wait in the queue.
"""

import html
import os
import queue
import sys
import tempfile
import threading
from pathlib import Path

import gradio as gr
from transformers import pipeline

from editflow_hf.apps.trace import Segment, TokenDisplay, make_gif, segments_to_html, sequence_segments, step_segments

MODEL_ENV = "EDITFLOW_MODEL"
MAX_PROMPT_CHARS = 500
MAX_MASK_LENGTH = 256
MIN_TAU, MAX_TAU = 0.005, 0.5
MAX_TEMPERATURE = 2.0
MAX_SEED = 2**31 - 1
QUEUE_SIZE = 32
STEP_UPDATE_TIMEOUT_S = 600

CSS = """
#live-trace { min-height: 6em; padding: 0.75em; border: 1px solid var(--border-color-primary); border-radius: 8px; }
.legend span { margin-right: 1em; }
"""

# The legend is rendered by the same code as the trace, so its colours cannot drift from the steps'.
LEGEND = '<div class="legend">' + segments_to_html(
    [Segment("inserted", "inserted"), Segment("substituted", "substituted"), Segment("deleted", "deleted"), Segment("[MASK]", "mask")]
) + "</div>"


class GenerationCancelled(Exception):
    """Raised from the step callback to stop a sampling run whose page went away."""


def load_generator(model_name_or_path: str):
    """The editflow-generation pipeline of a Hub repo or local folder; one clear error when it cannot load."""
    try:
        return pipeline("editflow-generation", model=model_name_or_path, trust_remote_code=True)
    except (OSError, ValueError) as err:
        raise SystemExit(
            f"space/app.py: cannot load the Edit Flow model {model_name_or_path!r} from {MODEL_ENV}: "
            f"{str(err).splitlines()[0]} (set {MODEL_ENV} to a Hub repo id or a checkpoint folder)."
        ) from None


def check_request(prompt, tau, mask_length, temperature, seed, max_mask_length: int) -> tuple[str, float, int, float, int | None]:
    """The request's values as the pipeline wants them; gr.Error naming the bad value otherwise."""

    def number(value, name):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise gr.Error(f"{name} must be a number; got {html.escape(repr(value))}.")
        return value

    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise gr.Error("The prompt must be text.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise gr.Error(f"The prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}. Shorten it.")
    tau = float(number(tau, "tau"))
    if not MIN_TAU <= tau <= MAX_TAU:
        raise gr.Error(f"tau must be between {MIN_TAU} and {MAX_TAU} (1/tau sampling steps); got {tau}.")
    mask_length = number(mask_length, "mask length")
    if mask_length != int(mask_length) or not 0 <= mask_length <= max_mask_length:
        raise gr.Error(f"mask length must be a whole number from 0 to {max_mask_length}; got {mask_length}.")
    temperature = float(number(temperature, "temperature"))
    if not 0.0 <= temperature <= MAX_TEMPERATURE:
        raise gr.Error(f"temperature must be between 0 (greedy) and {MAX_TEMPERATURE}; got {temperature}.")
    if seed is not None:
        seed = number(seed, "seed")
        if seed != int(seed) or not 0 <= seed <= MAX_SEED:
            raise gr.Error(f"seed must be a whole number from 0 to {MAX_SEED} (or empty for a random run); got {seed}.")
        seed = int(seed)
    if not prompt.strip() and mask_length == 0:
        raise gr.Error("An empty prompt with mask length 0 leaves nothing to generate: raise the mask length.")
    return prompt, tau, int(mask_length), temperature, seed


class EditFlowSpace:
    """The generation handlers around one loaded pipeline."""

    def __init__(self, generator, model_name: str):
        self.generator = generator
        self.tokenizer = generator.tokenizer
        self.display = TokenDisplay(self.tokenizer)  # built once: it probes the tokenizer's word-piece style
        self.model_name = model_name
        self.max_mask_length = max(0, min(MAX_MASK_LENGTH, generator.max_positions - 2))
        self.gif_dir = Path(tempfile.mkdtemp(prefix="editflow-space-"))

    def _run(self, prompt, tau, mask_length, temperature, seed, step_callback=None) -> dict:
        """One pipeline call with its trace; pipeline ValueErrors (e.g. too long for the model) become gr.Error."""
        try:
            output = self.generator(
                prompt,
                tau=tau,
                mask_length=mask_length,
                temperature=temperature,
                seed=seed,
                return_trace=True,
                step_callback=step_callback,
                progress_bar=False,
            )
        except ValueError as err:
            raise gr.Error(html.escape(str(err))) from None
        return output[0] if isinstance(output, list) else output

    def _write_gif(self, trace: dict) -> str:
        handle, path = tempfile.mkstemp(suffix=".gif", prefix="decode_trace-", dir=self.gif_dir)
        os.close(handle)
        make_gif(trace, self.tokenizer, path)
        return path

    def _start(self, prompt: str, mask_length: int) -> dict:
        """The start sequence (BOS + prompt + masks) and prompt length, as the pipeline builds them."""
        try:
            return self.generator.preprocess(prompt, mask_length=mask_length)
        except ValueError as err:
            raise gr.Error(html.escape(str(err))) from None

    def _sequence_html(self, tokens: list[int], prompt_len: int) -> str:
        return segments_to_html(sequence_segments(self.display, tokens, prompt_len))

    def generate(self, prompt, tau, mask_length, temperature, seed):
        """Non-streaming API: (final text, path of the decode GIF)."""
        args = check_request(prompt, tau, mask_length, temperature, seed, self.max_mask_length)
        output = self._run(*args)
        return output["generated_text"], self._write_gif(output["trace"])

    def stream(self, prompt, tau, mask_length, temperature, seed):
        """Yield (step HTML, final text, GIF, GIF file) while sampling: the pipeline runs in a worker thread whose
        step callback queues each changed step; steps that arrive faster than the page updates are folded
        into the newest one (the previous tokens still advance through all of them)."""
        prompt, tau, mask_length, temperature, seed = check_request(
            prompt, tau, mask_length, temperature, seed, self.max_mask_length
        )
        start = self._start(prompt, mask_length)
        previous, prompt_len = start["input_ids"], start["prompt_len"]
        shown_html = self._sequence_html(previous, prompt_len)
        yield shown_html, "", None, None

        events: queue.Queue = queue.Queue()
        cancelled = threading.Event()

        def on_step(step, t, row_steps):
            if cancelled.is_set():
                raise GenerationCancelled
            if row_steps and row_steps[0] is not None:
                events.put(("step", row_steps[0]))

        def work():
            try:
                events.put(("done", self._run(prompt, tau, mask_length, temperature, seed, step_callback=on_step)))
            except GenerationCancelled:
                events.put(("cancelled", None))
            except Exception as err:  # handed to the event loop below, which raises it for Gradio to show
                events.put(("error", err))

        worker = threading.Thread(target=work, name="editflow-sampling", daemon=True)
        worker.start()
        try:
            while True:
                kind, payload = events.get(timeout=STEP_UPDATE_TIMEOUT_S)
                if kind == "step":
                    while kind == "step":
                        shown_html = segments_to_html(step_segments(self.display, previous, payload, prompt_len))
                        previous = payload["tokens"]
                        try:
                            kind, payload = events.get_nowait()
                        except queue.Empty:
                            kind = None
                    yield shown_html, gr.skip(), gr.skip(), gr.skip()
                if kind == "error":
                    raise payload if isinstance(payload, gr.Error) else gr.Error(html.escape(f"Sampling failed: {payload}"))
                if kind == "done":
                    # The last changed step stays on show, its edits coloured, beside the final text and the GIF.
                    gif_path = self._write_gif(payload["trace"])
                    yield shown_html, payload["generated_text"], gif_path, gif_path
                    return
                if kind == "cancelled":
                    return
        except queue.Empty:
            raise gr.Error("Sampling stalled: no step in 10 minutes.") from None
        finally:
            cancelled.set()  # the page went away (GeneratorExit) or the run ended: stop the worker early

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
                    prompt = gr.Textbox(
                        label="Prompt",
                        placeholder="Could you please write a poem for me?  (empty: unconditional)",
                        lines=3,
                        max_length=MAX_PROMPT_CHARS,
                        elem_id="prompt",
                    )
                    tau = gr.Slider(MIN_TAU, MAX_TAU, value=0.02, step=0.005, label="tau (step size; 1/tau steps)")
                    mask_length = gr.Slider(
                        0, self.max_mask_length, value=min(64, self.max_mask_length), step=1, label="mask length"
                    )
                    temperature = gr.Slider(0.0, MAX_TEMPERATURE, value=1.0, step=0.05, label="temperature (0 = greedy)")
                    seed = gr.Number(value=42, precision=0, label="seed (empty = random)")
                    run = gr.Button("Generate", variant="primary", elem_id="generate")
                with gr.Column(scale=2):
                    gr.HTML(LEGEND)
                    live = gr.HTML(label="Decoding", elem_id="live-trace")
                    final_text = gr.Textbox(label="Final text", lines=4, interactive=False, elem_id="final-text")
                    gr.Markdown("**Decode trace** (one frame per step that changed the text)")
                    gif = gr.Image(show_label=False, type="filepath", interactive=False, elem_id="trace-gif")
                    gif_file = gr.File(label="Download the GIF", interactive=False, elem_id="trace-gif-file")
            inputs = [prompt, tau, mask_length, temperature, seed]
            run.click(self.stream, inputs, [live, final_text, gif, gif_file], api_name="stream")
            prompt.submit(self.stream, inputs, [live, final_text, gif, gif_file], api_visibility="private")
            # /generate reads unbounded hidden fields, not the sliders, so that an API caller's out-of-range value
            # reaches check_request and gets a message naming the field instead of Gradio's nameless bound check.
            api_inputs = [gr.Textbox(visible=False)] + [gr.Number(visible=False) for _ in range(4)]
            api_button = gr.Button(visible=False)
            api_button.click(self.generate, api_inputs, [final_text, gif_file], api_name="generate")
        return demo


def main() -> None:
    model_name = os.environ.get(MODEL_ENV)
    if not model_name:
        sys.exit(f"space/app.py: set {MODEL_ENV} to the Edit Flow model to serve (a Hub repo id or a checkpoint folder).")
    space = EditFlowSpace(load_generator(model_name), model_name)
    demo = space.build()
    concurrency = int(os.environ.get("EDITFLOW_CONCURRENCY", "1"))
    demo.queue(default_concurrency_limit=concurrency, max_size=QUEUE_SIZE)
    demo.launch(css=CSS, allowed_paths=[str(space.gif_dir)])


if __name__ == "__main__":
    main()
