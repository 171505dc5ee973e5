"""Leave-one-out, full-ranking evaluation: Recall@K and NDCG@K."""

from genrec.evaluation.evaluate import evaluate_recommender
from genrec.evaluation.metrics import metrics_from_ranks, ndcg_at_k, recall_at_k, target_ranks

__all__ = ["evaluate_recommender", "metrics_from_ranks", "ndcg_at_k", "recall_at_k", "target_ranks"]
