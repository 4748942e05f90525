"""The proposer sees the code: an LLM lab on the real gpt_bpb task whose model edits train.py.

ChatOpenAI talks to a local OpenAI-compatible server whose scripted proposer knows nothing of
train.py except what its prompt shows: it reads the numbered lines out of the prompt and writes its
edits from them, in the forms models write. Four edits, in this order:

A. a clean unified diff: the learning-rate schedule scaled by 10 (a large, certain gain at 20 steps);
D. a diff whose context is not in the file (refused by the precheck, sent back to its author);
B. the revision: a diff with wrong hunk line numbers (GELU -> Sigmoid in the MLP);
C. SEARCH/REPLACE blocks, written on A's code: the warmup peak three times higher again.

Runs are step-limited, on the CPU and one slot, so every result, and hence every decision of the
lab, repeats exactly: A is promoted on its first run (t = 52), B runs on A's code and is discarded
at once, and C, also on A's code, is promoted on its first run too, as a refinement (t = 5.2 over
A against a refinement bar of 2.45 at two degrees of freedom, its gain over the default far past
the full bar): the second accepted code change contains the first.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from langchain_openai import ChatOpenAI
from langgraph.checkpoint.memory import InMemorySaver

from autosci_graph.graphs.context import LabContext, LabSettings
from autosci_graph.graphs.lab import build_lab_graph
from autosci_graph.scientists.llm import LLMScientist
from autosci_graph.task import load_task
from autosci_graph.tools.codestate import files_at
from autosci_graph.tools.local import LocalExecutor
from tests.support.openai_server import OpenAICompatServer, message_text

pytestmark = pytest.mark.integration

TASK = Path(__file__).resolve().parents[2] / "examples" / "gpt_bpb"
#: Three baseline seeds, A, B, C, and filler (knob moves, champion repeats) for the rest.
BUDGET = 9
#: A line of train.py as the prompt numbers it.
KNOWN_LINE = "  41| lr = 3e-4  # peak learning rate (AdamW)"
GHOST = "        self.act = nn.GELU()"  # D's context: no such line in train.py


def shown_file(prompt: str, path: str = "train.py") -> dict[int, str]:
    """The file's lines as the prompt shows them: line number -> text."""
    block = prompt.split(f"=== {path} (", 1)[1].split("\n\n", 1)[0]
    return {int(n): text for n, text in re.findall(r"^ *(\d+)\|(?: (.*))?$", block, re.MULTILINE)}


def line_of(lines: dict[int, str], fragment: str) -> int:
    hits = [n for n, text in lines.items() if fragment in text]
    assert len(hits) == 1, f"{fragment!r} is on lines {hits} of the prompt's train.py"
    return hits[0]


def edit_a(lines: dict[int, str]) -> str:
    """A clean unified diff with the right numbers: the schedule (warmup and decay) times 10."""
    k = line_of(lines, "def lr_at(step, progress):")
    old = [lines[k + i] for i in range(4)]
    new = old[:2] + [line.replace("return lr *", "return 10 * lr *") for line in old[2:]]
    body = [f" {old[0]}", f" {old[1]}", *(f"-{x}" for x in old[2:]), *(f"+{x}" for x in new[2:])]
    return f"--- a/train.py\n+++ b/train.py\n@@ -{k},4 +{k},4 @@\n" + "\n".join(body) + "\n"


def edit_d(lines: dict[int, str]) -> str:
    """A diff whose removed line is nowhere in the file."""
    k = line_of(lines, "self.mlp = nn.Sequential(")
    return (f"--- a/train.py\n+++ b/train.py\n@@ -{k},2 +{k},2 @@\n {lines[k - 1]}\n-{GHOST}\n"
            f"+        self.act = nn.SiLU()\n")


