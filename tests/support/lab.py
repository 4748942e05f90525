"""Small, realistic lab states for scientist tests: a task with three kinds of knobs, a champion,
a short log with a keep and a discard, a dead end, a noise estimate and a team."""

from __future__ import annotations

from pathlib import Path

from autosci_graph.scientists.base import AxisEffect, Knowledge, LabView, RecalledMemory
from autosci_graph.state import (
    Change,
    Champion,
    DeadEnd,
    ExperimentEntry,
    Hypothesis,
    Proposal,
    RunResult,
    Team,
)
from autosci_graph.task import CategoricalKnob, FloatKnob, IntKnob, Metric, ResearchTask


def make_task(root: Path | None = None) -> ResearchTask:
    return ResearchTask(
        name="toy_gpt",
        root=root or Path("."),
        command=("{python}", "train.py", "--seed={seed}"),
        metric=Metric(name="val_bpb", direction="minimize", target=1.5),
        description="a tiny GPT on text",
        knobs={
            "lr": FloatKnob(low=1e-4, high=3e-2, default=3e-3, log=True),
            "n_layer": IntKnob(low=1, high=8, default=2),
            "dropout": FloatKnob(low=0.0, high=0.5, default=0.1),
            "activation": CategoricalKnob(choices=("relu", "gelu"), default="relu"),
        },
    )


def make_proposal(
    *, author: str = "exp-1", team: str = "team-a", axis: str = "lr", direction: str = "increase",
    knobs: dict | None = None, proposal_id: str = "p-1",
) -> Proposal:
    return Proposal(
        proposal_id=proposal_id, author=author, team=team, axis=axis, direction=direction,  # type: ignore[arg-type]
        change=Change(knobs=knobs if knobs is not None else {"lr": 0.006}),
        rationale="lr increases helped twice", prediction="val_bpb -0.02", bold=True,
    )


def make_team() -> Team:
    return Team(
        team_id="team-a",
        hypothesis=Hypothesis(
            statement="the learning rate is too low for this batch size",
            prediction="doubling lr lowers val_bpb by more than 2 sigma",
            falsification="3 refuting discards on lr with no keep",
            axes=["lr", "n_layer"],
        ),
        members=["ana-1", "exp-1", "exp-2"],
        support=1,
    )


def make_view(task: ResearchTask | None = None) -> LabView:
    task = task or make_task()
    config = task.default_config() | {"lr": 0.004}
    keep = ExperimentEntry(
        index=1,
        result=RunResult(experiment_id="e1", status="ok", change=Change(knobs={"lr": 0.004}), seed=1,
                         metric_name="val_bpb", metric=1.91),
        proposal=make_proposal(knobs={"lr": 0.004}, proposal_id="p-e1"),
        outcome="keep", gain=0.04, champion_metric=1.95,
    )
    discard = ExperimentEntry(
        index=2,
        result=RunResult(experiment_id="e2", status="ok", change=Change(knobs={"dropout": 0.4}), seed=1,
                         metric_name="val_bpb", metric=1.99),
        proposal=make_proposal(axis="dropout", knobs={"dropout": 0.4}, proposal_id="p-e2"),
        outcome="discard", gain=-0.08, champion_metric=1.91,
    )
    return LabView(
        task=task,
        champion=Champion(experiment_id="e1", config=config, metric=1.91, seeds=[1, 2], description="lr 0.004"),
        experiments=[keep, discard],
        teams=[make_team()],
        dead_ends=[DeadEnd(experiment_id="e2", axis="dropout", direction="increase", value=0.4, delta=-0.08,
                           family="dropout+increase", reason="overfits less but learns slower")],
        knowledge=Knowledge(
            noise_sigma=0.006, noise_samples=3,
            effects={"lr": AxisEffect(axis="lr", tried=1, keeps=1, mean_gain=0.04, by_direction={"increase": 0.04}),
                     "dropout": AxisEffect(axis="dropout", tried=1, discards=1, mean_gain=-0.08)},
            untested_axes=["n_layer", "activation"],
        ),
        experiments_left=20,
    )


def make_recalled() -> list[RecalledMemory]:
    return [
        RecalledMemory(
            experiment_id="e-old-7", text="n_layer 6 diverged after 200 steps: loss went to NaN",
            outcome="crash", status="diverged", axis="n_layer", direction="increase",
            knobs={"n_layer": 6}, delta=None, score=0.92,
        )
    ]
