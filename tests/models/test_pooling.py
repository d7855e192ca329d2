import pytest
import torch

from paper_repro.models.pooling import POOLINGS, SubwordPooling

H = 6
# example 0: [CLS] w0 w0 w1 w2 w2 w2 [SEP] pad ; example 1: [CLS] w0 w1 w1 [SEP] pad pad pad pad (words 2,3 empty)
WORD_INDEX = torch.tensor([[-1, 0, 0, 1, 2, 2, 2, -1, -1], [-1, 0, 1, 1, -1, -1, -1, -1, -1]])
W = 4


def features(seed=0):
    return torch.randn(2, WORD_INDEX.shape[1], H, generator=torch.Generator().manual_seed(seed))


def reference(x, word_index, num_words, mode, scorer=None):
    out = torch.zeros(x.shape[0], num_words, x.shape[-1])
    for b in range(x.shape[0]):
        for w in range(num_words):
            toks = (word_index[b] == w).nonzero().flatten()
            if len(toks) == 0:
                continue
            if mode == "first":
                out[b, w] = x[b, toks[0]]
            elif mode == "mean":
                out[b, w] = x[b, toks].mean(0)
            else:
                a = scorer(x[b, toks]).squeeze(-1).softmax(0)
                out[b, w] = (a[:, None] * x[b, toks]).sum(0)
    return out


@pytest.mark.parametrize("mode", POOLINGS)
def test_matches_loop_reference(mode):
    pool = SubwordPooling(mode, H)
    if mode == "attention":
        torch.nn.init.normal_(pool.scorer.weight)
        torch.nn.init.normal_(pool.scorer.bias)
    x = features()
    out = pool(x, WORD_INDEX, W)
    assert out.shape == (2, W, H)
    torch.testing.assert_close(out, reference(x, WORD_INDEX, W, mode, getattr(pool, "scorer", None)))


def test_attention_zero_scorer_equals_mean():
    x = features(1)
    torch.testing.assert_close(SubwordPooling("attention", H)(x, WORD_INDEX, W), SubwordPooling("mean", H)(x, WORD_INDEX, W))


@pytest.mark.parametrize("mode", POOLINGS)
def test_single_subword_word_unchanged(mode):
    x = features(2)
    out = SubwordPooling(mode, H)(x, WORD_INDEX, W)
    torch.testing.assert_close(out[0, 1], x[0, 3])  # example 0, word 1 = token 3 only
    torch.testing.assert_close(out[1, 0], x[1, 1])


def test_first_picks_first_token():
    x = features(3)
    out = SubwordPooling("first", H)(x, WORD_INDEX, W)
    torch.testing.assert_close(out[0, :3], x[0, [1, 3, 4]])
    torch.testing.assert_close(out[1, :2], x[1, [1, 2]])


@pytest.mark.parametrize("mode", POOLINGS)
def test_words_without_tokens_are_zero(mode):
    out = SubwordPooling(mode, H)(features(4), WORD_INDEX, W)
    assert (out[0, 3] == 0).all() and (out[1, 2:] == 0).all()


def test_attention_scorer_gets_gradient():
    pool = SubwordPooling("attention", H)
    x = features(5).requires_grad_(True)
    out = pool(x, WORD_INDEX, W)
    (out * torch.randn_like(out)).sum().backward()
    assert pool.scorer.weight.grad.abs().sum() > 0
    assert x.grad[0, 0].abs().sum() == 0 and x.grad[0, 1].abs().sum() > 0  # special tokens get no gradient


def test_unknown_mode():
    with pytest.raises(ValueError, match="first"):
        SubwordPooling("max", H)


def test_first_tokens_match_the_pooling_and_trace_without_graph_breaks():
    """`first_tokens` (train.head_words_only) gives the rows `first` pooling keeps, in [B, W] order, with static
    shapes: no data-dependent op for torch.compile to break the graph on."""
    import torch._dynamo

    from paper_repro.models.pooling import SubwordPooling, first_tokens

    word_index = torch.tensor([[-1, 0, 0, 1, 5, -1], [-1, 0, 1, 1, 2, -1]])   # 5 >= num_words: ignored
    x = torch.randn(2, 6, 4)
    src, has = first_tokens(word_index, 3)
    pooled = SubwordPooling("first")(x, word_index, 3)
    assert torch.equal((x.reshape(12, 4)[src] * has[:, None]).reshape(2, 3, 4), pooled)
    assert has.tolist() == [True, True, False, True, True, True]
    explained = torch._dynamo.explain(first_tokens)(word_index, 3)
    assert explained.graph_break_count == 0
