"""Tests for paper_repro.models.tagger: weight decay by parameter role, the classifier's own init generator,
and the ``deeper_copy`` arm built around a real (tiny) backbone."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from paper_repro.config import CellConfig, apply_overrides
from paper_repro.data.conll import LABELS
from paper_repro.models.backbone import load_backbone
from paper_repro.models.tagger import build_tagger, no_decay


@pytest.fixture(scope="module")
def backbone(tiny_backbone_dir):
    return load_backbone(str(tiny_backbone_dir)).model


def make(backbone, head="last", seed=0, global_seed=0, **overrides):
    torch.manual_seed(global_seed)
    config = apply_overrides(CellConfig(), {"model.head.name": head, "model.dropout": 0.0, **overrides}).model
    return build_tagger(copy.deepcopy(backbone), config, num_labels=len(LABELS), seed=seed)


def group_of(model) -> dict[str, str]:
    """Parameter name -> the name of the one optimizer group holding it (fails on a parameter in two groups)."""
    groups = model.parameter_groups(backbone_lr=1e-5, head_lr=1e-3, weight_decay=0.01)
    names = {id(p): n for n, p in model.named_parameters()}
    where: dict[str, str] = {}
    for group in groups:
        assert group["weight_decay"] == (0.0 if group["name"].endswith("_no_decay") else 0.01)
        assert group["param_names"] == [names[id(p)] for p in group["params"]]
        for p in group["params"]:
            assert names[id(p)] not in where, names[id(p)]
            where[names[id(p)]] = group["name"]
    return where


def decays(where: dict[str, str], name: str) -> bool:
    return not where[name].endswith("_no_decay")


@pytest.mark.parametrize("head", ["last", "dwatt", "scalarmix", "deeper", "lstm", "attnres", "concat"])
def test_every_trainable_parameter_in_exactly_one_group(backbone, head):
    model, _ = make(backbone, head)
    where = group_of(model)
    assert set(where) == {n for n, p in model.named_parameters() if p.requires_grad}
    for name, group in where.items():
        assert group.startswith("backbone") == name.startswith("backbone."), name


def test_frozen_parameters_are_in_no_group(backbone):
    model, _ = make(backbone, "dwatt")
    model.backbone.embeddings.requires_grad_(False)
    where = group_of(model)
    assert not any(n.startswith("backbone.embeddings.") for n in where)
    assert set(where) == {n for n, p in model.named_parameters() if p.requires_grad}


def test_dwatt_decay_by_role(backbone):
    model, _ = make(backbone, "dwatt")
    where = group_of(model)
    head = [n for n in where if n.startswith("head.")]
    exempt = {
        "head.depth_embedding", "head.key.bias", "head.value_ln_weight", "head.value_ln_bias",
        *(f"head.{m}.{p}" for m in ("values", "query") for p in ("U_bias", "W_bias", "ln_weight", "ln_bias")),
    }
    decayed = {"head.key.weight", *(f"head.{m}.{p}" for m in ("values", "query") for p in ("U", "W"))}
    assert set(head) == exempt | decayed
    # the grouped biases / LN affines are 2-D and the depth embedding too: rank does not decide
    params = dict(model.named_parameters())
    assert all(params[n].ndim == 2 for n in exempt - {"head.key.bias"})
    for name in exempt:
        assert where[name] == "head_no_decay", name
    for name in decayed:
        assert where[name] == "head", name
    assert where["classifier.weight"] == "head" and where["classifier.bias"] == "head_no_decay"


def test_backbone_decay_follows_the_hf_convention(backbone):
    model, _ = make(backbone, "dwatt")
    where = group_of(model)
    norms = [f"backbone.{n}.{p}" for n, m in model.backbone.named_modules() if isinstance(m, nn.LayerNorm)
             for p, _ in m.named_parameters(recurse=False)]
    assert len(norms) == 2 * (1 + 2 * model.backbone.config.num_hidden_layers)  # embeddings + 2 per layer
    for name in norms:
        assert where[name] == "backbone_no_decay", name
    for name, group in where.items():
        if name.startswith("backbone.") and name.endswith(".bias"):
            assert group == "backbone_no_decay", name
    assert where["backbone.embeddings.word_embeddings.weight"] == "backbone"  # embedding tables keep decay
    assert where["backbone.encoder.layer.0.attention.self.query.weight"] == "backbone"


def test_other_heads_decay_by_role(backbone):
    where = group_of(make(backbone, "scalarmix")[0])
    assert where["head.w"] == where["head.gamma"] == "head_no_decay"
    where = group_of(make(backbone, "attnres")[0])
    assert where["head.depth_embedding"] == "head_no_decay" and where["head.q.weight"] == "head"
    where = group_of(make(backbone, "lstm")[0])
    lstm = {n: g for n, g in where.items() if n.startswith("head.lstm.")}
    assert lstm and all(g == ("head_no_decay" if ".bias_" in n else "head") for n, g in lstm.items())
    where = group_of(make(backbone, "deeper")[0])
    assert where["head.encoder.layer.0.output.LayerNorm.weight"] == "head_no_decay"
    assert where["head.encoder.layer.0.output.dense.weight"] == "head"
    where = group_of(make(backbone, "last", **{"model.pooling": "attention"})[0])
    assert where["pooling.scorer.weight"] == "head" and where["pooling.scorer.bias"] == "head_no_decay"


def test_no_decay_rule():
    class RMSNorm(nn.Module):  # a custom norm, recognised by its class name
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(3))

    class Declares(nn.Module):
        NO_DECAY = ("mix_*",)

    assert no_decay("scale", RMSNorm()) and no_decay("weight", nn.LayerNorm(3))
    for name in ("bias", "U_bias", "bias_ih_l0", "bias_hh_l0_reverse", "ln_weight", "value_ln_bias"):
        assert no_decay(name, nn.Module()), name
    for name in ("weight", "U", "W", "kiln_weight", "biased", "w", "gamma", "depth_embedding"):
        assert not no_decay(name, nn.Module()), name
    assert no_decay("mix_logits", Declares()) and not no_decay("weights", Declares())


# ------------------------------------------------------------------------------------ classifier init
def classifier_of(backbone, head, seed, global_seed=0):
    model, _ = make(backbone, head, seed=seed, global_seed=global_seed)
    return model.classifier.weight.detach().clone(), model.classifier.bias.detach().clone()


def test_classifier_init_is_independent_of_the_head(backbone):
    reference = classifier_of(backbone, "last", seed=7)
    for head in ("dwatt", "concat", "deeper", "deeper_copy"):
        weight, bias = classifier_of(backbone, head, seed=7)
        assert torch.equal(weight, reference[0]) and torch.equal(bias, reference[1]), head
    # nor of the global RNG state
    weight, bias = classifier_of(backbone, "dwatt", seed=7, global_seed=123)
    assert torch.equal(weight, reference[0]) and torch.equal(bias, reference[1])
    other = classifier_of(backbone, "last", seed=8)
    assert not torch.equal(other[0], reference[0]) and not torch.equal(other[1], reference[1])
    # nn.Linear's default distributions: U(-1/sqrt(H), 1/sqrt(H)) for both
    bound = 1 / backbone.config.hidden_size ** 0.5
    assert reference[0].abs().max() <= bound and reference[1].abs().max() <= bound
    assert reference[0].std() > bound / 4


def test_attention_pooling_init_is_independent_of_the_head(backbone):
    pools = [make(backbone, head, seed=7, **{"model.pooling": "attention"})[0].pooling.state_dict()
             for head in ("last", "dwatt")]
    assert pools[0].keys() == pools[1].keys() and pools[0]
    for key in pools[0]:
        assert torch.equal(pools[0][key], pools[1][key]), key


def test_default_seed_is_zero(backbone):
    model, _ = make(backbone, "last")
    assert torch.equal(model.classifier.weight, classifier_of(backbone, "dwatt", seed=0)[0])


# ------------------------------------------------------------------------------------------- deeper_copy
def test_deeper_copy_starts_as_the_backbone_last_layer(backbone):
    model, record = make(backbone, "deeper_copy")
    last = backbone.encoder.layer[-1].state_dict()
    for layer in model.head.encoder.layer:
        state = layer.state_dict()
        assert state.keys() == last.keys()
        for key, value in state.items():
            assert torch.equal(value, last[key]), key
    deeper, deeper_record = make(backbone, "deeper")
    assert not torch.equal(deeper.head.encoder.layer[0].output.dense.weight, last["output.dense.weight"])
    assert record["head_params"] == deeper_record["head_params"] == record["target"]
    assert record["deviation"] == 0 and record["options"] == {}
    rows = {r["method"]: r for r in record["table"]}
    assert rows["deeper_copy"]["matched"] and rows["deeper_copy"]["deviation"] == 0


# ------------------------------------------------------------------ train.head_words_only
def words_batch(seed=0):
    """A batch of 3 windows with subword continuations, padding and a word with no token (truncated)."""
    torch.manual_seed(seed)
    word_index = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, 3, -1, -1, -1, -1],
                               [-1, 0, 1, 1, 2, 3, 4, 5, 6, 6, 7, -1],
                               [-1, 0, 1, -1, -1, -1, -1, -1, -1, -1, -1, -1]])   # window 3 lost words 2..8
    attention_mask = (word_index != -1).long()
    attention_mask[:, 0] = 1
    attention_mask[0, 8] = attention_mask[1, 11] = attention_mask[2, 3] = 1           # [SEP]
    input_ids = torch.randint(5, 60, word_index.shape) * attention_mask
    return input_ids, attention_mask, word_index, 9


@pytest.mark.parametrize("head", ["last", "concat", "dwatt", "scalarmix", "lstm", "attnres", "attnres_block", "deeper"])
def test_words_only_training_keeps_the_values_and_the_gradients(backbone, head):
    """train.head_words_only: the head runs on word-initial tokens only in training; logits are the same to the bit,
    the head's gradients the same up to float summation order, the backbone's the same to the bit; a head that
    attends across tokens (deeper) and evaluation are not affected. `lstm` is the exception to "the bit": oneDNN's
    LSTM blocks its arithmetic by the number of rows on AVX2 CPUs (not on AVX-512), so fewer rows give float noise
    there (measured on an AVX2 EPYC: 8e-8 of the logits' scale, 1.3e-7 of the gradients'); the others are bit-exact."""
    batch = words_batch()
    runs = {}
    for words_only in (False, True):
        model, _ = make(backbone, head, **{"model.head.fuse_embeddings": True})   # N=3: attnres_block has 2 blocks
        model.words_only_training = words_only
        model.train()
        torch.manual_seed(1)   # the backbone's own dropout: the same masks in both runs
        logits = model(*batch)
        logits.square().sum().backward()
        runs[words_only] = (logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
                            model.words_only())
        model.eval()
        with torch.no_grad():
            runs[words_only] += (model(*batch), model.words_only())
    (full, full_grads, _, full_eval, _), (words, word_grads, applied, words_eval, applied_eval) = runs[False], runs[True]
    assert applied == (head != "deeper") and applied_eval is False
    exact = head != "lstm"

    def same(a, b, scale):
        return torch.equal(a, b) if exact else float((a - b).abs().max()) <= 1e-6 * scale

    assert same(full, words, float(full.abs().max()))          # forward: the same values at every word
    assert torch.equal(full_eval, words_eval)
    assert full[2, 2:].abs().sum() > 0 and set(full_grads) == set(word_grads)   # words with no token: the classifier bias
    assert model.took_words_path == (head != "deeper")                 # the path the manifest reports
    scale = max(float(g.abs().max()) for g in full_grads.values())
    for name, grad in full_grads.items():
        if name.startswith("backbone."):
            assert same(grad, word_grads[name], scale), name    # d layers per token: the same (fp32, this CPU)
        else:   # sums over fewer rows: float noise, per parameter (a zeroed or wrong gradient fails); the second term
            # is for gradients that are zero in exact arithmetic (softmax shift invariance: attnres's k.bias)
            own = float(grad.abs().max())
            assert own > 0 or name.endswith("k.bias"), name
            assert float((word_grads[name] - grad).abs().max()) <= 2e-4 * own + 1e-7 * scale, name


def test_words_only_needs_first_pooling():
    from paper_repro.config import ConfigError
    from paper_repro.validate import validate_cell

    validate_cell(apply_overrides(CellConfig(), {"train.head_words_only": True}))
    with pytest.raises(ConfigError, match="train.head_words_only: needs model.pooling=first"):
        validate_cell(apply_overrides(CellConfig(), {"train.head_words_only": True, "model.pooling": "mean"}))
