"""The small-model training loop: best-val weights restored, step and time budgets."""

from __future__ import annotations

import torch
from torch import nn

from freeaction_gym.training.supervised import FitBudget, fit_best_on_val


def test_restores_the_weights_of_the_best_validation():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    val_losses = iter([3.0, 1.0, 2.0, 5.0])  # the second evaluation (step 4) is the best
    snapshots = {}

    def validate() -> dict:
        snapshots[len(snapshots)] = {k: v.clone() for k, v in model.state_dict().items()}
        return {"loss": next(val_losses)}

    loss = lambda: ((model(x) - y) ** 2).mean()  # noqa: E731
    fit = fit_best_on_val(model, opt, FitBudget(8, 0.1, 1, 2), loss, validate, "t")
    assert fit.steps_done == 8 and fit.best_step == 4 and fit.best_loss == 1.0
    assert [m["step"] for m in fit.history] == [2, 4, 6, 8]
    for k, v in model.state_dict().items():
        assert torch.equal(v, snapshots[1][k])
    assert not torch.equal(snapshots[1]["weight"], snapshots[3]["weight"])  # it did move on


def test_time_budget_stops_early_and_validates_once_more():
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    budget = FitBudget(steps=10**6, lr=0.01, warmup=1, eval_every=10**6, max_minutes=0.001)
    fit = fit_best_on_val(
        model, opt, budget, lambda: model(torch.ones(1, 2)).sum() ** 2, lambda: {"loss": 0.0}, "t"
    )
    assert 0 < fit.steps_done < 10**6 and len(fit.history) == 1
    assert fit.history[0]["step"] == fit.steps_done
