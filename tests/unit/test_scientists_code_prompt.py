"""The code in the prompts: the proposer sees the champion's files numbered (whole, or outlined
around what the champion's change touched), the champion's change and the edit formats; the
critic sees the increment it reviews; code answers in either format are not refused for form."""

from __future__ import annotations

import json
import re

from conftest_llm import lab_view, recalled  # noqa: F401  (fixtures)

from autosci_graph.scientists import prompts
from autosci_graph.scientists.base import LabView
from autosci_graph.scientists.llm import LLMScientist
from autosci_graph.state import Change, Champion, Proposal
from autosci_graph.tools.patches import unified_diff
from tests.support import ScriptedChatModel
from tests.support.lab import make_task, make_team

SMALL = "import math\n\nlr = 3e-4\nsteps = 10\n\n\ndef act(x):\n    return math.tanh(x)\n"


def _long_file(n_funcs: int = 120) -> str:
    head = "".join(f"CONST_{i} = {i}\n" for i in range(5))
    body = "".join(f"\n\ndef f{i}(x):\n    y = x + {i}\n    y = y * {i + 1}\n    return y - {i}\n" for i in range(n_funcs))
    return head + body


def _view(files: dict[str, str], original: dict[str, str] | None = None) -> LabView:
    """A view whose champion is ``files``; its diff is the change from ``original`` (if given)."""
    task = make_task().model_copy(update={"editable": tuple(files)})
    diff = unified_diff(original, files) if original else None
    champion = Champion(experiment_id="e1", config=task.default_config(), diff=diff or None, metric=1.9, seeds=[0, 1])
    return LabView(task=task, champion=champion, champion_files=files, teams=[make_team()])


def _propose_prompt(view: LabView, settings: prompts.PromptSettings = prompts.PromptSettings()) -> str:
    messages = prompts.propose_messages(view, team=make_team(), author="exp-1", recalled=[], n=2, settings=settings)
    return messages[1].text


def _section(prompt: str, path: str) -> str:
    """One file's block of the CHAMPION CODE section: its header line up to the next blank line."""
    start = prompt.index(f"=== {path} (")
    end = prompt.find("\n\n", start)
    return prompt[start:end if end >= 0 else None]


def test_propose_prompt_shows_each_editable_file_numbered_with_the_edit_formats() -> None:
    prompt = _propose_prompt(_view({"train.py": SMALL}))
    assert "=== train.py (8 lines, in full) ===" in prompt
    for line in ("   1| import math", "   2|\n", "   3| lr = 3e-4", "   8|     return math.tanh(x)"):
        assert line in prompt
    assert "CHAMPION'S CODE CHANGE: none yet" in prompt
    assert "<<<<<<< SEARCH" in prompt and "+++ b/FILE" in prompt and "increment against the files" in prompt
    # The code comes before the team and the answer schema, which stay where they were.
    assert prompt.index("CHAMPION CODE") < prompt.index("YOUR TEAM:") < prompt.index("Answer with one JSON object")


def test_a_knob_only_view_gets_no_code_section(lab_view, recalled) -> None:  # noqa: F811
    messages = prompts.propose_messages(lab_view, team=make_team(), author="exp-1", recalled=recalled, n=2)
    assert "CHAMPION CODE" not in messages[1].text and "HOW TO CHANGE CODE" not in messages[1].text


def test_an_experimenter_is_told_when_teammates_draft_from_the_same_state(lab_view, recalled) -> None:  # noqa: F811
    alone = prompts.propose_messages(lab_view, team=make_team(), author="exp-2", recalled=recalled, n=2)[1].text
    second = lab_view.model_copy(update={"siblings_drafting": 1})
    told = prompts.propose_messages(second, team=make_team(), author="exp-2", recalled=recalled, n=2)[1].text
    assert "drafting from this same state" not in alone
    assert "1 other experimenter(s) of your team are drafting from this same state" in told


def test_a_long_file_is_outlined_within_the_budget_with_the_touched_function_in_full() -> None:
    original = _long_file()
    edited = original.replace("    y = y * 61\n", "    y = y * 61 * 2\n    y = abs(y)\n")
    view = _view({"model.py": edited}, {"model.py": original})
    prompt = _propose_prompt(view, prompts.PromptSettings(code_budget_chars=3000))
    block = _section(prompt, "model.py")
    assert len(block) <= 3000
    assert "too long to show whole" in block
    lines = edited.split("\n")
    start = lines.index("def f60(x):")
    for i in range(start, start + 5):  # the whole function the champion's change touched
        assert f"{i + 1:>4}| {lines[i]}" in block
    assert f"{lines.index('def f0(x):') + 1:>4}| def f0(x):" in block  # the outline
    assert "   1| CONST_0 = 0" in block
    assert "    y = x + 3\n" not in block  # bodies far from the change are left out
    assert "   ..." in block
    # The champion's change is shown too.
    assert "CHAMPION'S CODE CHANGE from the original files" in prompt and "+    y = abs(y)" in prompt


