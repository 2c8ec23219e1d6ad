"""torch_utils.training_stats: moments per window, independent collectors, state round trip."""

from __future__ import annotations

import math

import numpy as np
import torch

from torch_utils.training_stats import Collector, Reporter


def test_windows_and_independent_collectors():
    rep = Reporter()
    tick, ada = Collector(rep), Collector(rep, regex=r"Loss/signs/real")
    rep.report("Loss/signs/real", torch.tensor([1.0, -1.0, 1.0]))
    rep.report("Loss/G/loss", 2.5)
    tick.update()
    assert tick.num("Loss/signs/real") == 3 and math.isclose(tick.mean("Loss/signs/real"), 1 / 3)
    assert math.isclose(tick.std("Loss/signs/real"), float(np.std([1, -1, 1])))
    assert tick["Loss/G/loss"] == 2.5
    rep.report("Loss/signs/real", [1.0, 1.0])
    ada.update()
    assert ada.names() == ["Loss/signs/real"] and ada.num("Loss/signs/real") == 5 and math.isclose(ada.mean("Loss/signs/real"), 0.6)
    tick.update()
    assert tick.num("Loss/signs/real") == 2 and tick.mean("Loss/signs/real") == 1.0
    assert "Loss/G/loss" not in tick.as_dict()  # nothing reported in this window
    assert tick.as_dict()["Loss/signs/real"] == {"num": 2, "mean": 1.0, "std": 0.0}


def test_state_round_trip_keeps_open_window():
    rep = Reporter()
    col = Collector(rep)
    rep.report("x", [1.0, 2.0])
    col.update()
    rep.report("x", [4.0])
    rep2, col2 = Reporter(), Collector(Reporter())
    rep2.load_state_dict(rep.state_dict())
    col2 = Collector(rep2)
    col2.load_state_dict(col.state_dict())
    col2.update()
    assert col2.num("x") == 1 and col2.mean("x") == 4.0
