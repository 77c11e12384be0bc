"""Building and training one arm of the ctr comparison inside a cell."""
from __future__ import annotations

from typing import Any

from harness.api import BenchError
from harness.tasks.ctr import CTRData

from .cf import train_cf


def train_method(method: str, p: Any, data: Any, ctx: Any) -> Any:
    if not isinstance(data, CTRData):
        raise BenchError(f"method '{method}' needs the ctr task's data (dataset 'ml-100k-ctr'), "
                         f"got {type(data).__name__}.")
    device = ctx.device
    if method == "ctr_mf":
        return train_cf(data, p, ctx.seed, ctx=ctx, cache_dir=ctx.cache_dir, device=device)
    from .model import LLMCTR, stage0_llm, train_llm_ctr

    cf = None
    if method in ("collm", "cora"):
        cf = train_cf(data, p.cf, ctx.seed, cache_dir=ctx.cache_dir, device=device)
    llm = stage0_llm(data, p.llm, p.pretrain_history_texts, ctx.cache_dir, device)
    model = LLMCTR(llm, data, method, p, cf, ctx.seed, device)
    model.eval_batch_size = p.eval_batch_size
    model.history = train_llm_ctr(model, data, ctx, p)
    return model
