"""The task heads: small functions on top of the encoder's last hidden state, and thin classes that wire them up.

Every class below is ``FlaubertPreTrainedModel`` plus two things: ``head_shapes`` (its extra weights, by the names
transformers saves them under) and a ``head`` method that turns the last hidden state [batch, seq, dim] (and the
labels, if any) into the output fields. ``__call__`` takes transformers' exact arguments: ``HeadModel``'s (with
``labels``) for four heads, their own for the two question-answering heads. ``HeadModel.run`` does the rest for
all six: check the inputs, run the encoder, call ``head``, pack the output class.

The math comes first, as plain functions with shape comments; the losses are in ``losses.py`` and the SQuAD head's
math in ``squad.py``. Dropout is absent since we only run inference.
"""
from __future__ import annotations

import numpy as np

from .inputs import as_array, as_indices, class_labels, float_labels
from ..nn.layers import gelu, linear, relu
from .losses import binary_cross_entropy_with_logits, cross_entropy, log_softmax, mse, nll_loss
from .embeddings import Linear
from .model import FlaubertPreTrainedModel
from .outputs import (FlaubertForQuestionAnsweringOutput, MaskedLMOutput, MultipleChoiceModelOutput,
                      QuestionAnsweringModelOutput, SequenceClassifierOutput, TokenClassifierOutput)
from .squad import squad_beam_search, squad_loss, squad_shapes