def test_with_no_champion_change_the_module_head_is_the_focus() -> None:
    text = _long_file()
    block = _section(_propose_prompt(_view({"model.py": text}), prompts.PromptSettings(code_budget_chars=2500)), "model.py")
    assert len(block) <= 2500
    for i in range(5):
        assert f"{i + 1:>4}| CONST_{i} = {i}" in block
    assert "lines 1-5 in full" in block


def test_small_files_go_whole_and_leave_their_share_to_the_large_one() -> None:
    files = {"model.py": _long_file(), "config.py": SMALL}
    prompt = _propose_prompt(_view(files), prompts.PromptSettings(code_budget_chars=4000))
    assert "=== config.py (8 lines, in full) ===" in prompt
    big = _section(prompt, "model.py")
    assert "too long to show whole" in big and 2000 < len(big) <= 4000 - len(_section(prompt, "config.py"))


def test_the_line_numbers_let_a_model_find_lines_it_copies() -> None:
    """What the prompt shows is the file: the numbered lines read back give its exact text."""
    text = _long_file(30)
    prompt = _propose_prompt(_view({"model.py": text}))
    numbered = dict(re.findall(r"^\s*(\d+)\| ?(.*)$", _section(prompt, "model.py"), re.MULTILINE))
    assert "\n".join(numbered[str(i)] for i in range(1, len(numbered) + 1)) + "\n" == text


def test_a_huge_champion_change_is_cut_with_a_note() -> None:
    original = _long_file()
    edited = re.sub(r"return y - (\d+)", r"return y + \1", original)
    view = _view({"model.py": edited}, {"model.py": original})
    prompt = _propose_prompt(view, prompts.PromptSettings(champion_diff_chars=800))
    change = prompt[prompt.index("CHAMPION'S CODE CHANGE"):prompt.index("HOW TO CHANGE CODE")]
    assert len(change) < 1000 and "more line(s) of the change left out" in change


def test_the_critic_sees_the_increment_and_the_files_it_touches() -> None:
    view = _view({"train.py": SMALL})
    edit = "train.py\n<<<<<<< SEARCH\n    return math.tanh(x)\n=======\n    return math.sin(x)\n>>>>>>> REPLACE\n"
    proposal = Proposal(proposal_id="p-9", author="exp-1", team="team-a", axis="code:activation", direction="code",
                        change=Change(diff=edit), rationale="tanh saturates; sin does not", prediction="-0.01")
    prompt = prompts.critique_messages(view, proposal=proposal, reviewer="ana-1", recalled=[])[1].text
    assert "CODE INCREMENT TO REVIEW (touches train.py; as it applies to the champion's files)" in prompt
    assert "-    return math.tanh(x)\n+    return math.sin(x)" in prompt and "+++ b/train.py" in prompt
    reviewed = json.loads(prompt.split("PROPOSAL TO REVIEW: ", 1)[1].split("\n", 1)[0])
    assert reviewed["axis"] == "code:activation" and reviewed["code_increment"] == "shown below"

    broken = proposal.model_copy(update={"change": Change(diff="@@\n-    return math.cosh(x)\n+    return x\n")})
    prompt = prompts.critique_messages(view, proposal=broken, reviewer="ana-1", recalled=[])[1].text
    assert "as written; it does not apply to the champion's files" in prompt and "math.cosh" in prompt


# ---------------------------------------------------------------------------------------------- answers

SR_EDIT = "train.py\n<<<<<<< SEARCH\n    return math.tanh(x)\n=======\n    return math.sin(x)\n>>>>>>> REPLACE"
# Wrong hunk numbers and no file headers: the tolerant applier places it by its context.
BARE_HUNK = "@@ -40,2 +40,2 @@\n def act(x):\n-    return math.tanh(x)\n+    return x * math.tanh(x)\n"


def _code(diff: str, axis: str = "code:activation") -> dict[str, object]:
    return {"axis": axis, "direction": "code", "diff": diff, "bold": True,
            "rationale": "tanh saturates early; a smoother activation keeps gradients alive",
            "prediction": "val_bpb -0.02"}


