"""Secret keys and the watermark message derived from them.

A key is 32 random bytes. The message is a deterministic, one-way function of it (SHA-256 with a
domain label), so images, logs and reports can carry neither the key nor anything that reveals it.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

KEY_BYTES = 32


def new_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def _balanced_signs(order: torch.Tensor) -> torch.Tensor:
    """A permutation -> signs with exactly half +1 (the first half of the permutation switched on)."""
    import torch

    n_bits = order.shape[-1]
    signs = -torch.ones(order.shape, dtype=torch.float32)
    return signs.scatter(-1, order[..., : n_bits // 2], 1.0)


def message_from_key(key: bytes, n_bits: int) -> torch.Tensor:
    """Key -> (n_bits,) float tensor of {-1, +1}, exactly half +1.

    Balanced so every profile's watermark has the same strength, and two profiles' messages agree on
    half their bits on average (hypergeometric overlap), which bounds the cross-key false positives.
    """
    import torch  # lazily: profiles (and the GUI's first paint) need keys, not torch

    seed = int.from_bytes(hashlib.sha256(b"gwm-message-v1" + key).digest()[:8], "big")
    order = torch.randperm(n_bits, generator=torch.Generator().manual_seed(seed))
    return _balanced_signs(order)


def random_messages(batch: int, n_bits: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(batch, n_bits) random balanced messages: stand-ins for unseen profiles' keys during training."""
    import torch

    order = torch.argsort(torch.rand(batch, n_bits, generator=generator), dim=-1)
    return _balanced_signs(order)


def texture_signs(message: torch.Tensor) -> torch.Tensor:
    """(..., n_bits) presence messages -> (..., n_bits) {-1, +1}: the sign each switched-on texture is added with.

    A hash of the whole presence pattern (BLAKE2b with its own label), so it is as secret as the
    message and two keys that share a switched-on texture add it with the same sign only half the
    time. The power spectrum the detector's CNN reads cannot see a sign; the matched filter
    (``models.WatermarkDetector.coherent``) can, and this is what keeps other keys' watermarks,
    which share about half the textures, from correlating with this key's (measured in README).
    """
    import numpy as np
    import torch

    flat = message.reshape(-1, message.shape[-1])
    n_bits = flat.shape[-1]
    size = max(1, (n_bits + 7) // 8)
    presence = (flat > 0).to(torch.uint8).cpu().numpy()
    digests = b"".join(hashlib.blake2b(row.tobytes(), digest_size=size, person=b"gwm-signs-v1").digest()
                       for row in presence)
    # Bit i of the digest is bit (i % 8) of byte i // 8: little-endian within each byte.
    bits = np.unpackbits(np.frombuffer(digests, dtype=np.uint8).reshape(len(presence), size), axis=1,
                         bitorder="little")[:, :n_bits]
    signs = torch.from_numpy(bits.astype(np.float32)).to(message.dtype).to(message.device) * 2 - 1
    return signs.reshape(message.shape)