def edit_b(lines: dict[int, str]) -> str:
    """GELU -> Sigmoid in the MLP, its hunk header 40 lines off."""
    k = line_of(lines, "nn.GELU()")
    wrong = k + 40
    return (f"--- a/train.py\n+++ b/train.py\n@@ -{wrong - 1},3 +{wrong - 1},3 @@\n {lines[k - 1]}\n-{lines[k]}\n"
            f"+{lines[k].replace('nn.GELU()', 'nn.Sigmoid()')}\n {lines[k + 1]}\n")


def edit_c(lines: dict[int, str]) -> str:
    """SEARCH/REPLACE on A's code (the prompt shows the champion's files): the warmup peak x3."""
    k = line_of(lines, "return 10 * lr * (step + 1) / warmup_steps")
    search = [lines[k - 1], lines[k]]
    replace = [lines[k - 1], lines[k].replace("10 * lr", "30 * lr")]
    return "train.py\n<<<<<<< SEARCH\n" + "\n".join(search) + "\n=======\n" + "\n".join(replace) + "\n>>>>>>> REPLACE\n"


class Script:
    """Plays the organizer, the proposer (edits A, D, B, C from the prompt's code) and an approving critic."""

    def __init__(self) -> None:
        self.edits = [("code:schedule", edit_a), ("code:mlp_gate", edit_d), ("code:activation", edit_b), ("code:warmup_peak", edit_c)]
        self.proposed: list[tuple[str, str]] = []  # (axis, diff) in the order written
        self.knob_moves = 0
        self.problems: list[str] = []
        #: Whether an edit is being answered: the filler knob moves after them are not under
        #: test, and the critique may send one back (a value inside a range that already failed).
        self.edits_out = True

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body["messages"]
        system, prompt, last = message_text(messages[0]), message_text(messages[1]), message_text(messages[-1])
        if "Your answer was rejected" in last and self.edits_out:
            self.problems.append(last)  # every scripted edit is meant to be valid as written
        if "organizing the lab's teams" in system:
            return json.dumps({"hypotheses": [
                {"statement": "The code, not the knobs, limits a 20-step run: schedule, activation and init",
                 "prediction": "val_bpb drops by more than 1 bit", "falsification": "three code changes fail to beat it",
                 "axes": ["code:schedule", "lr"], "promise": 0.8}], "ranking": [0]})
        if "an experimenter on team" in system:
            if not self.edits:
                self.edits_out = False
                # The code edits are used up; the rest of the budget (how much depends on how many
                # seeds the promotions took) goes to plain knob moves.
                self.knob_moves += 1
                return json.dumps({"proposals": [{
                    "axis": "lr", "direction": "increase", "knobs": {"lr": round(3e-4 * (1 + self.knob_moves), 6)},
                    "rationale": "a higher peak lr for a 20-step run", "prediction": "val_bpb drops"}]})
            axis, edit = self.edits.pop(0)
            try:
                diff = edit(shown_file(prompt))
            except (AssertionError, IndexError, KeyError) as exc:  # the prompt did not show the code
                self.problems.append(f"{axis}: {type(exc).__name__}: {exc}")
                return "{}"
            self.proposed.append((axis, diff))
            return json.dumps({"proposals": [{
                "axis": axis, "direction": "code", "diff": diff, "rationale": f"{axis} is untested and cheap to change",
                "prediction": "val_bpb moves by more than 2 sigma"}]})
        if "reviewing a proposal" in system:
            return json.dumps({"approve": True, "reason": "an untested code axis; at 20 steps an effect above 2 sigma is likely"})
        return "{}"


