import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, BertConfig, MPNetConfig

from paper_repro.models.heads import HEADS, HeadContext, build_head

CONFIGS = {
    "bert": BertConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, vocab_size=100),
    "mpnet": MPNetConfig(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, vocab_size=100),
}
N, B, T, H = 3, 2, 5, 32
MASK = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])


def ctx_for(kind="bert", n=N):
    return HeadContext.from_config(CONFIGS[kind], n)


def make(name, kind="bert", n=N, **options):
    torch.manual_seed(0)
    return build_head(name, ctx_for(kind, n), **options).eval()


def layers_input(n=N, b=B, t=T, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, b, t, H, generator=g)


ALL = sorted(HEADS)
KINDS = sorted(CONFIGS)


def test_registry_and_errors():
    assert set(HEADS) >= {"last", "deeper", "deeper_copy", "concat", "dwatt", "scalarmix", "lstm", "attnres", "attnres_block"}
    with pytest.raises(ValueError, match="known: .*dwatt"):
        build_head("nope", ctx_for())
    with pytest.raises(TypeError):
        build_head("dwatt", ctx_for(), not_an_option=1)
    with pytest.raises(ValueError):
        build_head("attnres", ctx_for(), width=30, heads=4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ALL)
def test_output_shape(name, kind):
    out = make(name, kind)(layers_input(), MASK)
    assert out.shape == (B, T, H)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ALL)
def test_every_head_runs_under_bf16_autocast(name):
    """`train.mixed_precision: bf16` wraps the tagger in autocast: fp32 layer states in, a head's linear layers in
    bf16. `lstm` wrote its bf16 projection into an fp32 buffer and failed on an H200 ("Index put requires the
    source and destination dtypes match"); CPU autocast has the same dtype rules."""
    head = make(name).train()
    layers = layers_input().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(layers, MASK)
    assert out.shape == (B, T, H) and torch.isfinite(out.float()).all()
    out.float().sum().backward()
    assert layers.grad is not None


@pytest.mark.parametrize("name", ALL)
def test_every_head_runs_in_a_bf16_copy(name):
    """`train.eval_precision: bf16` predicts with a bfloat16 copy of the model (no autocast): bf16 layer states into
    bf16 weights. `lstm` once cast its input to fp32 for the recurrence and failed there ("RNN input dtype
    (torch.float32) does not match weight dtype (torch.bfloat16)")."""
    head = make(name).eval().to(torch.bfloat16)
    with torch.no_grad():
        out = head(layers_input().to(torch.bfloat16), MASK)
    assert out.shape == (B, T, H) and out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def expected_grad_layers(name, n=N, layer_start=0):
    if name in ("last", "deeper", "deeper_copy"):
        return {n - 1}
    if name == "scalarmix":
        return set(range(layer_start, n))
    return set(range(n))


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_fused_layers(name):
    head = make(name)
    x = layers_input().requires_grad_(True)
    out = head(x, MASK)
    (out * torch.randn_like(out)).sum().backward()
    nonzero = {n for n in range(N) if x.grad[n].abs().sum() > 0}
    assert nonzero == expected_grad_layers(name)
    for p in head.parameters():  # every parameter is used
        assert p.grad is not None


def test_scalarmix_layer_start_gradients():
    head = make("scalarmix", layer_start=1)
    x = layers_input().requires_grad_(True)
    head(x, MASK).sum().backward()
    assert {n for n in range(N) if x.grad[n].abs().sum() > 0} == expected_grad_layers("scalarmix", layer_start=1)
    assert head.weights().shape == (N - 1,)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", ALL)
