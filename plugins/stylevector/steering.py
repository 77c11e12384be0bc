"""Reading and steering a decoder's residual stream at one layer (StyleVector's mechanics).

"Layer l" is the output of decoder block l (0-based): the same forward hook reads
activations for extraction and adds the style vector for steering, so both act on the
same tensor (no ``output_hidden_states`` off-by-one or final-norm surprises). A block's
output may be a bare tensor (recent Llama code) or a tuple (GPT-2); both are handled.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch

from harness.api import BenchError


def decoder_layers(model) -> Sequence[torch.nn.Module]:
    """The decoder blocks of a causal LM (Llama/Mistral/Qwen style, GPT-2, or a peft wrap)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for path in ("model.layers", "transformer.h", "gpt_neox.layers"):
        obj = base
        try:
            for name in path.split("."):
                obj = getattr(obj, name)
        except AttributeError:
            continue
        return obj
    raise BenchError(f"stylevector: cannot find the decoder layers of {type(base).__name__}.")


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


def _with_hidden(output, hidden):
    return (hidden,) + tuple(output[1:]) if isinstance(output, tuple) else hidden


@contextmanager
def capture(model, layers: Sequence[int]) -> Iterator[dict[int, torch.Tensor]]:
    """Record the output of each block in ``layers`` during the forward passes inside the
    ``with`` block (the last pass wins); the hooks are removed on exit."""
    blocks = decoder_layers(model)
    seen: dict[int, torch.Tensor] = {}
    handles = []
    for layer in layers:
        if not 0 <= layer < len(blocks):
            raise BenchError(f"stylevector: layer {layer} out of range (model has {len(blocks)}).")

        def hook(module, inputs, output, layer=layer):
            seen[layer] = _hidden(output).detach()

        handles.append(blocks[layer].register_forward_hook(hook))
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


@contextmanager
def steer(model, layer: int, vectors: torch.Tensor, alpha: float, all_positions: bool = False):
    """Add ``alpha * vectors`` to block ``layer``'s output while generating.

    ``vectors`` is [D] (one user) or [B, D] (one row per batch row). By default only the
    newest position of each forward pass is steered: during cached generation that is
    the last prompt token in the prefill pass and then every generated token (the
    paper's scheme; ``all_positions`` also steers the prompt). Needs ``use_cache``
    (generate's default). The hook is removed on exit, even after an error.
    """
    blocks = decoder_layers(model)
    if not 0 <= layer < len(blocks):
        raise BenchError(f"stylevector: layer {layer} out of range (model has {len(blocks)}).")

    def hook(module, inputs, output):
        h = _hidden(output)
        v = (alpha * vectors).to(device=h.device, dtype=h.dtype)
        v = v.unsqueeze(-2) if v.dim() == 2 else v  # [B, 1, D] broadcasts over positions
        if all_positions:
            h = h + v
        else:
            h = torch.cat([h[:, :-1], h[:, -1:] + v], dim=1)
        return _with_hidden(output, h)

    handle = blocks[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def steer_masked(model, layer: int, vectors: torch.Tensor, alpha: float, mask: torch.Tensor):
    """Add ``alpha * vectors`` ([B, D] or [D]) at the positions where ``mask`` ([B, T]) is 1,
    in one teacher-forced forward pass (scoring a given response under steering: the mask
    covers the last prompt token and the response, the positions generation steers)."""
    blocks = decoder_layers(model)

    def hook(module, inputs, output):
        h = _hidden(output)
        v = (alpha * vectors).to(device=h.device, dtype=h.dtype)
        v = v.unsqueeze(-2) if v.dim() == 2 else v
        return _with_hidden(output, h + mask.to(h.device, h.dtype).unsqueeze(-1) * v)

    handle = blocks[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def sequence_activations(model, tokenizer, prompts: Sequence[str], responses: Sequence[str],
                         layers: Sequence[int], position: str = "last", batch_size: int = 64,
                         device="cpu") -> dict[int, torch.Tensor]:
    """Activation of ``prompt ⊕ response`` at each layer, one [N, D] matrix per layer.

    ``position``: ``last`` (the last token of the concatenation), ``mean_response``
    (mean over the response's tokens) or ``mean_all`` (mean over every token, as the
    third-party re-implementation does). Prompt and response are tokenised separately
    and concatenated, right-padded, so a row's activations do not depend on padding.
    """
    out: dict[int, list[torch.Tensor]] = {l: [] for l in layers}
    for s in range(0, len(prompts), batch_size):
        ps, rs = prompts[s:s + batch_size], responses[s:s + batch_size]
        rows, resp_len = [], []
        for p, r in zip(ps, rs):
            p_ids = tokenizer(p, add_special_tokens=False)["input_ids"] if p else []
            r_ids = tokenizer(r, add_special_tokens=False)["input_ids"]
            if not p_ids and tokenizer.bos_token_id is not None:
                p_ids = [tokenizer.bos_token_id]
            rows.append(p_ids + r_ids)
            resp_len.append(len(r_ids))
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        att = torch.zeros((len(rows), width), dtype=torch.long)
        sel = torch.zeros((len(rows), width))
        for i, (r, n) in enumerate(zip(rows, resp_len)):
            ids[i, :len(r)] = torch.tensor(r)
            att[i, :len(r)] = 1
            if position == "last":
                sel[i, len(r) - 1] = 1
            elif position == "mean_response":
                sel[i, len(r) - max(n, 1):len(r)] = 1
            elif position == "mean_all":
                sel[i, :len(r)] = 1
            else:
                raise BenchError(f"stylevector: unknown position '{position}' "
                                 "(last, mean_response, mean_all).")
        sel = (sel / sel.sum(1, keepdim=True)).to(device)
        with capture(model, layers) as seen:
            model(input_ids=ids.to(device), attention_mask=att.to(device))
        for l in layers:
            out[l].append(torch.einsum("bt,btd->bd", sel, seen[l].float()).cpu())
    return {l: torch.cat(v) for l, v in out.items()}


def style_vector(pos: torch.Tensor, neg: torch.Tensor | None, extractor: str = "mean_diff"
                 ) -> torch.Tensor:
    """One user's style vector from positive activations [N, D] and negatives [M, D]
    (``None``: the positive mean alone, the ablation).

    ``mean_diff`` (the paper's default) = mean(pos) − mean(neg). ``pca`` takes the first
    (uncentred) principal direction of the paired differences and ``logreg`` a logistic-regression
    probe's weight; both are sign-aligned with and scaled to the mean difference's
    projection on them, so α means the same across extractors.
    """
    if neg is None:
        return pos.mean(0)
    mean = pos.mean(0) - neg.mean(0)
    if extractor == "mean_diff":
        return mean
    if extractor == "pca":
        if pos.shape != neg.shape:
            raise BenchError("stylevector: the pca extractor needs paired negatives.")
        # uncentred: centring the paired differences would remove the very direction
        # (their mean) that the style shifts them along
        _, _, v = torch.linalg.svd(pos - neg, full_matrices=False)
        direction = v[0]
    elif extractor == "logreg":
        from sklearn.linear_model import LogisticRegression

        x = torch.cat([pos, neg]).numpy()
        y = [1] * len(pos) + [0] * len(neg)
        w = torch.tensor(LogisticRegression(max_iter=1000).fit(x, y).coef_[0], dtype=pos.dtype)
        direction = w / w.norm().clamp_min(1e-12)
    else:
        raise BenchError(f"stylevector: unknown extractor '{extractor}' (mean_diff, pca, logreg).")
    return direction * (mean @ direction)
