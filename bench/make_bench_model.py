#!/usr/bin/env python3
"""Create a random-init Llama checkpoint (HF folder) for benchmarking / testing.

    python3 bench/make_bench_model.py OUTDIR [--preset smollm2-135m|qwen2-0.5b|tiny] [--seed 0]

Writes OUTDIR/{config.json, model.safetensors (float32), tokenizer.json,
tokenizer_config.json, special_tokens_map.json}.

* Weights: LlamaForCausalLM, torch.manual_seed(seed), normal(0, 0.02) for every Linear
  and the embedding, ones for the RMSNorm weights (HF's own _init_weights with
  initializer_range=0.02). With tie_word_embeddings the file holds no lm_head.weight,
  exactly like the real SmolLM2 checkpoints (tensor names "model.embed_tokens.weight",
  "model.layers.N....", "model.norm.weight").
* Tokenizer: byte-level BPE trained here with the `tokenizers` library on text generated
  by this script (vocab <= 8000, so every id < vocab_size). Special tokens:
  "<s>" (id 0, BOS, added in front of every sequence by a TemplateProcessing
  post-processor), "</s>" (id 1, EOS, *not* added automatically), "<unk>" (2), "<pad>" (3).
  tokenizer_config.json names eos_token "</s>" and uses PreTrainedTokenizerFast so that
  transformers keeps the post-processor as is.

The numbers are meaningless; only the shapes and the compute cost are realistic.
Needs torch, transformers, safetensors, tokenizers.
"""
import argparse
import json
import os
import random
import sys

PRESETS = {
    # Shape of HuggingFaceTB/SmolLM2-135M (~134.5M parameters).
    "smollm2-135m": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        vocab_size=49152,
        rms_norm_eps=1e-5,
        rope_theta=100000.0,
        tie_word_embeddings=True,
        max_position_embeddings=8192,
    ),
    # The dimensions of Qwen/Qwen2-0.5B (~494M parameters with its 151,936-token vocabulary), in the
    # Llama layout this script writes (no q/k/v biases): the GPU speed check's model.
    "qwen2-0.5b": dict(
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        vocab_size=151936,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        max_position_embeddings=32768,
    ),
    # Small model for fast tests (head_dim 16, GQA 4:2).
    "tiny": dict(
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=8192,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        max_position_embeddings=2048,
    ),
}

SPECIAL_TOKENS = ["<s>", "</s>", "<unk>", "<pad>"]  # ids 0, 1, 2, 3
BOS, EOS, UNK, PAD = SPECIAL_TOKENS
TOKENIZER_VOCAB = 8000


def training_corpus(seed):
    """Deterministic text to train the BPE on: the LLM-QL prompt templates, the same
    vocabulary as make_bench_texts.py, and some generic English, digits and punctuation."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_bench_texts import WORDS, make_passage  # same directory

    rng = random.Random(seed + 12345)
    lines = [
        "Instruct: Given a retrieved passage, summarize the passage.\nPassage: ",
        "\nSummarization:",
        "Instruct: Given a web search query, retrieve relevant passages that answer the query.\nQuery: ",
        "Given a retrieved passage, summarize the passage.",
    ] * 50
    extra = (
        "The quick brown fox jumps over the lazy dog. What is the capital of France? "
        "Paris is the capital and most populous city of France. How many people live in Tokyo? "
        "Who wrote the novel? When was the bridge built? Why is the sky blue? "
        "0 1 2 3 4 5 6 7 8 9 10 100 1000 2024 1999 3.14 50% $20 (see above) [1] \"quoted\" it's "
        "e-mail, co-operate; semi-colon: colon - dash / slash \\ back # hash @ at & and * star"
    )
    lines += [extra] * 20
    for _ in range(4000):
        lines.append(" ".join(rng.choice(WORDS).capitalize() for _ in range(rng.randint(2, 6))))
        lines.append(make_passage(rng, rng.randint(10, 120)))
    return lines


def build_tokenizer(seed):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_corpus(seed), trainer=trainer)
    bos_id = tok.token_to_id(BOS)
    assert bos_id == 0 and tok.token_to_id(EOS) == 1, "special token ids moved"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A",
        pair=f"{BOS} $A {BOS} $B",
        special_tokens=[(BOS, bos_id)],
    )
    return tok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="smollm2-135m")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    os.makedirs(args.outdir, exist_ok=True)
    shape = PRESETS[args.preset]

    # --- tokenizer -------------------------------------------------------------------
    tok = build_tokenizer(args.seed)
    assert tok.get_vocab_size() <= shape["vocab_size"], "tokenizer vocab exceeds model vocab"
    tok.save(os.path.join(args.outdir, "tokenizer.json"))
    added = {
        str(tok.token_to_id(t)): {
            "content": t, "lstrip": False, "normalized": False,
            "rstrip": False, "single_word": False, "special": True,
        }
        for t in SPECIAL_TOKENS
    }
    tok_cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": BOS,
        "eos_token": EOS,
        "unk_token": UNK,
        "pad_token": PAD,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": shape["max_position_embeddings"],
        "added_tokens_decoder": added,
    }
    with open(os.path.join(args.outdir, "tokenizer_config.json"), "w") as f:
        json.dump(tok_cfg, f, indent=2)
    with open(os.path.join(args.outdir, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": BOS, "eos_token": EOS, "unk_token": UNK, "pad_token": PAD}, f, indent=2)

    # --- model -----------------------------------------------------------------------
    config = LlamaConfig(
        **shape,
        hidden_act="silu",
        initializer_range=0.02,
        attention_bias=False,
        mlp_bias=False,
        attention_dropout=0.0,
        bos_token_id=tok.token_to_id(BOS),
        eos_token_id=tok.token_to_id(EOS),
        pad_token_id=None,
        use_cache=True,
    )
    config.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(args.seed)
    model = LlamaForCausalLM(config).to(torch.float32).eval()
    # Belt and braces: make the init independent of transformers-version init details.
    with torch.no_grad():
        gen = torch.Generator().manual_seed(args.seed)
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
    model.tie_weights()
    model.save_pretrained(args.outdir, safe_serialization=True)
    # save_pretrained may write extra files (generation_config.json); they are harmless.
    # Force config's dtype to float32 whatever the transformers version writes.
    cfg_path = os.path.join(args.outdir, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["torch_dtype"] = "float32"
    cfg["dtype"] = "float32"
    # transformers >= 5 moves rope_theta into rope_parameters; keep the classic top-level
    # key too (as in the real SmolLM2 config.json) so simple loaders find it.
    cfg["rope_theta"] = shape["rope_theta"]
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)

    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"wrote {args.preset} model ({n_params / 1e6:.1f}M params, tokenizer vocab "
        f"{tok.get_vocab_size()}) to {args.outdir}"
    )


if __name__ == "__main__":
    main()
