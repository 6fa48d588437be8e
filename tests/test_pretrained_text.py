"""Registered text models feed churn features only at dates after the feedback they were fitted on."""

from __future__ import annotations

import pandas as pd

from retain.config import TextModelConfig
from retain.text.tfidf import make_sentiment_model
from retain.training import TextModels, _pretrained_scores

CONFIG = TextModelConfig(min_df=2, max_features=500)


def _feedback() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "feedback_id": ["F1", "F2", "F3"],
            "customer_id": ["C1", "C1", "C2"],
            "created_at": pd.to_datetime(["2024-03-01", "2024-07-01", "2024-09-01"]),
            "text": ["awful billing", "great service", "awful again"],
        }
    )


def test_registered_text_models_give_no_scores_before_their_training_data_ends() -> None:
    sentiment = make_sentiment_model(CONFIG).fit(
        ["awful", "awful, terrible", "great", "great, lovely"], ["negative", "negative", "positive", "positive"]
    )
    models = TextModels(
        sentiment=sentiment, themes=None, theme_ids=[], metrics={}, baseline_metrics={},
        train_until=pd.Timestamp("2024-06-30"), registered={"retain-sentiment": "1"},
    )
    scores_for = _pretrained_scores(_feedback(), models, [])
    # the model saw feedback up to 2024-06-30: a feature before then would have seen the future
    assert scores_for(pd.Timestamp("2024-05-01")) is None
    at = scores_for(pd.Timestamp("2024-08-01"))
    assert at is not None
    assert at["feedback_id"].tolist() == ["F1", "F2"]  # nothing created after as_of
    assert at.set_index("feedback_id")["sentiment_negative"]["F1"] > 0.5
