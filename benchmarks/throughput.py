"""T6 text throughput: retain's sentiment + themes scoring against plain ``transformers`` pipelines.

PROTOCOLS.md: the 10,000 first deduplicated airline tweets, 2 threads, sentiment and themes
predicted together; texts/s and the ratio against plain ``pipeline("text-classification")``
with the same weights, one per task, as a user without retain would run them, both in the same
run; accuracy within 0.5 point of them.

The weights: one ``MultiTaskTextClassifier`` (the bundled all-MiniLM-L6-v2 with a sentiment
head and a head for the nine negative reasons of T2, one epoch: the figure is speed, and both
sides run the same weights), fine-tuned on the deduplicated tweets *after* the first 10,000
(sentiment on all of them, reasons on those that give one), so the scored texts are unseen.
This is what ``retain text train`` keeps when both tasks are transformers
(``model.transformer.shared``). The plain side wraps the fitted encoder with each task's head
(encoder, mean pooling, linear head; the same computation as a
``...ForSequenceClassification`` model) as a ``PreTrainedModel`` and runs
``pipeline("text-classification", model=..., tokenizer=..., top_k=None)`` over the texts with
its defaults (one text per forward pass), one pipeline per task as a user of two models would.
retain's side is ``retain.text.scoring.score_feedback`` (sentiment and theme probabilities per
text) over the two task views of the one model, which share one encoder pass, with the
package's inference path (length-sorted dynamic batches under ``torch.inference_mode``), once
in float32 and once with ``quantize=True`` (int8 dynamic quantisation of the Linear layers).
"""

from __future__ import annotations

import copy
from typing import Any

from benchmarks.harness import Anchor, BenchmarkRun, Goal, benchmark, timed
from benchmarks.text import AIRLINE_TWEETS, load_airline_tweets

T6_SCORED = 10_000
T6_GOAL = Goal(">=", 5.0)
T6_EPOCHS = 1
T6_TUNED_ON = (
    "nothing tuned: package defaults of MultiTaskTextClassifier except epochs=1 (speed is the "
    "figure; both sides run the same weights), fitted on the tweets after the first 10,000"
)
REASON_COLUMN = "negativereason"


def task_head(model: Any, task: str) -> Any:
    """``task``'s head of a fitted multi-task model, as a ``torch.nn.Linear`` of its own."""
    import torch

    first, last = model.columns_[task]
    shared = model.network_.head
    head = torch.nn.Linear(shared.in_features, last - first)
    with torch.no_grad():
        head.weight.copy_(shared.weight[first:last])
        head.bias.copy_(shared.bias[first:last])
    return head.eval()


def plain_pipeline(network: Any, head: Any, labels: list[str], multilabel: bool) -> Any:
    """A plain ``transformers`` text-classification pipeline: ``network``'s encoder, ``head``."""
    import torch
    from transformers import PreTrainedModel, pipeline
    from transformers.modeling_outputs import SequenceClassifierOutput

    from retain.text.encoder import mean_pool

    config = copy.deepcopy(network.encoder.config)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    config.num_labels = len(labels)
    config.problem_type = (
        "multi_label_classification" if multilabel else "single_label_classification"
    )

    class PooledClassifier(PreTrainedModel):
        config_class = type(config)
        base_model_prefix = "encoder"
        _supports_sdpa = True  # the wrapped encoder keeps its own attention implementation

        def __init__(self, config: Any) -> None:
            super().__init__(config)
            self.encoder = network.encoder
            self.head = head

        def forward(self, input_ids: Any = None, attention_mask: Any = None, **extra: Any) -> Any:
            inputs = {k: v for k, v in extra.items() if k == "token_type_ids"}
            hidden = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, **inputs
            ).last_hidden_state
            return SequenceClassifierOutput(logits=self.head(mean_pool(hidden, attention_mask)))

    plain = PooledClassifier(config).eval()
    with torch.inference_mode():
        return pipeline(
            "text-classification", model=plain, tokenizer=network.tokenizer, top_k=None,
            device="cpu",
        )


def run_plain(classifier: Any, texts: list[str], labels: list[str]) -> Any:
    """Probabilities ``(n, len(labels))`` from a plain pipeline, in ``labels`` order."""
    import numpy as np

    out = classifier(texts)
    position = {label: j for j, label in enumerate(labels)}
    proba = np.zeros((len(texts), len(labels)))
    for i, scores in enumerate(out):
        for item in scores:
            proba[i, position[item["label"]]] = item["score"]
    return proba


