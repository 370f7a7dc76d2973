"""A task head the checkpoint has no weights for is drawn at random: say so, and let no pipeline answer with it
unless asked (before, a base model given to text-classification answered random labels without a word)."""
import pytest

from minflaubert import FlaubertForSequenceClassification, pipeline

from conftest import FIXTURES

BASE = FIXTURES / "tiny-model"  # a FlaubertModel checkpoint: no head weights at all


def test_loading_a_head_the_checkpoint_lacks_warns_like_transformers():
    with pytest.warns(UserWarning) as caught:
        model = FlaubertForSequenceClassification.from_pretrained(BASE)
    message = str(caught[0].message)
    assert message.startswith(f"Some weights of FlaubertForSequenceClassification were not initialized from the "
                              f"model checkpoint at {BASE} and are newly initialized: ['sequence_summary.summary.")
    assert "You should probably TRAIN this model" in message
    assert model.newly_initialized == ["sequence_summary.summary.weight", "sequence_summary.summary.bias"]
    assert FlaubertForSequenceClassification.from_pretrained(
        FIXTURES / "tiny-sequence-classification").newly_initialized == []


@pytest.mark.parametrize("task", ["text-classification", "token-classification", "question-answering",
                                  "fill-mask"])
def test_pipelines_refuse_a_random_head_unless_allowed(task):
    with pytest.warns(UserWarning, match="newly initialized"):
        with pytest.raises(ValueError, match=f"has no weights for the {task} head .*allow_random_head=True"):
            pipeline(task, model=BASE)
    with pytest.warns(UserWarning, match="running it with random weights"):
        pipeline(task, model=BASE, allow_random_head=True)


def test_feature_extraction_needs_no_head():
    vectors = pipeline("feature-extraction", model=FIXTURES / "tiny-sequence-classification")("Le chat.")
    assert len(vectors[0][0]) == 32  # [1, tokens, dim] nested lists
