"""The trained generative-retrieval artifact: tokenizer + model + item map + code table.

Layout of an artifact directory::

    manifest.json    format version, configs, level layout, reports
    tokenizer.pt     Semantic-ID tokenizer (its own format version)
    model.pt         TigerModel state_dict (generator, re-ranker and its tuned weight)
    item_ids.json    dense item index -> external item id
    item_codes.npy   int64 [N, levels+1] code tuple of every item (the valid-code table)
    collab_from_text.npy  (hybrid item vectors) text → collaborative map for items added later
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from genrec.data.splits import PAD_ITEM, ItemIndex, pad_histories
from genrec.embeddings.build import hybrid_from_text
from genrec.embeddings.text import TextEmbedder, item_texts
from genrec.model.code_table import CodeTable
from genrec.model.generative import GenerativeRecommender, TigerModel, user_bucket
from genrec.semantic.tokenizer import SemanticIdTokenizer
from genrec.training.config import TrainConfig

BUNDLE_FORMAT_VERSION = 1
COLLAB_FROM_TEXT = "collab_from_text.npy"


@dataclass
class TrainedBundle:
    config: TrainConfig
    tokenizer: SemanticIdTokenizer
    model: TigerModel
    item_index: ItemIndex
    code_table: CodeTable
    embedding_source: str = "text"
    report: dict[str, Any] = field(default_factory=dict)
    collab_from_text: np.ndarray | None = None  # hybrid vectors: text → collaborative part (ItemEmbeddings)

    # ------------------------------------------------------------- inference
    def recommender(
        self, top_k: int | None = None, beam_width: int | None = None, exclude_history: bool = True,
        device: str | torch.device = "cpu",
    ) -> GenerativeRecommender:
        """A ready ``GenerativeRecommender`` (eval mode) over the current code table."""
        rec = GenerativeRecommender(
            self.model, self.code_table, top_k=top_k or self.config.top_k,
            beam_width=beam_width, exclude_history=exclude_history,
        )
        return rec.to(device).eval()

    def user_buckets(self, user_ids: list[str] | None, n: int) -> torch.Tensor:
        if user_ids is None:
            return torch.zeros(n, dtype=torch.long)
        return torch.tensor([user_bucket(u, self.config.model.user_buckets) for u in user_ids], dtype=torch.long)

    @torch.no_grad()
    def recommend(
        self, histories: list[list[str]], k: int | None = None, user_ids: list[str] | None = None,
        beam_width: int | None = None, exclude_history: bool = True,
    ) -> list[list[tuple[str, float]]]:
        """External item ids in, ``[(item_id, score), ...]`` per user out (unknown ids ignored)."""
        k = k or self.config.top_k
        idx = [self.item_index.indices(h) for h in histories]
        idx = [i[i != PAD_ITEM] for i in idx]
        hist = torch.as_tensor(pad_histories(idx, self.config.max_history))
        rec = self.recommender(top_k=k, beam_width=beam_width, exclude_history=exclude_history)
        items, scores = rec(hist, self.user_buckets(user_ids, len(histories)))
        out = []
        for row_i, row_s in zip(items.tolist(), scores.tolist(), strict=True):
            out.append([(str(self.item_index.ids[i]), s) for i, s in zip(row_i, row_s, strict=True) if i >= 0])
        return out

    # ------------------------------------------------------------- cold start
    def embed_items(self, items: pd.DataFrame) -> np.ndarray:
        """Tokenizer-input vectors for new items from their text (collaborative part = 0)."""
        text = TextEmbedder(self.config.embeddings.device).encode(item_texts(items), progress=False)
        return self.tokenizer_input(text)

    def tokenizer_input(self, text: np.ndarray) -> np.ndarray:
        """Tokenizer-input vectors from text embeddings ``[M, 384]``, for callers that keep their
        own embedder loaded (the cold-start function). For hybrid vectors the collaborative part
        is predicted from the text (``collab_from_text``; zeros for a bundle trained without one),
        so a new item lands among the codes of the items it resembles."""
        if self.embedding_source == "interactions":
            raise ValueError("this bundle's tokenizer was fitted on interaction vectors only; pass embeddings")
        if self.embedding_source == "hybrid":
            dim = self.tokenizer.input_dim or text.shape[1]
            return hybrid_from_text(text, self.collab_from_text, self.config.embeddings.text_weight,
                                    dim - text.shape[1])
        return np.asarray(text, dtype=np.float32)

    def add_items(
        self, item_ids: list[str], embeddings: np.ndarray | None = None, items: pd.DataFrame | None = None
    ) -> np.ndarray:
        """Give new items Semantic IDs and make them generatable at once (no retraining).

        Pass either tokenizer-input ``embeddings [M, D]`` or an ``items`` frame with text.
        Returns the new dense indices.
        """
        if embeddings is None:
            if items is None:
                raise ValueError("add_items needs embeddings or an items frame")
            embeddings = self.embed_items(items)
        known = [i for i in item_ids if self.item_index.get(str(i)) != PAD_ITEM]
        if known:
            raise ValueError(f"items already in the catalogue: {known[:5]}")
        codes = self.tokenizer.assign(embeddings, existing=self.code_table.item_codes.cpu().numpy())
        self.code_table.add_items(torch.as_tensor(codes))
        return self.item_index.append([str(i) for i in item_ids])

    # ------------------------------------------------------------ save / load
    def save(self, folder: str | Path) -> Path:
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(out)
        torch.save(self.model.state_dict(), out / "model.pt")
        np.save(out / "item_codes.npy", self.code_table.item_codes.cpu().numpy())
        (out / "item_ids.json").write_text(json.dumps([str(i) for i in self.item_index.ids]))
        if self.collab_from_text is not None:
            np.save(out / COLLAB_FROM_TEXT, self.collab_from_text)
        manifest = {
            "format_version": BUNDLE_FORMAT_VERSION,
            "kind": "genrec-generative-retrieval",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "n_items": self.code_table.n_items,
            "level_sizes": self.code_table.level_sizes,
            "embedding_source": self.embedding_source,
            "config": self.config.model_dump(mode="json"),
            "report": self.report,
        }
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        return out

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> TrainedBundle:
        root = Path(folder)
        manifest = json.loads((root / "manifest.json").read_text())
        if manifest.get("format_version") != BUNDLE_FORMAT_VERSION:
            raise ValueError(f"unsupported bundle format {manifest.get('format_version')}")
        config = TrainConfig.model_validate(manifest["config"])
        tokenizer = SemanticIdTokenizer.load(root)
        table = CodeTable(torch.as_tensor(np.load(root / "item_codes.npy")), manifest["level_sizes"])
        state = torch.load(root / "model.pt", map_location="cpu", weights_only=True)
        model = TigerModel.from_state_dict(config.model, table.level_sizes, state)
        config.model = model.config  # the weights' encoder, where the manifest predates the setting
        item_index = ItemIndex(np.asarray(json.loads((root / "item_ids.json").read_text()), dtype=object))
        imputer = root / COLLAB_FROM_TEXT
        return cls(
            config=config, tokenizer=tokenizer, model=model.to(device).eval(), item_index=item_index,
            code_table=table, embedding_source=manifest["embedding_source"], report=manifest.get("report", {}),
            collab_from_text=np.load(imputer) if imputer.is_file() else None,
        )