@benchmark("T6", "text-throughput", data=[AIRLINE_TWEETS])
def text_throughput(run: BenchmarkRun) -> None:
    """retain's sentiment + themes scoring vs two plain pipelines with the same weights."""
    import numpy as np
    import pandas as pd
    import torch

    from retain.text.multitask import MultiTaskTextClassifier
    from retain.text.scoring import SENTIMENT_COLUMNS, score_feedback, theme_column

    torch.set_num_threads(2)
    tweets = load_airline_tweets(run.data_path(AIRLINE_TWEETS))
    scored, rest = tweets.iloc[:T6_SCORED], tweets.iloc[T6_SCORED:]
    reasons = sorted(
        r for r in rest[REASON_COLUMN].dropna().unique() if r != "Can't Tell"
    )
    # Sentiment on every tweet; the reasons (an indicator row) where a tweet gives one, a
    # missing row elsewhere (left out of the theme head's loss).
    indicator = np.array(
        [[float(r == c) for c in reasons] if r in reasons else [np.nan] * len(reasons)
         for r in rest[REASON_COLUMN]]
    )
    targets = {"sentiment": rest["airline_sentiment"].to_numpy(), "themes": indicator}
    model = MultiTaskTextClassifier(epochs=T6_EPOCHS, random_state=run.seed)
    model, seconds_train = timed(model.fit, rest["text"].tolist(), targets)
    sentiment, themes = model.task("sentiment"), model.task("themes")
    texts = scored["text"].tolist()
    feedback = pd.DataFrame({"feedback_id": scored["tweet_id"].astype(str), "text": texts})
    theme_ids = [str(r) for r in reasons]

    ours: dict[str, tuple[Any, float]] = {}
    for label, quantize in (("float32", False), ("int8", True)):
        model.set_params(quantize=quantize)
        ours[label] = timed(score_feedback, feedback, sentiment, themes, theme_ids)
    model.set_params(quantize=False)

    network = model.network_
    plain_sentiment = plain_pipeline(
        network, task_head(model, "sentiment"), [str(c) for c in sentiment.classes_], False
    )
    plain_themes = plain_pipeline(network, task_head(model, "themes"), theme_ids, True)

    def plain_both() -> tuple[Any, Any]:
        return (
            run_plain(plain_sentiment, texts, [str(c) for c in sentiment.classes_]),
            run_plain(plain_themes, texts, theme_ids),
        )

    (plain_s, plain_t), seconds_plain = timed(plain_both)

    truth = scored["airline_sentiment"].astype(str).to_numpy()
    negative = scored[REASON_COLUMN].isin(reasons).to_numpy()
    true_reason = scored.loc[negative, REASON_COLUMN].astype(str).to_numpy()
    classes = np.array([str(c) for c in sentiment.classes_])

    def accuracies(sentiment_proba: Any, theme_proba: Any) -> tuple[float, float]:
        s = float((classes[sentiment_proba.argmax(axis=1)] == truth).mean())
        t = float((np.array(theme_ids)[theme_proba[negative].argmax(axis=1)] == true_reason).mean())
        return s, t

    plain_accuracy = accuracies(plain_s, plain_t)
    plain_rate = len(texts) / seconds_plain
    common = {
        "dataset": AIRLINE_TWEETS,
        "seconds_train": seconds_train,
        "shared_encoder": True,
        "n_texts": len(texts),
        "threads": torch.get_num_threads(),
        "tuned_on": T6_TUNED_ON,
        "plain_seconds": round(seconds_plain, 3),
        "plain_texts_per_s": round(plain_rate, 2),
        "plain_sentiment_accuracy": round(plain_accuracy[0], 6),
        "plain_theme_accuracy": round(plain_accuracy[1], 6),
    }
    anchor = Anchor("plain pipeline('text-classification'), one per task, same weights, same run",
                    round(plain_rate, 2), "here")
    for label, (scores, seconds) in ours.items():
        sentiment_proba = scores[list(SENTIMENT_COLUMNS)].to_numpy()
        order = [list(SENTIMENT_COLUMNS).index(f"sentiment_{c}") for c in classes]
        theme_proba = scores[[theme_column(t) for t in theme_ids]].to_numpy()
        accuracy = accuracies(sentiment_proba[:, order], theme_proba)
        within = all(abs(a - b) <= 0.005 for a, b in zip(accuracy, plain_accuracy))
        name = f"retain score_feedback, one fine-tuned MiniLM-L6, sentiment + themes heads, {label}"
        extra = {
            **common,
            "sentiment_accuracy": round(accuracy[0], 6),
            "theme_accuracy": round(accuracy[1], 6),
            "accuracy_within_half_point": within,
        }
        run.record(metric="texts_per_s", value=len(texts) / seconds, model=name, anchor=anchor,
                   goal=None, seconds_predict=seconds, role="retain", **extra)
        run.record(metric="speedup", value=seconds_plain / seconds, model=name, anchor=anchor,
                   goal=T6_GOAL, seconds_predict=seconds, role="retain", **extra)
