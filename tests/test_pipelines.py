"""Pipelines on the tiny fixtures (random weights: the predictions mean nothing, the arithmetic and the spans do).

Each pipeline's numbers are checked against the model run by hand; character spans are checked against the
original text; fill-mask is compared with transformers' own fill-mask pipeline on the published vocabulary.
"""
import json
import shutil
import warnings

import numpy as np
import pytest

from conftest import FIXTURES, PARITY
from minflaubert import FlaubertForSequenceClassification, FlaubertModel
from minflaubert.nn.layers import softmax
from minflaubert.apps.pipelines import TASKS, pipeline
from minflaubert.apps.question_answering import windows
from minflaubert.apps.token_classification import group_entities

TEXTS = ["Le chat dort sur le canapé depuis ce matin.", "Paris", "Marie habite à Lyon et travaille à Genève.",
         "Quelle heure est-il ? Il est déjà midi !"]


@pytest.fixture(scope="module")
def fill():
    return pipeline("fill-mask", FIXTURES / "tiny-lm")


@pytest.fixture(scope="module")
def tagger():
    return pipeline("token-classification", FIXTURES / "tiny-token-classification")


# ------------------------------------------------------------------------------------------------ common
def test_unknown_task_and_option():
    with pytest.raises(ValueError, match="unknown task 'summarization'.*fill-mask"):
        pipeline("summarization", FIXTURES / "tiny-lm")
    with pytest.raises(ValueError, match="fill-mask has no option 'temperature'.*top_k, targets"):
        pipeline("fill-mask", FIXTURES / "tiny-lm", temperature=2)


@pytest.mark.parametrize("top_k", [0, -1, True, "3", 2.5])
def test_bad_top_k(fill, top_k):
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        fill("Le <special1>.", top_k=top_k)


def test_bad_options():
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        pipeline("feature-extraction", FIXTURES / "tiny-model", batch_size=0)
    with pytest.raises(ValueError, match="pooling must be one of"):
        pipeline("feature-extraction", FIXTURES / "tiny-model", pooling="sum")
    with pytest.raises(ValueError, match="normalize=True needs a pooling"):
        pipeline("feature-extraction", FIXTURES / "tiny-model", normalize=True)
    with pytest.raises(ValueError, match="aggregation_strategy must be one of"):
        pipeline("token-classification", FIXTURES / "tiny-token-classification", aggregation_strategy="longest")


def test_model_object_needs_its_tokenizer_and_the_right_class():
    model = FlaubertModel.from_pretrained(FIXTURES / "tiny-model")
    with pytest.raises(ValueError, match="pass tokenizer="):
        pipeline("feature-extraction", model)
    with pytest.raises(ValueError, match="fill-mask needs a FlaubertWithLMHeadModel, got a FlaubertModel"):
        pipeline("fill-mask", model, tokenizer=FIXTURES / "tiny-model")


