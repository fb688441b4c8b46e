"""Which parts an LSTM cell has: Greff et al.'s variants as one small record, shared by the engine
(lstm.py), the reference cell, the layers, the exporters and the experiments."""
from __future__ import annotations

from typing import NamedTuple


class Variant(NamedTuple):
    """Which parts the cell has (Greff et al. 2017, "LSTM: A Search Space Odyssey"); the defaults
    are their vanilla LSTM. A removed gate keeps its block in the 4H layout, unused, with zero gradient."""
    peephole: str | None = "diagonal"  # "diagonal": p (H,); "full": P (H, H); None (NP)
    input_gate: bool = True            # False: i ≡ 1 (NIG)
    forget_gate: bool = True           # False: f ≡ 1 (NFG, the 1997 LSTM)
    output_gate: bool = True           # False: o ≡ 1 (NOG)
    input_activation: str = "tanh"     # "identity": g = a_g (NIAF)
    output_activation: str = "tanh"    # "identity": h = o c (NOAF)
    coupled: bool = False              # True: f = 1 - i (CIFG)
    gate_recurrence: bool = False      # True: [i, f, o]_{t-1} R_gates joins a_{i,f,o} (FGR)


VANILLA = Variant()
ACTIVATIONS = ("tanh", "identity")
# Greff et al.'s names: each changes one thing of the vanilla LSTM
VARIANTS = {"vanilla": VANILLA, "NIG": Variant(input_gate=False), "NFG": Variant(forget_gate=False),
            "NOG": Variant(output_gate=False), "NIAF": Variant(input_activation="identity"),
            "NOAF": Variant(output_activation="identity"), "NP": Variant(peephole=None),
            "CIFG": Variant(coupled=True), "FGR": Variant(gate_recurrence=True)}