def test_the_proposer_edits_the_code_it_is_shown_and_accepted_edits_stack(tmp_path: Path) -> None:
    task = load_task(TASK).with_fixed(time_budget=0, max_steps=20, eval_bytes=4096, device="cpu")
    original = files_at(task, None)["train.py"]
    script = Script()
    settings = LabSettings(n_teams=1, proposals_per_turn=1, max_experiments=BUDGET, stop_after_no_keep=None)
    with OpenAICompatServer(script) as server, LocalExecutor(task, tmp_path / "work", slots=1, device="cpu") as executor:
        model = ChatOpenAI(model="test-model", base_url=server.base_url, api_key="x", max_retries=0)
        ctx = LabContext(task=task, executor=executor, scientist=LLMScientist(model), poll_s=0.5,
                         settings=settings)
        graph = build_lab_graph().compile(checkpointer=InMemorySaver())
        out = graph.invoke({"run_id": "code"}, context=ctx,
                           config={"configurable": {"thread_id": "code"}, "recursion_limit": 10_000})
        requests = [(message_text(r["messages"][0]), "\n".join(message_text(m) for m in r["messages"][1:]))
                    for r in server.requests]
    assert script.problems == [] and script.edits == [], (script.problems, script.edits)
    proposer = [h for s, h in requests if "an experimenter on team" in s]
    critic = [h for s, h in requests if "reviewing a proposal" in s]

    # The proposer saw train.py numbered, all of it: the lines it read back are the file.
    assert KNOWN_LINE in proposer[0]
    first = shown_file(proposer[0])
    assert "\n".join(first[n] for n in sorted(first)) + "\n" == original

    by_axis = {s["proposal"]["axis"]: s for s in out["submitted"] if s["kind"] == "explore" and s["proposal"]["axis"] != "lr"}
    assert set(by_axis) == {"code:schedule", "code:activation", "code:warmup_peak"}, sorted(by_axis)
    # A, B and C reached the executor: each has a run log.
    for sub in by_axis.values():
        assert (tmp_path / "work" / "experiments" / sub["experiment_id"] / "run.log").is_file()

    # D never ran: the precheck refused it and its author read the applier's error on revision.
    refusals = [r for r in out["reviews"] if r["reviewer"] == "precheck"]
    assert len(refusals) == 1 and refusals[0]["rule"] == "patch_does_not_apply"
    refused_id = refusals[0]["proposal_id"]
    assert "-v0-" in refused_id and refused_id not in {s["proposal"]["proposal_id"] for s in out["submitted"]}
    assert [e["proposal_id"] for e in out["events"] if e["type"] == "patch_refused"] == [refused_id]
    revision = proposer[2]
    assert f"{refused_id} REJECTED by precheck" in revision and "does not apply to the champion's files" in revision
    assert GHOST.strip() in revision  # the error names what did not match
    assert by_axis["code:activation"]["proposal"]["proposal_id"].endswith("-v1-0")  # B is that revision

    # A was promoted, then C: B and C ran on A's code, each with its own edit and not the other's,
    # and the second accepted change contains the first.
    promoted = [e["experiment_id"] for e in out["events"] if e["type"] == "promotion"]
    assert promoted == [by_axis["code:schedule"]["experiment_id"], by_axis["code:warmup_peak"]["experiment_id"]]
    champion = files_at(task, out["champion"]["diff"])["train.py"]
    assert "return 30 * lr * (step + 1) / warmup_steps" in champion  # C's edit ...
    assert "return 10 * lr * (min_lr_frac" in champion and "return lr *" not in champion  # ... on A's
    ran = {axis: files_at(task, sub["change"]["diff"])["train.py"] for axis, sub in by_axis.items()}
    assert "10 * lr * (step + 1)" in ran["code:activation"] and "nn.Sigmoid()" in ran["code:activation"]
    assert "30 * lr * (step + 1)" in ran["code:warmup_peak"] and "nn.GELU()" in ran["code:warmup_peak"]
    # Later prompts show the champion's code as it is now, and its change from the original.
    assert "10 * lr * (step + 1)" in proposer[1] and "CHAMPION'S CODE CHANGE from the original files" in proposer[1]

    # The critic saw each increment it reviewed, on the file it touches.
    reviewed = [h for h in critic if "+        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.Sigmoid()" in h]
    assert reviewed and "CODE INCREMENT TO REVIEW (touches train.py; as it applies to the champion's files)" in reviewed[0]
    assert len(out["submitted"]) == BUDGET
