"""The tolerant applier: model-written diffs and SEARCH/REPLACE blocks apply exactly, or not at all."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autosci_graph.tools.diffs import DiffError, apply_patch, parse_diff
from autosci_graph.tools.patches import EditError, apply_edit, normalize_edit, unified_diff
from autosci_graph.tools.workspace import apply_diff
from bench.bench_patches import ModelEdit, load_cases

CASES = load_cases()
ACCEPT = [c for c in CASES if c.expect == "apply"]
REFUSE = [c for c in CASES if c.expect == "refuse"]


def _ids(cases: list[ModelEdit]) -> list[str]:
    return [c.name for c in cases]


def _workspace(root: Path, files: dict[str, str]) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(text.encode())
    return root


def test_the_corpus_is_large_and_covers_both_outcomes() -> None:
    assert len(CASES) >= 30 and len(REFUSE) >= 10
    assert len({c.defect for c in ACCEPT}) >= 10


@pytest.mark.parametrize("case", ACCEPT, ids=_ids(ACCEPT))
def test_accept_cases_give_exactly_the_expected_text(case: ModelEdit) -> None:
    assert {**case.files, **apply_edit(case.files, case.edit, case.editable)} == case.expected


@pytest.mark.parametrize("case", REFUSE, ids=_ids(REFUSE))
def test_refuse_cases_raise_an_error_that_says_what_and_where(case: ModelEdit) -> None:
    with pytest.raises(EditError) as err:
        apply_edit(case.files, case.edit, case.editable)
    for words in case.message_contains:
        assert words in str(err.value)


@pytest.mark.parametrize("case", ACCEPT, ids=_ids(ACCEPT))
def test_the_normalized_edit_applies_with_the_strict_applier(case: ModelEdit, tmp_path: Path) -> None:
    normalized = normalize_edit(case.files, case.edit, case.editable)
    workspace = _workspace(tmp_path, case.files)
    assert case.expected is not None
    assert sorted(apply_diff(workspace, normalized, case.editable)) == sorted(p for p in case.files if case.expected[p] != case.files[p])
    assert {p: (workspace / p).read_bytes().decode() for p in case.files} == case.expected
    assert normalize_edit(case.files, normalized, case.editable) == normalized  # canonical is a fixed point


def test_edits_stack_into_one_diff_from_the_original(tmp_path: Path) -> None:
    by_name = {c.name.split("_", 1)[1]: c for c in CASES}
    first, second = by_name["wrong_line_numbers"], by_name["search_replace_unnamed"]  # RMSNorm, then lr
    assert first.files == second.files
    original = first.files
    after_first = {**original, **apply_edit(original, first.edit, first.editable)}
    second_diff = normalize_edit(after_first, second.edit, second.editable)
    final = {**after_first, **apply_edit(after_first, second_diff, second.editable)}
    combined = unified_diff(original, final)
    assert "+        self.ln1 = nn.RMSNorm(n_embd)" in combined and "+lr = 1e-3  # peak learning rate (AdamW)" in combined
    workspace = _workspace(tmp_path, original)
    apply_diff(workspace, combined, first.editable)
    assert {p: (workspace / p).read_text() for p in original} == final


def test_a_failing_file_leaves_every_file_as_it_was() -> None:
    case = next(c for c in REFUSE if c.name.endswith("two_files_second_fails"))
    files = MappingProxyType(dict(case.files))  # apply_edit may not write into what it is given
    with pytest.raises(EditError, match="prepare.py"):
        apply_edit(files, case.edit, case.editable)
    assert dict(files) == case.files
    # The train.py part alone applies, so a partial application would have changed it.
    assert apply_edit(files, case.edit.split("--- a/prepare.py")[0], case.editable)


def test_refusals_are_diff_errors_so_existing_handlers_catch_them() -> None:
    assert issubclass(EditError, DiffError)
    case = REFUSE[0]
    with pytest.raises(DiffError):
        apply_edit(case.files, case.edit, case.editable)


# -- details the corpus does not show ---------------------------------------------------------


def test_a_crlf_file_keeps_its_line_ends_through_both_appliers(tmp_path: Path) -> None:
    files = {"train.py": "lr = 3e-4\r\nsteps = 10\r\n\r\ndef main():\r\n    print(lr)\r\n"}
    changed = apply_edit(files, "@@\n def main():\n-    print(lr)\n+    print(lr, steps)\n", ["train.py"])
    assert changed == {"train.py": "lr = 3e-4\r\nsteps = 10\r\n\r\ndef main():\r\n    print(lr, steps)\r\n"}
    workspace = _workspace(tmp_path, files)
    apply_diff(workspace, unified_diff(files, changed), ["train.py"])
    assert (workspace / "train.py").read_bytes().decode() == changed["train.py"]


def test_a_file_without_final_newline_round_trips(tmp_path: Path) -> None:
    files = {"train.py": "lr = 3e-4\nsteps = 10"}
    changed = apply_edit(files, "--- train.py\n+++ train.py\n@@\n lr = 3e-4\n-steps = 10\n+steps = 20\n", ["train.py"])
    assert changed == {"train.py": "lr = 3e-4\nsteps = 20"}
    diff = unified_diff(files, changed)
    assert diff.count("\\ No newline at end of file") == 2
    workspace = _workspace(tmp_path, files)
    apply_diff(workspace, diff, ["train.py"])
    assert (workspace / "train.py").read_text() == "lr = 3e-4\nsteps = 20"


def test_no_newline_markers_in_the_edit_are_followed() -> None:
    files = {"train.py": "lr = 3e-4\nsteps = 10"}
    edit = "@@ -1,2 +1,2 @@\n lr = 3e-4\n-steps = 10\n\\ No newline at end of file\n+steps = 20\n"
    assert apply_edit(files, edit, ["train.py"]) == {"train.py": "lr = 3e-4\nsteps = 20\n"}


def test_a_tab_indented_file_gets_tabs_from_a_space_indented_edit() -> None:
    files = {"train.py": "def main():\n\tlr = 3e-4\n\tprint(lr)\n"}
    edit = "@@\n def main():\n-    lr = 3e-4\n+    lr = 1e-3\n+    steps = 10\n     print(lr)\n"
    assert apply_edit(files, edit, ["train.py"]) == {"train.py": "def main():\n\tlr = 1e-3\n\tsteps = 10\n\tprint(lr)\n"}


def test_blank_lines_alone_do_not_anchor_a_hunk_whatever_its_line_number() -> None:
    files = {"train.py": "a = 1\n\nb = 2\n\nc = 3\n"}
    with pytest.raises(EditError, match="anchor"):
        apply_edit(files, "@@ -2,1 +2,2 @@\n \n+x = 0\n", ["train.py"])
    assert apply_edit({"t.py": "a = 1\n\nb = 2\n"}, "@@ -9 +9,2 @@\n \n+x = 0\n", ["t.py"]) == {"t.py": "a = 1\n\nx = 0\nb = 2\n"}


def test_two_places_equally_near_the_stated_line_are_ambiguous() -> None:
    files = {"train.py": "x = 1\ny = 2\nx = 1\n"}
    with pytest.raises(EditError, match="ambiguous"):
        apply_edit(files, "@@ -2 +2 @@\n-x = 1\n+x = 3\n", ["train.py"])
    assert apply_edit(files, "@@ -3 +3 @@\n-x = 1\n+x = 3\n", ["train.py"]) == {"train.py": "x = 1\ny = 2\nx = 3\n"}


def test_a_line_number_must_be_clearly_nearer_one_place() -> None:
    files = {"train.py": "x = 1\ny = 2\nz = 3\nx = 1\n"}
    with pytest.raises(EditError, match="ambiguous"):  # stated line 2: 1 line from one, 2 from the other
        apply_edit(files, "@@ -2 +2 @@\n-x = 1\n+x = 3\n", ["train.py"])
    assert apply_edit(files, "@@ -4 +4 @@\n-x = 1\n+x = 3\n", ["train.py"]) == {"train.py": "x = 1\ny = 2\nz = 3\nx = 3\n"}


def test_exact_text_in_one_place_and_a_number_pointing_at_another_is_refused() -> None:
    files = {"train.py": "def a():\n    return 1\n\n\ndef b():\n        return 1\n"}
    with pytest.raises(EditError, match="exactly at line 2"):
        apply_edit(files, "@@ -6 +6 @@\n-    return 1\n+    return 2\n", ["train.py"])
    with pytest.raises(EditError, match="ambiguous"):  # without a number, exact text alone does not decide
        apply_edit(files, "<<<<<<< SEARCH\n    return 1\n=======\n    return 2\n>>>>>>> REPLACE\n", ["train.py"])


def test_a_search_replace_that_only_reindents_a_line_changes_it() -> None:
    files = {"t.py": "if x:\n        y = 1\n"}
    edit = "<<<<<<< SEARCH\nif x:\n        y = 1\n=======\nif x:\n    y = 1\n>>>>>>> REPLACE\n"
    assert apply_edit(files, edit, ["t.py"]) == {"t.py": "if x:\n    y = 1\n"}


def test_a_whitespace_match_is_still_ambiguous_when_it_matches_twice() -> None:
    files = {"train.py": "def a():\n    return 1\n\n\ndef b():\n        return 1\n"}
    with pytest.raises(EditError, match="ambiguous"):
        apply_edit(files, "<<<<<<< SEARCH\n  return 1\n=======\n  return 2\n>>>>>>> REPLACE\n", ["train.py"])


def test_search_replace_blocks_and_hunks_may_not_be_mixed() -> None:
    with pytest.raises(EditError, match="one format"):
        apply_edit({"t.py": "a\n"}, "@@\n-a\n+b\n<<<<<<< SEARCH\na\n=======\nb\n>>>>>>> REPLACE\n", ["t.py"])


def test_an_unterminated_block_says_which_marker_is_missing() -> None:
    with pytest.raises(EditError, match="'>>>>>>> REPLACE'"):
        apply_edit({"t.py": "a\n"}, "t.py\n<<<<<<< SEARCH\na\n=======\nb\n", ["t.py"])


def test_an_editable_file_whose_text_is_missing_is_named() -> None:
    with pytest.raises(EditError, match="prepare.py.*not given"):
        apply_edit({"train.py": "a\n"}, "--- a/prepare.py\n+++ b/prepare.py\n@@\n-a\n+b\n", ["train.py", "prepare.py"])


def test_unified_diff_is_git_style_sorted_and_empty_without_changes() -> None:
    before = {"b.py": "x = 1\n", "a.py": "y = 1\n", "c.py": "same\n"}
    after = {"b.py": "x = 2\n", "a.py": "y = 2\n", "c.py": "same\n"}
    diff = unified_diff(before, after)
    assert diff.startswith("--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n") and diff.index("a/a.py") < diff.index("a/b.py")
    assert "c.py" not in diff
    assert unified_diff(before, before) == ""
    with pytest.raises(EditError, match="d.py"):
        unified_diff(before, {**after, "d.py": "new\n"})


def test_unified_diff_splits_lines_at_newlines_only() -> None:
    before = {"t.py": "a = 1\x0c\nb = 2\n"}  # a form feed, which str.splitlines treats as a line end
    after = {"t.py": "a = 1\x0c\nb = 3\n"}
    assert apply_patch(before["t.py"], parse_diff(unified_diff(before, after))[0]) == after["t.py"]


def test_the_strict_parser_refuses_lines_its_counts_leave_out() -> None:
    # Before, the two lines after a one-line hunk were silently dropped and a no-op applied.
    with pytest.raises(DiffError, match="does not count it"):
        parse_diff("--- a/t.py\n+++ b/t.py\n@@ -1 +1 @@\n a\n-b\n+c\n")


# No blank lines: a hunk anchored by blank lines alone is refused unless they occur once (tested above).
_LINES = st.lists(st.from_regex(r"[a-c=(][a-c =()]{0,6}", fullmatch=True), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(before=_LINES, after=_LINES, final_newline=st.booleans())
def test_any_canonical_diff_applies_the_same_with_both_appliers(before: list[str], after: list[str], final_newline: bool) -> None:
    end = "\n" if final_newline else ""
    old, new = {"t.py": "\n".join(before) + end}, {"t.py": "\n".join(after) + end}
    diff = unified_diff(old, new)
    strict = apply_patch(old["t.py"], parse_diff(diff)[0]) if diff else old["t.py"]
    assert strict == new["t.py"]
    # Lines repeat at random, so this also checks that a right line number settles every ambiguity.
    assert {**old, **(apply_edit(old, diff, ["t.py"]) if diff else {})} == new
