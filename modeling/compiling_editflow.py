"""`EditFlowForEditing.edit_rates` under torch.compile for sampling ([`CompiledEditRates`]): one graph for many widths,
ahead of time where torch offers it, CUDA graphs at bucketed shapes on a GPU. Remote code: imports only torch."""

import torch

from .edits_editflow import pad_token_id_of


# Widths a compiled step pads x_t to: the width changes with every insertion or deletion, and a compiled graph (a
# CUDA graph above all) is specialised to its shapes, so the step runs at the next bucket up and records a new
# graph only when a sequence crosses into a new bucket. Steps of 16 up to 256 (a sequence of BOS + 64 masks
# hovers around 65: coarse buckets would pad it to 96), then 64, 256 and 512 (at most ~1/5 padding beyond 256).
COMPILE_WIDTH_BUCKETS = (
    *range(16, 257, 16), *range(320, 1025, 64), *range(1280, 4097, 256), *range(4608, 8193, 512)
)  # fmt: skip


def bucket_width(width: int, cap: int | None = None) -> int:
    """The smallest bucket of `COMPILE_WIDTH_BUCKETS` holding `width` (multiples of 1024 beyond), at most `cap`
    (the encoder's positions) and never less than `width`."""
    bucket = next((b for b in COMPILE_WIDTH_BUCKETS if b >= width), -(-width // 1024) * 1024)
    return max(width, min(bucket, cap)) if cap else bucket


def bucket_rows(rows: int) -> int:
    """The power of two holding `rows` (a compiled step runs the changed rows of a batch, a varying count)."""
    return 1 << max(0, rows - 1).bit_length()


def _serialisable_guards(entries) -> list[bool]:
    """The guards an ahead-of-time compiled step keeps (torch's own rule for precompiled functions): none on
    object identities or globals. What they protected (the same model object, the same code) holds by construction
    here: a [`CompiledEditRates`] belongs to one model and calls it only."""
    from torch._dynamo.guards import CheckFunctionManager

    unsupported = CheckFunctionManager.UNSUPPORTED_SERIALIZATION_GUARD_TYPES
    return [
        not (
            entry.is_global
            or entry.guard_type in unsupported
            or any(g in unsupported for g in entry.derived_guard_types)
            or _type_defined_in_local_scope(entry)
        )
        for entry in entries
    ]


def _type_defined_in_local_scope(entry) -> bool:
    """A type guard on an object whose class was made inside a function, which torch cannot save into a package:
    e.g. the per-model rotary wrappers (`Func`) that transformers >= 5.25 attaches through the `kernels` package.
    The guard checks that the model's own attribute keeps its class, which holds by construction here."""
    if entry.guard_type not in ("TYPE_MATCH", "BUILTIN_MATCH") or not entry.has_value:
        return False
    kind = type(entry.value)
    return kind.__qualname__ != kind.__name__


def _dynamo_graphs_compiled() -> int:
    """Graphs torch.compile has compiled in this process (its own counter)."""
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def _row_major(x: torch.Tensor) -> torch.Tensor:
    """`x` `[B, L]` with strides (L, 1): itself, or a copy."""
    return x if x.stride() == (x.shape[1], 1) else x.clone(memory_format=torch.contiguous_format)


class CompiledEditRates:
    """`model.edit_rates` under `torch.compile`, compiled once for many shapes.

    On CPU the step runs at its own shape: the width (and, beyond one row, the row count) is compiled dynamic, so a
    sequence that grows or shrinks reuses the same graph. Where torch offers ahead-of-time compilation
    (`torch.compile(...).aot_compile`, torch >= 2.9), the graph is called without torch.compile's per-call guard
    check (~750 guards, ~0.1-0.15 ms a call at batch 1: a sixth of a compiled step): the guards are checked once per
    new input signature (shapes, dtypes, grad mode, train/eval) and a signature they reject compiles another graph.
    Elsewhere (older torch, a backbone that does not compile to one graph) it is plain `torch.compile`.

    On CUDA the mode is "reduce-overhead" (CUDA graphs: one launch per step instead of one per kernel), and a CUDA
    graph is specialised to its shapes, so rows are padded to a power of two and the width to [`bucket_width`]:
    padded columns are masked out (attention mask 0) and padded rows hold BOS alone; both are cut off before
    returning. One instance per model, reached through the model (`EditFlowForEditing.compiled_edit_rates`, as
    transformers' `get_compiled_call`), is shared by every sampler, so a pipeline's batches reuse the compiled graphs."""

    MAX_GRAPHS = 8  # ahead-of-time graphs per model before falling back to plain torch.compile

    def __init__(self, model, bucketed: bool | None = None):
        self.model = model
        self.parameter = next(model.parameters())  # its dtype and device key the graphs (`.half()` keeps the object)
        self.on_cuda = self.parameter.device.type == "cuda"
        self.bucketed = self.on_cuda if bucketed is None else bucketed
        self.mode = "reduce-overhead" if self.on_cuda else None
        # dynamic=None: a second shape recompiles once with symbolic sizes, which then serve every bucket
        self.compiled = torch.compile(model.edit_rates, mode=self.mode)
        self.ahead_of_time = not self.on_cuda and hasattr(self.compiled, "aot_compile")
        self.graphs: list = []  # ahead-of-time compiled functions, guard check disabled
        self.graph_for: dict[tuple, object] = {}  # input signature -> the graph whose guards accepted it
        # the model's position rule (RoBERTa's offset applied): a bucket never pads past the positions
        self.width_cap = getattr(model.config, "max_sequence_length", None)
        self.pad_token_id = pad_token_id_of(model.config)
        self.shapes: set[tuple[int, int]] = set()  # the shapes run so far (padded ones where bucketed)
        self.compilations = 0  # calls that compiled (or may have): ahead-of-time graphs, new shapes or buckets otherwise

    def __call__(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor, t: torch.Tensor):
        rows, width = input_ids.shape
        if not self.bucketed:
            # row-major strides: a row of a wider buffer has a larger row stride (contiguous all the same, with one
            # row), which the graph's guards reject
            input_ids, attention_mask = _row_major(input_ids), _row_major(attention_mask)
            graph = self._graph(input_ids, attention_mask, t) if self.ahead_of_time else None
            self.shapes.add((rows, width))
            if graph is None:  # plain torch.compile: count the calls that really compiled a graph
                graphs_before = _dynamo_graphs_compiled()
                output = self.compiled(input_ids, attention_mask, t)
                self.compilations += _dynamo_graphs_compiled() > graphs_before
                return output
            return graph(self.model, input_ids, attention_mask, t)
        padded_rows, padded_width = bucket_rows(rows), bucket_width(width, self.width_cap)
        if (padded_rows, padded_width) != (rows, width):
            ids = input_ids.new_full((padded_rows, padded_width), self.pad_token_id)
            ids[:rows, :width] = input_ids
            ids[rows:, 0] = input_ids[0, 0]  # filler rows: BOS alone (no all-masked attention row)
            mask = attention_mask.new_zeros((padded_rows, padded_width))
            mask[:rows, :width] = attention_mask
            mask[rows:, 0] = 1
            times = t.new_zeros(padded_rows)
            times[:rows] = t
            input_ids, attention_mask, t = ids, mask, times
        if (padded_rows, padded_width) not in self.shapes:
            self.compilations += 1  # a new bucket compiles (or records a CUDA graph)
        self.shapes.add((padded_rows, padded_width))
        if self.on_cuda:
            torch.compiler.cudagraph_mark_step_begin()
        rates, hidden = self.compiled(input_ids, attention_mask, t)
        rates, hidden = rates[:rows, :width], hidden[:rows, :width]
        if self.on_cuda:  # CUDA-graph outputs live in buffers the next replay overwrites; the sampler keeps them
            rates, hidden = rates.clone(), hidden.clone()
        return rates, hidden

    def _graph(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor, t: torch.Tensor):
        """The ahead-of-time graph for these inputs: looked up by their signature, else the first graph whose guards
        accept them, else a new one (None once ahead-of-time compilation failed or made MAX_GRAPHS graphs)."""
        signature = (
            tuple(input_ids.shape), input_ids.dtype, attention_mask.dtype, t.dtype, tuple(t.shape), torch.is_grad_enabled(),
            torch.is_inference_mode_enabled(), self.model.training, self.parameter.dtype, self.parameter.device,
        )  # fmt: skip
        graph = self.graph_for.get(signature)
        if graph is not None:
            return graph
        graph = next((g for g in self.graphs if g.guard_check(self.model, input_ids, attention_mask, t)), None)
        if graph is None:
            if len(self.graphs) >= self.MAX_GRAPHS:
                return None
            graph = self._compile_ahead(input_ids, attention_mask, t)
            if graph is None:
                return None
        self.graph_for[signature] = graph
        return graph

    def _compile_ahead(self, input_ids: torch.LongTensor, attention_mask: torch.Tensor, t: torch.Tensor):
        """One graph for inputs like these, with the width (and more than one row) dynamic; None (and plain
        torch.compile from then on) where torch cannot compile it ahead of time (e.g. a graph break)."""
        example = [input_ids.clone(), attention_mask.clone(), t.clone()]
        for dim, size in enumerate(input_ids.shape):
            if size > 1:  # a size-1 dimension stays static (torch specialises 0 and 1)
                torch._dynamo.mark_dynamic(example[0], dim)
                torch._dynamo.mark_dynamic(example[1], dim)
        if input_ids.shape[0] > 1:
            torch._dynamo.mark_dynamic(example[2], 0)
        try:
            graph = torch.compile(
                self.model.edit_rates, fullgraph=True, options={"guard_filter_fn": _serialisable_guards}
            ).aot_compile((tuple(example), {}))
            graph.disable_guard_check()
        except Exception:  # noqa: BLE001 - any failure here means: compile the usual way
            self.ahead_of_time = False
            return None
        self.graphs.append(graph)
        self.compilations += 1
        return graph


__all__ = ["COMPILE_WIDTH_BUCKETS", "CompiledEditRates", "bucket_rows", "bucket_width"]