def test_a_published_model_not_downloaded_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("MINFLAUBERT_WEIGHTS", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # tests reach no server but their own
    with pytest.raises(OSError, match="minflaubert download flaubert_base_cased"):
        pipeline("fill-mask", "flaubert_base_cased")


def test_batches_are_sorted_by_length_and_answers_stay_in_order():
    extract = pipeline("feature-extraction", FIXTURES / "tiny-model", batch_size=2)
    seen = []
    forward = extract.forward
    extract.forward = lambda ids, mask, rows: seen.append(mask.sum(axis=1).tolist()) or forward(ids, mask, rows)
    texts = [TEXTS[0], TEXTS[1], TEXTS[2], "Le chat."]
    vectors = extract(texts)
    lengths = [len(extract.tokenizer(t)["input_ids"]) for t in texts]
    assert seen == [sorted(lengths)[:2], sorted(lengths)[2:]]  # the two short texts together, then the long ones
    assert [len(v[0]) for v in vectors] == lengths  # each text: [1, tokens, dim], as transformers


def test_every_task_is_registered():
    assert set(TASKS) == {"fill-mask", "feature-extraction", "text-classification", "token-classification",
                          "question-answering"}


# ------------------------------------------------------------------------------------------------ fill-mask
def test_fill_mask_scores_are_the_softmax_at_the_mask(fill):
    text = "Le chat dort sur le <special1>."
    answers = fill(text, top_k=4)
    ids = fill.tokenizer(text, return_tensors="np")["input_ids"]
    logits = fill.model(input_ids=ids).logits[0, list(ids[0]).index(fill.tokenizer.mask_token_id)]
    probabilities = softmax(logits.astype(np.float64))
    best = np.argsort(-probabilities)[:4]
    assert [a["token"] for a in answers] == best.tolist()
    np.testing.assert_allclose([a["score"] for a in answers], probabilities[best], rtol=1e-6)
    for answer in answers:
        assert set(answer) == {"score", "token", "token_str", "sequence"}
        assert answer["token_str"] == fill.tokenizer.decode([answer["token"]])
        assert answer["sequence"].startswith("Le chat dort sur le ")


def test_fill_mask_targets_and_several_masks(fill):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        answers = fill("Le chat <special1>.", targets=["dort</w>", "chat</w>"], top_k=5)
    assert sorted(a["token_str"] for a in answers) == ["chat", "dort"]  # top_k capped by the two targets
    everything = {a["token"]: a["score"] for a in fill("Le chat <special1>.", top_k=fill.model.config.vocab_size)}
    assert all(a["score"] == pytest.approx(everything[a["token"]]) for a in answers)  # softmax over all words
    with pytest.warns(UserWarning, match="'dort' is not a vocabulary entry"):
        assert fill("Le chat <special1>.", targets="dort")[0]["token_str"] == "dort"
    two = fill("Le <special1> dort sur le <special1>.", top_k=2)
    assert len(two) == 2 and all(len(proposals) == 2 for proposals in two)
    assert "<special1>" in two[0][0]["sequence"]  # the other mask stays visible, as in transformers
    batch = fill(["Le <special1>.", "Paris <special1>"], top_k=1)
    assert len(batch) == 2 and len(batch[0]) == 1


def test_fill_mask_needs_a_mask(fill):
    with pytest.raises(ValueError, match="no mask token '<special1>'"):
        fill("Le chat dort.")


def make_published_vocab_lm(transformers, folder, shared_data):
    """A tiny random FlaubertWithLMHeadModel on the published uncased vocabulary, saved like a real checkpoint."""
    from reference import build_model

    vocab = json.loads((shared_data / "flaubert_base_uncased" / "vocab.json").read_text(encoding="utf-8"))
    # embed_init_std 0.5 spreads the logits, so the ranking is decided by real gaps, not by float noise
    model = build_model("FlaubertWithLMHeadModel", dict(vocab_size=len(vocab), emb_dim=32, n_layers=2, n_heads=4,
                                                        max_position_embeddings=128, embed_init_std=0.5))
    model.save_pretrained(str(folder))
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(shared_data / "flaubert_base_uncased" / name, folder / name)
    config = json.loads((shared_data / "flaubert_base_uncased" / "tokenizer_config.json").read_text())
    config["do_lowercase"] = True  # the published file says do_lower_case, which transformers ignores
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")


@pytest.mark.filterwarnings("ignore:target .* is not a vocabulary entry")  # both libraries warn, by design
def test_fill_mask_equals_transformers(transformers, shared_data, tmp_path):
    make_published_vocab_lm(transformers, tmp_path, shared_data)
    theirs = transformers.pipeline("fill-mask", model=str(tmp_path))
    ours = pipeline("fill-mask", tmp_path)
    cases = [("Le chat dort sur le <special1>.", {}), ("Paris est la <special1> de la France.", {"top_k": 20}),
             ("<special1> habite à Lyon et travaille à Genève.", {"top_k": 10}),
             ("Il fait <special1> aujourd'hui, mais il pleuvra demain.", {"targets": ["beau", "froid", "chaud"]}),
             ("Le <special1> dort sur le <special1>.", {"top_k": 3})]
    worst = 0.0
    for text, options in cases:
        expected, got = theirs(text, **options), ours(text, **options)
        flat_expected = sum(expected, []) if isinstance(expected[0], list) else expected
        flat_got = sum(got, []) if isinstance(got[0], list) else got
        assert [a["token"] for a in flat_got] == [a["token"] for a in flat_expected], text  # the same ranking
        assert [a["token_str"] for a in flat_got] == [a["token_str"] for a in flat_expected]
        assert [a["sequence"] for a in flat_got] == [a["sequence"] for a in flat_expected]
        scores, reference = np.array([a["score"] for a in flat_got]), np.array([a["score"] for a in flat_expected])
        np.testing.assert_allclose(scores, reference, rtol=1e-4)
        worst = max(worst, float(np.max(np.abs(scores - reference) / reference)))
    PARITY["fill-mask pipeline scores (relative)"] = worst


# ------------------------------------------------------------------------------------------------ feature-extraction
def test_feature_extraction_equals_the_encoder_text_by_text():
    extract = pipeline("feature-extraction", FIXTURES / "tiny-model", batch_size=3)
    model = extract.model
    tokens, means = extract(TEXTS, return_tensors=True), extract(TEXTS, pooling="mean", return_tensors=True)
    firsts = extract(TEXTS, pooling="first", return_tensors=True)
    for text, vectors, mean, first in zip(TEXTS, tokens, means, firsts):
        alone = model(input_ids=extract.tokenizer(text, return_tensors="np")["input_ids"]).last_hidden_state
        np.testing.assert_allclose(vectors, alone, atol=2e-5)  # [1, tokens, dim]; padding in a batch changes nothing
        np.testing.assert_allclose(mean, alone[0].mean(axis=0), atol=2e-5)
        np.testing.assert_allclose(first, alone[0, 0], atol=2e-5)
    assert extract("Paris", pooling="mean", return_tensors=True).shape == (model.config.emb_dim,)
    alone = extract("Paris", pooling="mean", return_tensors=True)  # (alone, not in a batch: the same computation)
    assert extract("Paris", pooling="mean") == alone.tolist()  # without return_tensors: lists


def test_max_pooling_and_normalize():
    extract = pipeline("feature-extraction", FIXTURES / "tiny-model", batch_size=3)
    for vectors, largest, unit in zip(extract(TEXTS, return_tensors=True),
                                      extract(TEXTS, pooling="max", return_tensors=True),
                                      extract(TEXTS, pooling="mean", normalize=True, return_tensors=True)):
        vectors = vectors[0]
        np.testing.assert_array_equal(largest, vectors.max(axis=0))
        np.testing.assert_allclose(unit, vectors.mean(axis=0) / np.linalg.norm(vectors.mean(axis=0)), rtol=1e-6)
        assert unit.dtype == largest.dtype == np.float32


def test_feature_extraction_reads_a_head_checkpoint():
    with pytest.warns(UserWarning, match="not used"):
        extract = pipeline("feature-extraction", FIXTURES / "tiny-lm")
    assert len(extract("Bonjour")[0][0]) == 32  # [1, tokens, dim] nested lists


# ------------------------------------------------------------------------------------------------ text-classification
def test_text_classification_labels_and_scores():
    classify = pipeline("text-classification", FIXTURES / "tiny-sequence-classification")
    model, tokenizer = classify.model, classify.tokenizer
    everything = classify(TEXTS, top_k=None)
    for text, labels in zip(TEXTS, everything):
        logits = model(input_ids=tokenizer(text, return_tensors="np")["input_ids"]).logits[0]
        expected = softmax(logits.astype(np.float64))
        assert [entry["label"] for entry in labels] == [model.config.id2label[i] for i in np.argsort(-expected)]
        np.testing.assert_allclose([entry["score"] for entry in labels], np.sort(expected)[::-1], rtol=1e-5)
        assert sum(entry["score"] for entry in labels) == pytest.approx(1.0)
    alone = classify(TEXTS[0])  # default top_k=1, as a list
    assert len(alone) == 1 and alone[0]["label"] == everything[0][0]["label"]
    assert alone[0]["score"] == pytest.approx(everything[0][0]["score"], rel=1e-5)
    assert len(classify(TEXTS[0], top_k=2)) == 2
    pair = classify({"text": "Il pleut.", "text_pair": "Le sol est mouillé."}, top_k=None)
    ids = tokenizer("Il pleut.", "Le sol est mouillé.", return_tensors="np")["input_ids"]
    np.testing.assert_allclose(sorted(e["score"] for e in pair), sorted(softmax(model(input_ids=ids).logits[0])),
                               rtol=1e-5)


def test_text_classification_multi_label_uses_sigmoid():
    folder = FIXTURES / "tiny-sequence-classification"
    model = FlaubertForSequenceClassification.from_pretrained(folder, problem_type="multi_label_classification")
    classify = pipeline("text-classification", model, tokenizer=folder, top_k=None)
    scores = {entry["label"]: entry["score"] for entry in classify(TEXTS[0])}
    logits = model(input_ids=classify.tokenizer(TEXTS[0], return_tensors="np")["input_ids"]).logits[0]
    for i, label in model.config.id2label.items():
        assert scores[label] == pytest.approx(1 / (1 + np.exp(-logits[i])), rel=1e-5)
    raw = classify(TEXTS[0], function_to_apply="none")
    assert sorted(entry["score"] for entry in raw) == pytest.approx(sorted(logits.tolist()), rel=1e-5)


@pytest.mark.parametrize("summary_type", ["last", "mean"])
def test_text_classification_is_unaffected_by_padding(summary_type):
    folder = FIXTURES / "tiny-sequence-classification"
    model = FlaubertForSequenceClassification.from_pretrained(folder, summary_type=summary_type)
    classify = pipeline("text-classification", model, tokenizer=folder, top_k=None)
    together = classify(TEXTS)
    for text, labels in zip(TEXTS, together):
        assert [entry["score"] for entry in classify(text)] == pytest.approx([e["score"] for e in labels], rel=1e-5)


# ------------------------------------------------------------------------------------------------ token-classification
SPAN_TEXTS = ["Marie habite à Lyon et travaille à Genève.", "L’été, Jean-Pierre  a visité «Montréal»…",
              "  Victor Hugo est né à Besançon en 1802.", "ÉCOLE d'été à Saint-Étienne !"]


@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
@pytest.mark.parametrize("text", SPAN_TEXTS)
def test_token_classification_spans_slice_the_original_text(tagger, text, strategy):
    entities = tagger(text, aggregation_strategy=strategy, ignore_labels=())
    assert entities, "with no label ignored, every word belongs to some entity"
    for entity, following in zip(entities, entities[1:] + [None]):
        assert entity["word"] == text[entity["start"]:entity["end"]]
        assert entity["word"].strip() == entity["word"] != ""
        assert 0 <= entity["score"] <= 1
        if following is not None:  # in order; pieces of one character ("…" -> "...") share its span
            assert entity["start"] <= following["start"] and entity["end"] <= following["end"]
    keys = ["entity", "score", "index", "word", "start", "end"] if strategy == "none" else \
        ["entity_group", "score", "word", "start", "end"]
    assert all(list(entity) == keys for entity in entities)
    covered = {i for entity in entities for i in range(entity["start"], entity["end"])}
    assert covered >= {i for i, character in enumerate(text) if not character.isspace()}  # groups hold spaces


def test_token_classification_words_and_labels(tagger):
    text = "Jean-Pierre habite à Saint-Étienne."
    encoding = tagger.tokenizer(text, return_offsets_mapping=True, return_tensors="np")
    probabilities = softmax(tagger.model(input_ids=encoding["input_ids"]).logits[0].astype(np.float64))
    tokens = tagger(text, ignore_labels=())
    for token in tokens:  # "none": one result per token, its own best label
        assert token["entity"] == tagger.model.config.id2label[int(probabilities[token["index"]].argmax())]
        assert token["score"] == pytest.approx(probabilities[token["index"]].max())
    words = encoding.word_ids()
    first = tagger(text, aggregation_strategy="first", ignore_labels=())
    starts = {int(encoding["offset_mapping"][0, i, 0]) for i, w in enumerate(words) if w is not None
              and (i == 0 or words[i - 1] != w)}
    assert all(group["start"] in starts for group in first)  # groups begin where words begin
    assert all(tagger(text, aggregation_strategy="simple")[i]["entity_group"] != "O"
               for i in range(len(tagger(text, aggregation_strategy="simple"))))


def test_group_entities_follows_the_bio_rules():
    def entity(label, start):
        return {"entity": label, "score": 0.5, "word": None, "start": start, "end": start + 1}

    labels = ["B-PER", "I-PER", "B-PER", "I-LOC", "LOC", "O", "O"]
    groups = group_entities([entity(label, i) for i, label in enumerate(labels)])
    assert [(g["entity_group"], g["start"], g["end"]) for g in groups] == \
        [("PER", 0, 2), ("PER", 2, 3), ("LOC", 3, 5), ("O", 5, 7)]


# ------------------------------------------------------------------------------------------------ question-answering
CONTEXT = ("Le musée du Louvre accueille des millions de visiteurs chaque année. Victor Hugo est né à Besançon "
           "en 1802. Marie habite à Lyon et travaille à Genève. Le train pour Bordeaux part à huit heures.")


def test_windows_cover_the_context_with_overlap():
    assert windows(5, 10, 3) == [(0, 5)]
    spans = windows(25, 10, 3)
    assert spans == [(0, 10), (7, 17), (14, 24), (21, 25)]
    assert all(a[1] - b[0] == 3 for a, b in zip(spans, spans[1:]))


@pytest.mark.parametrize("fixture, head", [("tiny-qa-simple", "FlaubertForQuestionAnsweringSimple"),
                                           ("tiny-qa", "FlaubertForQuestionAnswering")])
def test_qa_uses_the_checkpoint_head_and_answers_with_spans_of_the_context(fixture, head):
    answer = pipeline("question-answering", FIXTURES / fixture)
    assert type(answer.model).__name__ == head
    for options in ({}, {"max_seq_len": 24, "doc_stride": 4}):  # one window; many overlapping windows
        results = answer(question="Où habite Marie ?", context=CONTEXT, top_k=3, **options)
        assert 1 <= len(results) <= 3
        assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
        for result in results:
            assert list(result) == ["score", "start", "end", "answer"]
            assert result["answer"] == CONTEXT[result["start"]:result["end"]]
            assert result["answer"] == result["answer"].strip()
            if result["answer"] == "":  # the beam may propose no valid span: then the empty answer, score 0
                assert head == "FlaubertForQuestionAnswering" and result == {"score": 0.0, "start": 0, "end": 0,
                                                                             "answer": ""}
    single = answer({"question": "Qui ?", "context": "Marie habite à Lyon."})
    assert isinstance(single, dict) and single["answer"] == "Marie habite à Lyon."[single["start"]:single["end"]]
    assert len(answer([{"question": "Qui ?", "context": CONTEXT}] * 3)) == 3


def test_qa_simple_head_picks_the_best_span_of_the_model_outputs():
    answer = pipeline("question-answering", FIXTURES / "tiny-qa-simple")
    question, context = "Où habite Marie ?", "Marie habite à Lyon et travaille à Genève."
    encoding = answer.tokenizer(question, context, return_offsets_mapping=True, return_tensors="np",
                                return_token_type_ids=True)
    out = answer.model(input_ids=encoding["input_ids"])
    is_context = (encoding["token_type_ids"][0] == 1) & (encoding["offset_mapping"][0, :, 1] > 0)
    start = softmax(np.where(is_context, out.start_logits[0], -np.inf))
    end = softmax(np.where(is_context, out.end_logits[0], -np.inf))
    best = max(((start[s] * end[e], s, e) for s in range(len(start)) for e in range(s, min(s + 15, len(end)))
                if is_context[s] and is_context[e]))
    offsets = encoding["offset_mapping"][0]
    result = answer(question=question, context=context)
    assert (result["start"], result["end"]) == (offsets[best[1]][0], offsets[best[2]][1])
    assert result["score"] == pytest.approx(best[0], rel=1e-5)


def test_qa_beam_head_reads_the_end_major_layout():
    answer = pipeline("question-answering", FIXTURES / "tiny-qa")
    question, context = "Où habite Marie ?", "Marie habite à Lyon et travaille à Genève."
    feature = answer.preprocess({"question": question, "context": context}, doc_stride=None, max_seq_len=64)[0]
    out = answer.model(input_ids=np.array([feature["input_ids"]]), p_mask=np.array([feature["p_mask"]], np.float32))
    k_start, k_end = answer.model.config.start_n_top, answer.model.config.end_n_top
    ends = out.end_top_index[0].reshape(k_end, k_start)  # [end rank, start rank]
    end_probs = out.end_top_log_probs[0].reshape(k_end, k_start)
    candidates = [(out.start_top_log_probs[0, i] * end_probs[j, i], out.start_top_index[0, i], ends[j, i])
                  for i in range(k_start) for j in range(k_end)
                  if not feature["p_mask"][ends[j, i]] and out.start_top_index[0, i] <= ends[j, i]]
    result = answer(question=question, context=context)
    if candidates:
        score, first, last = max(candidates)
        assert (result["start"], result["end"]) == (feature["offsets"][first][0], feature["offsets"][last][1])
        assert result["score"] == pytest.approx(score, rel=1e-5)
    else:
        assert result == {"score": 0.0, "start": 0, "end": 0, "answer": ""}


def test_qa_errors():
    answer = pipeline("question-answering", FIXTURES / "tiny-qa-simple")
    with pytest.raises(ValueError, match="the context is empty"):
        answer(question="Qui ?", context="   ")
    with pytest.raises(ValueError, match="leaves no room for the context"):
        answer(question="Qui " * 70, context=CONTEXT)
    with pytest.raises(ValueError, match="doc_stride=30 must be smaller"):
        answer(question="Qui ?", context=CONTEXT, max_seq_len=24, doc_stride=30)
    with pytest.raises(TypeError, match="question-answering takes"):
        answer({"question": "Qui ?"})


@pytest.mark.parametrize("fixture", ["tiny-qa-simple", "tiny-qa"])
@pytest.mark.parametrize("windows_of", [{}, {"max_seq_len": 24, "doc_stride": 4}])
def test_qa_handle_impossible_answer_scores_the_empty_answer(fixture, windows_of):
    """The empty answer joins the candidates: the simple head's P(start = <s>) x P(end = <s>), its softmaxes taking
    in <s> as the "no answer" slot (transformers' rule), the beam head's sigmoid(cls_logits); over several windows
    the smallest."""
    answer = pipeline("question-answering", FIXTURES / fixture)
    item = {"question": "Où habite Marie ?", "context": CONTEXT}
    features = answer.preprocess(item, doc_stride=windows_of.get("doc_stride"),
                                 max_seq_len=windows_of.get("max_seq_len", 384))
    nulls = []
    for feature in features:
        ids, p_mask = np.array([feature["input_ids"]]), np.array(feature["p_mask"])
        if fixture == "tiny-qa":
            out = answer.model(input_ids=ids, p_mask=p_mask[None].astype(np.float32))
            nulls.append(1 / (1 + np.exp(-float(out.cls_logits[0]))))
            continue
        out = answer.model(input_ids=ids)
        slot = (p_mask == 0) | (np.arange(len(p_mask)) == 0)
        start = softmax(np.where(slot, out.start_logits[0], -np.inf).astype(np.float64))
        end = softmax(np.where(slot, out.end_logits[0], -np.inf).astype(np.float64))
        nulls.append(start[0] * end[0])
    results = answer(item, top_k=100_000, handle_impossible_answer=True, **windows_of)  # every candidate
    empty = [result for result in results if result["answer"] == ""]
    assert empty == [{"score": pytest.approx(min(nulls), rel=1e-6), "start": 0, "end": 0, "answer": ""}]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert all(r["answer"] == "" for r in answer(item, handle_impossible_answer=False, top_k=50) if r["end"] == 0)
    with pytest.raises(ValueError, match="handle_impossible_answer must be True or False"):
        answer(item, handle_impossible_answer="yes")
