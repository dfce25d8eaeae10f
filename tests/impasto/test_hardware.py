"""bf16 only where the processor has bf16 units: elsewhere torch emulates it, 12x slower."""

from __future__ import annotations

from impasto import hardware


def test_flags_are_read_and_bf16_follows_them(monkeypatch):
    flags = hardware.cpu_flags()
    assert not flags or "fpu" in flags or "fp" in flags or len(flags) > 5
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert not hardware.cpu_has_bf16()
    assert hardware.auto_precision() == "fp32" and hardware.auto_trainer_precision(False) == "32-true"
    assert hardware.auto_trainer_precision(True) == "bf16-mixed"   # a GPU always has them
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset({"avx512_bf16"}))
    assert hardware.auto_precision() == "bf16" and hardware.auto_trainer_precision(False) == "bf16-mixed"


def test_an_explicit_precision_is_kept(monkeypatch):
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset())
    assert hardware.auto_precision("bf16") == "bf16" and hardware.auto_precision("fp32") == "fp32"