# ---------------------------------------------------------------------------------------- adaptive softmax
def adaptive_softmax_shapes(config) -> dict[str, tuple]:
    """The weights of torch.nn.AdaptiveLogSoftmaxWithLoss(dim, vocab, asm_cutoffs, asm_div_value, head_bias=True).

    The head scores the shortlist (ids below the first cutoff) plus one entry per cluster; cluster i (the ids
    between cutoffs i and i+1) has its own two-layer tail, dim -> dim // div^(i+1) -> cluster size, without biases.
    """
    dim, cutoffs = config.emb_dim, [*config.asm_cutoffs, config.vocab_size]
    n_clusters = len(cutoffs) - 1
    shapes = {"pred_layer.proj.head.weight": (cutoffs[0] + n_clusters, dim),
              "pred_layer.proj.head.bias": (cutoffs[0] + n_clusters,)}
    for i in range(n_clusters):
        width = int(dim // config.asm_div_value ** (i + 1))  # subtle: floor of a float division, as torch does
        shapes[f"pred_layer.proj.tail.{i}.0.weight"] = (width, dim)
        shapes[f"pred_layer.proj.tail.{i}.1.weight"] = (cutoffs[i + 1] - cutoffs[i], width)
    return shapes


def adaptive_log_softmax(x, p, cutoffs):  # [..., dim] -> [..., vocab]
    """Full-vocabulary log-probabilities of the adaptive softmax (Grave et al. 2017).

    log p(id) = log p_head(id) for a shortlist id, and log p_head(cluster) + log p_cluster(id) for an id inside a
    cluster. ``cutoffs`` are the config's ``asm_cutoffs``; the cluster widths (asm_div_value) are in the weights.
    """
    head = log_softmax(linear(x, p["head"]))  # [..., shortlist + clusters]
    shortlist = cutoffs[0]
    parts = [head[..., :shortlist]]
    for i in range(len(cutoffs)):
        tail = p["tail"][i]
        cluster = log_softmax(linear(linear(x, tail[0]), tail[1]))  # [..., cluster size]
        parts.append(cluster + head[..., shortlist + i, None])
    return np.concatenate(parts, axis=-1)


# ----------------------------------------------------------------------------------------- sequence summary
SUMMARY_ACTIVATIONS = {None: lambda x: x, "linear": lambda x: x, "tanh": np.tanh, "relu": relu, "gelu": gelu}


def summary_shapes(config, prefix="sequence_summary") -> dict[str, tuple]:
    """The optional projection of ``sequence_summary``; also where an unusable summary config is refused."""
    if config.summary_type == "attn":
        raise ValueError('summary_type="attn" is not implemented (transformers raises NotImplementedError too): '
                         'use "first", "last", "mean" or "cls_index"')
    if config.summary_activation not in SUMMARY_ACTIVATIONS:
        raise ValueError(f"summary_activation must be one of {sorted(map(str, SUMMARY_ACTIVATIONS))}, "
                         f"got {config.summary_activation!r}")
    if not config.summary_use_proj:
        return {}
    width = summary_width(config)
    return {f"{prefix}.summary.weight": (width, config.emb_dim), f"{prefix}.summary.bias": (width,)}


def summary_width(config) -> int:
    """How wide ``sequence_summary``'s output is: num_labels, or emb_dim when there is no projection to labels."""
    return config.num_labels if config.summary_use_proj and config.summary_proj_to_labels else config.emb_dim


def sequence_summary(hidden, p, config, cls_index=None):  # [batch, seq, dim] -> [batch, summary_width]
    """One vector per sequence: pick a token (or average them), then optionally project and squash it.

    ``p`` holds the projection as ``p["summary"]`` when ``summary_use_proj``. ``cls_index`` [batch] picks a token
    per row for summary_type="cls_index" (default: the last token).
    """
    batch, seq_len, _ = hidden.shape
    kind = config.summary_type
    if kind == "first":
        x = hidden[:, 0]
    elif kind == "last":
        x = hidden[:, -1]  # subtle: the last *position*, padding or not, exactly as transformers
    elif kind == "mean":
        x = hidden.mean(axis=1)  # subtle: padded positions (zero vectors) count in the mean, as in transformers
    elif kind == "cls_index":
        rows = np.full(batch, seq_len - 1) if cls_index is None else as_indices(cls_index, "cls_index", 1, 0, seq_len)
        x = hidden[np.arange(batch), rows]
    else:
        raise ValueError(f'summary_type={kind!r} is not implemented: use "first", "last", "mean" or "cls_index"')
    if "summary" in p:
        x = linear(x, p["summary"])
    return SUMMARY_ACTIVATIONS[config.summary_activation](x)


# ----------------------------------------------------------------------------------------------- the classes
class HeadModel(FlaubertPreTrainedModel):
    """The encoder plus a head. Subclasses define ``output_class``, ``head_shapes`` and
    ``head(last, **head_arguments) -> {field: array}``. The ``__call__`` here has transformers' arguments for the heads
    trained with ``labels`` (language model, sequence and token classification, multiple choice); the two
    question-answering heads, trained with answer positions, have their own."""

    output_class: type

    def __call__(self, input_ids=None, attention_mask=None, langs=None, token_type_ids=None, position_ids=None,
                 lengths=None, cache=None, inputs_embeds=None, labels=None, output_attentions=None,
                 output_hidden_states=None, return_dict=None, cache_position=None):
        encoder_arguments = dict(
            input_ids=input_ids, attention_mask=attention_mask, langs=langs, token_type_ids=token_type_ids,
            position_ids=position_ids, lengths=lengths, cache=cache, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            cache_position=cache_position)
        return self.run(encoder_arguments, return_dict, labels=labels)

    def run(self, encoder_arguments: dict, return_dict, **head_arguments):
        """The encoder on ``encoder_arguments``, then ``head`` on its last hidden state and ``head_arguments``; the
        output object, or its tuple (``as_requested``)."""
        encoded = self.run_encoder(**encoder_arguments)
        last, hidden_states, attentions = encoded
        output = self.output_class(**self.head(last, **head_arguments), hidden_states=hidden_states,
                                   attentions=attentions, execution_path=encoded.path)
        return self.as_requested(output, return_dict)


class FlaubertWithLMHeadModel(HeadModel):
    """Scores for every vocabulary entry at every position: a linear layer tied to the word embeddings
    (``tie_word_embeddings``), or the adaptive softmax's log-probabilities when ``asm=True``."""

    output_class = MaskedLMOutput
    TIED = "pred_layer.proj.weight"

    @classmethod
    def head_shapes(cls, config):
        """The adaptive softmax's weights when ``asm``, else one projection to the vocabulary."""
        if config.asm:
            return adaptive_softmax_shapes(config)
        return {cls.TIED: (config.vocab_size, config.emb_dim), "pred_layer.proj.bias": (config.vocab_size,)}

    @classmethod
    def tied(cls, config) -> bool:
        """Whether the projection is the word-embedding table itself (tied, and no adaptive softmax)."""
        return config.tie_word_embeddings and not config.asm

    @classmethod
    def tie_weights(cls, config, weights, missing):
        """A tied projection is never missing: ``setup`` makes it the embedding table (transformers omits it)."""
        return weights, [name for name in missing if not (cls.tied(config) and name == cls.TIED)]

    def setup(self):
        """Tie the projection to the embedding table, then build the parameter trees."""
        if self.tied(self.config):
            # subtle: the same array, not a copy, so the two can never drift apart
            self.weights[self.TIED] = self.weights["embeddings.weight"]
        super().setup()

    def get_output_embeddings(self) -> Linear | None:
        """The projection onto the vocabulary as a read-only :class:`Linear` (its weight *is* the word-embedding
        table when tied); None with the adaptive softmax, which has no single projection."""
        if self.config.asm:
            return None
        return Linear(self.weights[self.TIED], self.weights["pred_layer.proj.bias"])

    def vocabulary_weights(self):
        """The embedding table and the projection's bias and, untied, its weight (fresh rows N(0, init_std)).

        subtle: a tied projection's bias grows by zeros, mean resizing or not: transformers resizes the table, finds
        the projection (the same tensor) already at the new size, and pads the bias with zeros when it re-ties them.
        """
        if self.config.asm:
            raise ValueError("resize_token_embeddings: the adaptive softmax (asm=True) splits the vocabulary at "
                             "asm_cutoffs into clusters of fixed sizes; it cannot be resized")
        if self.tied(self.config):
            return {**super().vocabulary_weights(), "pred_layer.proj.bias": None}
        return {**super().vocabulary_weights(), self.TIED: self.config.init_std, "pred_layer.proj.bias": 0.0}

    def state_dict(self):
        """The weights to save; a tied projection is left out, as transformers leaves it out (it is the embeddings)."""
        state = super().state_dict()
        if self.tied(self.config):
            del state[self.TIED]
        return state

    def head(self, last, labels):  # [batch, seq, dim] -> logits [batch, seq, vocab]
        """Scores over the vocabulary at every position, and the cross-entropy of ``labels`` when given."""
        p = self.params["pred_layer"]["proj"]
        if self.config.asm:
            logits = log_probs = adaptive_log_softmax(last, p, self.config.asm_cutoffs)
        else:
            logits = linear(last, p)
            log_probs = log_softmax(logits) if labels is not None else None
        if labels is None:
            return dict(logits=logits)
        # subtle: no shift: labels[i] is the target of position i (transformers' docstring says otherwise)
        labels = class_labels(labels, "labels", last.shape[:2], self.config.vocab_size)
        return dict(loss=nll_loss(log_probs, labels), logits=logits)


class FlaubertForSequenceClassification(HeadModel):
    """One label (or score) per sequence, from ``sequence_summary``."""

    output_class = SequenceClassifierOutput

    @classmethod
    def head_shapes(cls, config):
        """The projection of ``sequence_summary``, if the config asks for one."""
        return summary_shapes(config)

    def head(self, last, labels):  # [batch, seq, dim] -> logits [batch, num_labels]
        """One row of logits per sequence, and the loss ``problem_type`` calls for when labels are given."""
        logits = sequence_summary(last, self.params.get("sequence_summary", {}), self.config)
        if labels is None:
            return dict(logits=logits)
        return dict(loss=self.loss(logits, as_array(labels, "labels")), logits=logits)

    def problem_type(self, labels) -> str:
        """config.problem_type, or transformers' guess: one label -> regression; integer labels -> single-label
        classification; float labels -> multi-label. (transformers also writes the guess into the config; we
        don't, so a later call with other labels is guessed afresh.)"""
        if self.config.problem_type is not None:
            return self.config.problem_type
        if self.config.num_labels == 1:
            return "regression"
        return "single_label_classification" if labels.dtype.kind in "iu" else "multi_label_classification"

    def loss(self, logits, labels):  # [batch, num_labels], labels -> scalar
        """Cross-entropy, binary cross-entropy or mean squared error, as ``problem_type`` says."""
        batch, n = logits.shape
        kind = self.problem_type(labels)
        if kind == "single_label_classification":
            return cross_entropy(logits, class_labels(labels, "labels", (batch,), n))
        if kind == "multi_label_classification":
            return binary_cross_entropy_with_logits(logits, float_labels(labels, "labels", (batch, n)))
        if n == 1:  # subtle: transformers squeezes both sides, so [batch] and [batch, 1] labels both work
            column = labels.ndim == 2 and labels.shape[1] == 1
            return mse(logits[:, 0], float_labels(labels[:, 0] if column else labels, "labels", (batch,)))
        return mse(logits, float_labels(labels, "labels", (batch, n)))


class FlaubertForTokenClassification(HeadModel):
    """One label per token (named entities, parts of speech): a linear layer on every hidden state."""

    output_class = TokenClassifierOutput

    @classmethod
    def head_shapes(cls, config):
        """One linear layer from each hidden state to the labels."""
        return {"classifier.weight": (config.num_labels, config.emb_dim), "classifier.bias": (config.num_labels,)}

    def head(self, last, labels):  # [batch, seq, dim] -> logits [batch, seq, num_labels]
        """Logits for every token, and their cross-entropy with ``labels`` (-100: ignored) when given."""
        logits = linear(last, self.params["classifier"])
        if labels is None:
            return dict(logits=logits)
        labels = class_labels(labels, "labels", last.shape[:2], self.config.num_labels)
        return dict(loss=cross_entropy(logits, labels), logits=logits)


def span_positions(positions, name, batch, seq_len):  # -> [batch] in [0, seq_len]
    """Answer start or end positions for the simple QA loss, clamped to [0, seq_len] as transformers does.

    subtle: a position past the end becomes seq_len, which the loss then ignores; a negative one (even -100)
    becomes 0, the first token, and counts.
    """
    any_integer = np.iinfo(np.int64).min
    positions = as_indices(np.reshape(as_array(positions, name), -1), name, 1, low=any_integer)
    if positions.shape != (batch,):
        raise ValueError(f"{name} must have shape ({batch},), got {positions.shape}")
    return np.clip(positions, 0, seq_len)


def check_both(start_positions, end_positions) -> bool:
    """Whether a loss is asked for: both positions or neither (transformers silently ignores a lone one)."""
    if (start_positions is None) != (end_positions is None):
        raise ValueError("pass both start_positions and end_positions (for the loss), or neither")
    return start_positions is not None


class FlaubertForQuestionAnsweringSimple(HeadModel):
    """Extractive QA: a start and an end logit per token from one linear layer (num_labels must be 2)."""

    output_class = QuestionAnsweringModelOutput

    @classmethod
    def head_shapes(cls, config):
        """One linear layer to two logits per token (start, end); num_labels must be 2."""
        if config.num_labels != 2:
            raise ValueError(f"FlaubertForQuestionAnsweringSimple needs num_labels=2 (start and end logits), "
                             f"got {config.num_labels}")
        return {"qa_outputs.weight": (2, config.emb_dim), "qa_outputs.bias": (2,)}

    def __call__(self, input_ids=None, attention_mask=None, langs=None, token_type_ids=None, position_ids=None,
                 lengths=None, cache=None, inputs_embeds=None, start_positions=None, end_positions=None,
                 output_attentions=None, output_hidden_states=None, return_dict=None, cache_position=None):
        encoder_arguments = dict(
            input_ids=input_ids, attention_mask=attention_mask, langs=langs, token_type_ids=token_type_ids,
            position_ids=position_ids, lengths=lengths, cache=cache, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            cache_position=cache_position)
        return self.run(encoder_arguments, return_dict, start_positions=start_positions, end_positions=end_positions)

    def head(self, last, start_positions, end_positions):  # [batch, seq, dim] -> 2 x [batch, seq]
        """Start and end logits per token, and the mean of their cross-entropies when positions are given."""
        logits = linear(last, self.params["qa_outputs"])  # [batch, seq, 2]
        starts, ends = logits[..., 0], logits[..., 1]
        if not check_both(start_positions, end_positions):
            return dict(start_logits=starts, end_logits=ends)
        batch, seq_len = starts.shape
        start = span_positions(start_positions, "start_positions", batch, seq_len)
        end = span_positions(end_positions, "end_positions", batch, seq_len)
        loss = (cross_entropy(starts, start, ignore_index=seq_len) + cross_entropy(ends, end, ignore_index=seq_len))
        return dict(loss=np.float32(loss / 2), start_logits=starts, end_logits=ends)


class FlaubertForQuestionAnswering(HeadModel):
    """The SQuAD (2.0) beam-search head of XLNet: the loss when positions are given, else the top spans."""

    output_class = FlaubertForQuestionAnsweringOutput

    @classmethod
    def head_shapes(cls, config):
        """The SQuAD head's weights (see ``squad.py``)."""
        return squad_shapes(config)

    def __call__(self, input_ids=None, attention_mask=None, langs=None, token_type_ids=None, position_ids=None,
                 lengths=None, cache=None, inputs_embeds=None, start_positions=None, end_positions=None,
                 is_impossible=None, cls_index=None, p_mask=None, output_attentions=None,
                 output_hidden_states=None, return_dict=None, cache_position=None):
        encoder_arguments = dict(
            input_ids=input_ids, attention_mask=attention_mask, langs=langs, token_type_ids=token_type_ids,
            position_ids=position_ids, lengths=lengths, cache=cache, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            cache_position=cache_position)
        return self.run(encoder_arguments, return_dict, start_positions=start_positions, end_positions=end_positions,
                        is_impossible=is_impossible, cls_index=cls_index, p_mask=p_mask)

    def head(self, last, start_positions, end_positions, is_impossible, cls_index, p_mask):
        """The training loss when start and end positions are given, else the beam search's best spans."""
        batch, seq_len, _ = last.shape
        p, config = self.params["qa_outputs"], self.config
        if p_mask is not None:
            p_mask = float_labels(p_mask, "p_mask", (batch, seq_len))
        if cls_index is not None:
            cls_index = class_labels(cls_index, "cls_index", (batch,), seq_len, allow_ignore=False)
        if check_both(start_positions, end_positions):
            start = class_labels(start_positions, "start_positions", (batch,), seq_len, allow_ignore=False)
            end = class_labels(end_positions, "end_positions", (batch,), seq_len)
            if is_impossible is not None:
                is_impossible = float_labels(is_impossible, "is_impossible", (batch,))
            return dict(loss=squad_loss(last, p, config, start, end, cls_index, is_impossible, p_mask))
        for name in ("start_n_top", "end_n_top"):
            if getattr(config, name) > seq_len:
                raise ValueError(f"config.{name}={getattr(config, name)} exceeds the sequence length {seq_len}")
        return squad_beam_search(last, p, config, p_mask, cls_index)


def flatten_choices(encoder_arguments: dict) -> tuple[dict, int | None]:
    """[batch, choices, seq] inputs -> ([batch * choices, seq] inputs, choices): each (question, choice) pair is one
    sequence."""
    if encoder_arguments["lengths"] is not None:
        # transformers warns and drops lengths here (they would count per row, not per choice): refuse instead.
        raise ValueError("lengths cannot be used with FlaubertForMultipleChoice: pass an attention_mask instead")
    flat, num_choices = dict(encoder_arguments), None
    for name in ("input_ids", "attention_mask", "langs", "token_type_ids", "position_ids", "inputs_embeds"):
        if encoder_arguments[name] is None:
            continue
        value, rank = as_array(encoder_arguments[name], name), 4 if name == "inputs_embeds" else 3
        if value.ndim != rank:
            raise ValueError(f"{name} must have {rank} dimensions [batch, choices, seq{', dim' * (rank == 4)}] "
                             f"for multiple choice, got shape {value.shape}")
        flat[name] = value.reshape(-1, *value.shape[2:])
        num_choices = value.shape[1]  # inputs that disagree fail the encoder's shape checks
    return flat, num_choices


class FlaubertForMultipleChoice(HeadModel):
    """Pick one of several candidate continuations: each (context, choice) pair is summarised and scored."""

    output_class = MultipleChoiceModelOutput

    @classmethod
    def head_shapes(cls, config):
        """The sequence summary, projected to num_labels, and one score per choice from it."""
        if summary_width(config) != config.num_labels:
            raise ValueError(f"FlaubertForMultipleChoice scores the summary with a layer of width num_labels="
                             f"{config.num_labels}, but the summary is {summary_width(config)} wide: set "
                             f"summary_use_proj and summary_proj_to_labels")
        return {**summary_shapes(config), "logits_proj.weight": (1, config.num_labels), "logits_proj.bias": (1,)}

    def run(self, encoder_arguments: dict, return_dict, labels):
        """Each (context, choice) pair runs through the encoder as one sequence; ``head`` regroups them."""
        flat, num_choices = flatten_choices(encoder_arguments)
        return super().run(flat, return_dict, labels=labels, num_choices=num_choices)

    def head(self, last, labels, num_choices):  # [batch * choices, seq, dim] -> logits [batch, choices]
        """One logit per choice, and their cross-entropy with ``labels`` (the right choice) when given."""
        summary = sequence_summary(last, self.params.get("sequence_summary", {}), self.config)  # [b * c, num_labels]
        logits = linear(summary, self.params["logits_proj"]).reshape(-1, num_choices)
        if labels is None:
            return dict(logits=logits)
        labels = class_labels(labels, "labels", logits.shape[:1], num_choices)
        return dict(loss=cross_entropy(logits, labels), logits=logits)