def test_diff_only_code_proposals_in_either_format_are_accepted_and_the_prompt_honours_the_budget() -> None:
    view = _view({"train.py": SMALL})
    answer = json.dumps({"proposals": [_code(SR_EDIT), _code(BARE_HUNK, axis="code:gating")]})
    model = ScriptedChatModel(responses=[answer])
    sci = LLMScientist(model, code_budget_chars=50)
    reply = sci.propose(view, team=make_team(), author="exp-1", recalled=[])
    assert reply.dropped == [] and len(model.calls) == 1
    assert [(p.axis, p.direction, p.diff) for p in reply.proposals] == [
        ("code:activation", "code", SR_EDIT), ("code:gating", "code", BARE_HUNK)]
    assert sci.prompt_settings.code_budget_chars == 50
    assert "too long to show whole" in model.prompt_texts()[0]


def test_a_diff_in_no_edit_format_or_for_another_file_is_sent_back_with_the_reason() -> None:
    view = _view({"train.py": SMALL})
    prose = _code("replace tanh with sin in act()")
    other = _code("--- a/prepare.py\n+++ b/prepare.py\n@@\n-x\n+y\n", axis="code:data")
    fixed = json.dumps({"proposals": [_code(SR_EDIT), _code(BARE_HUNK, axis="code:gating")]})
    model = ScriptedChatModel(responses=[json.dumps({"proposals": [prose, other]}), fixed])
    reply = LLMScientist(model).propose(view, team=make_team(), author="exp-1", recalled=[])
    repair = model.calls[1][-1].text
    assert "neither a unified diff" in repair and "SEARCH/REPLACE" in repair
    assert "['prepare.py']" in repair and "only ['train.py'] may be edited" in repair
    assert [p.diff for p in reply.proposals] == [SR_EDIT, BARE_HUNK]


def test_a_diff_that_matches_nothing_is_left_to_the_graphs_precheck() -> None:
    """The scientist does not apply diffs: the precheck does, and sends its error back as a review."""
    view = _view({"train.py": SMALL})
    missing = "@@\n-    return math.cosh(x)\n+    return x\n"
    answer = json.dumps({"proposals": [_code(missing), _code(SR_EDIT, axis="code:gating")]})
    model = ScriptedChatModel(responses=[answer])
    reply = LLMScientist(model).propose(view, team=make_team(), author="exp-1", recalled=[])
    assert len(model.calls) == 1 and [p.diff for p in reply.proposals] == [missing, SR_EDIT]


def _ideas_view() -> LabView:
    from autosci_graph.state import CodeIdea, ExperimentEntry, RunResult

    gelu = unified_diff({"train.py": SMALL}, {"train.py": SMALL.replace("math.tanh(x)", "x * 0.5 * (1 + math.erf(x / 2 ** 0.5))")})
    warm = unified_diff({"train.py": SMALL}, {"train.py": SMALL.replace("steps = 10", "steps = 20")})
    ideas = [CodeIdea(name="gelu", description="GELU instead of tanh", axis="activation", diff=gelu, files=["train.py"]),
             CodeIdea(name="longer", description="twice the steps", axis="schedule", diff=warm, files=["train.py"])]
    view = _view({"train.py": SMALL})
    tried = ExperimentEntry(index=0, kind="explore", outcome="discard", proposal=Proposal(
        proposal_id="e0", author="exp-1", team="team-a", axis="code:schedule", direction="code", change=Change(diff=warm)),
        result=RunResult(experiment_id="e0", status="ok", change=Change(diff=warm), seed=0, metric_name="loss", metric=2.0))
    return view.model_copy(update={"ideas": ideas, "experiments": [tried]})


def test_the_experimenter_sees_the_untried_ideas_as_diffs_and_every_idea_by_name() -> None:
    view = _ideas_view()
    prompt = _propose_prompt(view)
    # Every idea is listed with its axis, the tried one marked ...
    assert "  code:activation gelu: GELU instead of tanh\n" in prompt and "  code:schedule longer: twice the steps [tried]" in prompt
    # ... and the untried one comes as a diff the model can copy into its proposal.
    section = prompt[prompt.index("UNTRIED CODE IDEAS"):]
    assert "--- idea gelu (code:activation)" in section and "+    return x * 0.5 * (1 + math.erf(x / 2 ** 0.5))" in section
    assert "--- idea longer" not in section
    # Over the budget an idea is named, not shown.
    tight = _propose_prompt(view, prompts.PromptSettings(idea_diff_chars=10))
    assert "(not shown, over the budget: gelu)" in tight and "math.erf" not in tight
    # A task without ideas gets neither section.
    plain = _propose_prompt(_view({"train.py": SMALL}))
    assert "CODE IDEAS" not in plain
