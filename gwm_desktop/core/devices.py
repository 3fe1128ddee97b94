"""Device selection: auto picks CUDA, then Apple MPS, then CPU; an explicit choice is honoured or refused."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cuda", "mps", "cpu")


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def resolve_device(choice: str = "auto") -> torch.device:
    """'auto' | 'cuda' | 'cuda:N' | 'mps' | 'cpu' -> torch.device; a missing backend is a clear error."""
    choice = (choice or "auto").lower()
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if choice.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RuntimeError("CUDA was requested but no CUDA GPU is available (choose auto or cpu)")
        return torch.device(choice)
    if choice == "mps":
        if not mps_available():
            raise RuntimeError("Apple MPS was requested but is not available on this machine (choose auto or cpu)")
        return torch.device("mps")
    if choice == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {choice!r}; choose one of {', '.join(DEVICE_CHOICES)}")


def describe_device(device: torch.device) -> str:
    """Human note of what is used, for the status bar and logs."""
    if device.type == "cuda":
        index = device.index or 0
        return f"CUDA GPU {index}: {torch.cuda.get_device_name(index)}"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    return f"CPU ({torch.get_num_threads()} threads)"
