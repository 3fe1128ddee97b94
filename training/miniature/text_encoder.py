"""A tiny CLIP text encoder and BPE tokenizer built in code (no files, no hub).

The vocabulary is the corpus captions' and prompts' words plus a few rare tokens ("sks") that the
corpus never uses, as in CLIP, where DreamBooth's "sks" is a rare token with an uninformative
embedding. The merges spell each word from its characters, so every vocabulary word is one token
and an unknown word still tokenizes (into characters). Textual Inversion adds its placeholder with
``tokenizer.add_tokens`` as it does for Stable Diffusion.

The encoder is trained jointly with the prior (``prior.py``), then frozen: personalization sees a
text encoder with meaningful embeddings that it cannot change (DreamBooth, LoRA) or can change only
through one new token's embedding row (Textual Inversion).
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
MAX_LENGTH = 24


def _chain(word: str) -> list[tuple[str, str]]:
    parts = list(word[:-1]) + [word[-1] + "</w>"]
    merges, current = [], parts[0]
    for part in parts[1:]:
        merges.append((current, part))
        current += part
    return merges


def _assemble(words: Sequence[str], order: Sequence[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    vocab: dict[str, int] = {}

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    add(BOS)
    add(EOS)
    for char in sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyz0123456789-,.'<>")):
        add(char)
        add(char + "</w>")
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for word in order:
        for pair in _chain(word):
            if pair not in seen:
                seen.add(pair)
                merges.append(pair)
                add(pair[0] + pair[1])
    return vocab, merges


def build_tokenizer(words: Sequence[str], max_length: int = MAX_LENGTH) -> CLIPTokenizer:
    """CLIPTokenizer whose vocabulary words are single tokens (checked; merge order repaired if not).

    BPE applies the lowest-ranked merge first, so a short word's merge (``s o`` of "son") can split a
    longer one ("per son"); words that do not come out whole move to the front of the merge list.
    """
    words = sorted({w.lower() for w in words if w.strip()})
    order = sorted(words, key=lambda w: (-len(w), w))
    tokenizer = None
    for _ in range(30):
        vocab, merges = _assemble(words, order)
        tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, bos_token=BOS, eos_token=EOS, unk_token=EOS,
                                  pad_token=EOS, model_max_length=max_length)
        broken = [w for w in words if len(tokenizer(w, add_special_tokens=False).input_ids) != 1]
        if not broken:
            break
        order = broken + [w for w in order if w not in broken]
    assert tokenizer is not None
    return tokenizer


def build_text_encoder(tokenizer: CLIPTokenizer, hidden_size: int = 64, layers: int = 2,
                       heads: int = 4, seed: int = 0) -> CLIPTextModel:
    """(B, max_length) token ids -> last_hidden_state (B, max_length, hidden_size), the prior's context."""
    import torch

    torch.manual_seed(seed)
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 4,
                            num_hidden_layers=layers, num_attention_heads=heads,
                            max_position_embeddings=tokenizer.model_max_length, projection_dim=hidden_size,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id)
    return CLIPTextModel(config)