def test_padding_invariance(name, kind):
    head = make(name, kind)
    x = layers_input()
    with torch.no_grad():
        out = head(x, MASK)
        extra = 3
        x_pad = torch.cat([x, 100 * torch.randn(N, B, extra, H)], dim=2)
        mask_pad = torch.cat([MASK, torch.zeros(B, extra, dtype=MASK.dtype)], dim=1)
        out_pad = head(x_pad, mask_pad)
        # the short example alone, without padding, as well
        out_alone = head(x[:, :1, :3], MASK[:1, :3])
    real = MASK.bool()
    torch.testing.assert_close(out_pad[:, :T][real], out[real], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out_alone[0], out[0, :3], atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------- dwatt
def test_dwatt_weights_sum_to_one_and_keys_input_independent():
    head = make("dwatt")
    x = layers_input()
    head(x, MASK)
    a = head.last_weights
    assert a.shape == (B, T, N) and not a.requires_grad
    torch.testing.assert_close(a.sum(-1), torch.ones(B, T))
    keys = head.keys()
    head(layers_input(seed=7), MASK)
    torch.testing.assert_close(head.keys(), keys)  # k depends only on p
    torch.testing.assert_close(keys, head.depth_embedding @ head.key.weight.T + head.key.bias)
    p = head.depth_embedding
    assert p.shape == (N, 24) and (p >= 0).all() and (p <= 1).all()


def _bottleneck_ref(m, g, x):
    u = F.gelu(F.linear(x, m.U[g].T, m.U_bias[g]))
    u = F.layer_norm(u, (m.width,), m.ln_weight[g], m.ln_bias[g])
    return F.linear(u, m.W[g].T, m.W_bias[g])


@pytest.mark.parametrize("scale", [True, False])
def test_dwatt_grouped_matmul_equals_per_layer_loop(scale):
    head = make("dwatt", gamma=0.4, scale=scale)
    with torch.no_grad():  # non-trivial LayerNorm affines
        for p in (head.values.ln_weight, head.values.ln_bias, head.value_ln_weight, head.value_ln_bias,
                  head.query.ln_weight, head.query.ln_bias):
            p.normal_()
    x = layers_input()
    out = head(x, MASK)
    z = x[-1]
    q = 1 + F.elu(z + _bottleneck_ref(head.query, 0, z))
    keys = [head.key(head.depth_embedding[n]) for n in range(N)]
    values = [F.layer_norm(_bottleneck_ref(head.values, n, x[n]), (H,), head.value_ln_weight[n], head.value_ln_bias[n])
              for n in range(N)]
    logits = torch.stack([(q * k).sum(-1) for k in keys], -1) / (math.sqrt(H) if scale else 1.0)
    a = logits.softmax(-1)
    ref = z + sum(a[..., n, None] * values[n] for n in range(N))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(head.last_weights, a.detach(), atol=1e-6, rtol=1e-5)
    assert head.width == round(0.4 * H)


def test_dwatt_bad_gamma():
    with pytest.raises(ValueError):
        build_head("dwatt", ctx_for(), gamma=0.001)


# ---------------------------------------------------------------------------------------------- scalarmix
def test_scalarmix_one_hot_equals_last():
    head = make("scalarmix")
    with torch.no_grad():
        head.w.copy_(torch.tensor([float("-inf")] * (N - 1) + [50.0]))
    x = layers_input()
    torch.testing.assert_close(head(x, MASK), x[-1])
    torch.testing.assert_close(head.weights(), torch.tensor([0.0] * (N - 1) + [1.0]))


def test_scalarmix_init_is_uniform_mean():
    x = layers_input()
    torch.testing.assert_close(make("scalarmix")(x, MASK), x.mean(0))


# ---------------------------------------------------------------------------------------------------- deeper
@pytest.mark.parametrize("kind", KINDS)
def test_deeper_copy_last(kind):
    torch.manual_seed(3)
    backbone = AutoModel.from_config(CONFIGS[kind]).eval()
    head = make("deeper", kind, layers=2, init="copy_last")
    head.init_from_backbone(backbone)
    src = backbone.encoder.layer[-1].state_dict()
    for layer in head.encoder.layer:
        for k, v in layer.state_dict().items():
            torch.testing.assert_close(v, src[k])
    if kind == "mpnet":
        torch.testing.assert_close(head.encoder.relative_attention_bias.weight,
                                   backbone.encoder.relative_attention_bias.weight)
    # random init: init_from_backbone is a no-op
    rand = make("deeper", kind, init="random")
    before = {k: v.clone() for k, v in rand.state_dict().items()}
    rand.init_from_backbone(backbone)
    for k, v in rand.state_dict().items():
        torch.testing.assert_close(v, before[k])
    with pytest.raises(ValueError):
        build_head("deeper", ctx_for(kind), init="nope")


def test_deeper_copy_last_equals_backbone_last_layer_bert():
    torch.manual_seed(3)
    backbone = AutoModel.from_config(CONFIGS["bert"]).eval()
    head = make("deeper", "bert", init="copy_last")
    head.init_from_backbone(backbone)
    x = layers_input()
    with torch.no_grad():
        ref = backbone.encoder.layer[-1](x[-1, :1, :3])
        ref = ref[0] if isinstance(ref, tuple) else ref
        torch.testing.assert_close(head(x, MASK)[0, :3], ref[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_deeper_copy_is_deeper_with_copy_last_default(kind):
    torch.manual_seed(3)
    backbone = AutoModel.from_config(CONFIGS[kind]).eval()
    head = make("deeper_copy", kind)
    assert head.init == "copy_last" and isinstance(head, HEADS["deeper"])
    assert make("deeper_copy", kind, init="random").init == "random"
    plain = make("deeper", kind)
    assert [(n, p.shape) for n, p in head.named_parameters()] == [(n, p.shape) for n, p in plain.named_parameters()]
    head.init_from_backbone(backbone)
    src = backbone.encoder.layer[-1].state_dict()
    for k, v in head.encoder.layer[0].state_dict().items():
        torch.testing.assert_close(v, src[k])


# ---------------------------------------------------------------------------------------------------- lstm
def test_lstm_zero_at_padding():
    out = make("lstm", hidden=7)(layers_input(), MASK)
    assert (out[~MASK.bool()] == 0).all()


# ------------------------------------------------------------------------------------------------- attnres
@pytest.mark.parametrize("name,items", [("attnres", N), ("attnres_block", 2)])
def test_attnres_weights(name, items):
    head = make(name, width=16, heads=4)
    head(layers_input(), MASK)
    assert head.last_weights.shape == (B, T, items)
    assert head.last_head_weights.shape == (B, T, 4, items)
    torch.testing.assert_close(head.last_weights.sum(-1), torch.ones(B, T))


def test_attnres_block_summaries():
    head = make("attnres_block", width=8, heads=2, block_size=2, n=5)
    x = layers_input(n=5)
    s = head.summarize(x)
    torch.testing.assert_close(s, torch.stack([x[0:2].mean(0), x[2:4].mean(0), x[4]]))
    assert make("attnres", width=8, heads=2).block_size == 1


# ------------------------------------------------------------------------------------------------ no decay
@pytest.mark.parametrize("name", ALL)
def test_no_decay_patterns_name_own_parameters(name):
    """Every NO_DECAY pattern a module declares matches one of its own (direct) parameters: no stale names."""
    import fnmatch

    for module in make(name).modules():
        own = [n for n, _ in module.named_parameters(recurse=False)]
        for pattern in getattr(module, "NO_DECAY", ()):
            assert fnmatch.filter(own, pattern), (type(module).__name__, pattern, own)
