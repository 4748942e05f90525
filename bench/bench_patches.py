"""Model-written edits: the tolerant applier against the strict one, over a corpus of defective diffs.

The corpus (``tests/fixtures/model_edits``) holds edits of the example tasks' scripts as language
models write them -- wrong hunk numbers and counts, bare ``@@``, whitespace drift, missing
headers, fences, CRLF, SEARCH/REPLACE blocks -- each with the exact text it should produce, or
``expect = "refuse"`` for edits that must not apply (context that is not in the file, an
ambiguous match, a path that is not editable). An accept-case counts as applied only when the
result is exactly the expected text; a wrong application is a result that differs from it, or
any result for a refuse-case. Generated edits (random changes with random defects, see below)
check the applier on edits nobody wrote with it in mind.

    .venv/bin/python -m bench.bench_patches [--generated 3000] [--seed 0]
"""

from __future__ import annotations

import argparse
import difflib
import random
import re
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from autosci_graph.tools.diffs import DiffError, apply_patch
from autosci_graph.tools.patches import apply_edit
from autosci_graph.tools.workspace import check_diff
from bench._report import ROOT, markdown_table, write_section

CORPUS = ROOT / "tests" / "fixtures" / "model_edits"
Applier = Callable[[Mapping[str, str], str, Sequence[str]], dict[str, str]]
Outcome = Literal["correct", "refused", "wrong"]


@dataclass(frozen=True)
class ModelEdit:
    """One case of the corpus, read from its folder (``case.toml``, ``edit.txt``, ``expected.diff``)."""

    name: str
    defect: str
    description: str
    expect: Literal["apply", "refuse"]
    editable: tuple[str, ...]
    #: task path -> text before the edit
    files: dict[str, str]
    #: the edit exactly as the model wrote it (bytes decoded, CRLF kept)
    edit: str
    #: task path -> text after the edit, every file (None for a refuse-case)
    expected: dict[str, str] | None
    #: words the refusal's message must contain
    message_contains: tuple[str, ...]


def load_cases(corpus: Path = CORPUS) -> list[ModelEdit]:
    """Every case under ``corpus``, in folder order. The expected text is the snapshot with
    ``expected.diff`` applied by the strict applier (that diff is a canonical one)."""
    cases = []
    for folder in sorted(p for p in corpus.iterdir() if (p / "case.toml").is_file()):
        spec = tomllib.loads((folder / "case.toml").read_text(encoding="utf-8"))
        files = {path: (corpus / "sources" / snapshot).read_text(encoding="utf-8") for path, snapshot in spec["files"].items()}
        expected = None
        if spec["expect"] == "apply":
            diff = (folder / "expected.diff").read_text(encoding="utf-8")
            expected = {**files, **_strict(files, diff, list(files))}
        cases.append(ModelEdit(
            name=folder.name, defect=spec["defect"], description=spec["description"], expect=spec["expect"],
            editable=tuple(spec["editable"]), files=files,
            edit=(folder / "edit.txt").read_bytes().decode("utf-8"), expected=expected,
            message_contains=tuple(spec.get("message_contains", ())),
        ))
    return cases


def _strict(files: Mapping[str, str], edit: str, editable: Sequence[str]) -> dict[str, str]:
    """The strict applier as :func:`~autosci_graph.tools.workspace.apply_diff` runs it, on texts."""
    return {path: apply_patch(files[path], patch) for path, patch in check_diff(edit, editable)}


def outcome(case: ModelEdit, applier: Applier) -> Outcome:
    """Whether ``applier`` got ``case`` right, refused it, or applied it wrongly."""
    try:
        result = {**case.files, **applier(case.files, case.edit, case.editable)}
    except DiffError:
        return "correct" if case.expect == "refuse" else "refused"
    return "correct" if result == case.expected else "wrong"


# -- generated edits: random changes of the snapshots, with random defects ----------------------
#
# The corpus above was written alongside the applier; these are not. A random change (a comment
# appended, a line inserted, deleted, re-indented or with its digits changed) becomes a correct
# diff with 0, 1 or 3 lines of context, then one defect is applied to it. Defects touch only
# what a model copies (context and removed lines) or the whole hunk uniformly, so the intended
# text is still recoverable from the edit.

_HEADER = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@", re.M)


def _map_body(diff: str, fn: Callable[[str, str], str]) -> str:
    """``diff`` with ``fn(tag, text)`` applied to every hunk line."""
    out, in_hunk = [], False
    for line in diff.split("\n"):
        if line.startswith("@@") or line.startswith(("--- ", "+++ ")):
            in_hunk = line.startswith("@@")
            out.append(line)
        else:
            out.append(fn(line[0], line[1:]) if in_hunk and line[:1] in (" ", "+", "-") else line)
    return "\n".join(out)


def _tabs(tag: str, text: str) -> str:
    body = text.lstrip(" ")
    width = len(text) - len(body)
    return tag + ("\t" * (width // 4) + " " * (width % 4) + body if tag != "+" else text)


def _dedent(diff: str) -> str:
    bodies = [line[1:] for line in diff.split("\n") if line[:1] in (" ", "+", "-") and not line.startswith(("--- ", "+++ ")) and line[1:].strip()]
    if not all(b.startswith("    ") for b in bodies):
        return diff  # the hunk cannot move 4 columns left as a whole
    return _map_body(diff, lambda tag, text: tag + text[4:] if text.strip() else tag)


def _search_replace(diff: str) -> str:
    blocks = []
    for hunk in re.split(r"(?m)^@@.*\n", diff.split("\n", 2)[2])[1:]:
        body = hunk.split("\n")[:-1] if hunk.endswith("\n") else hunk.split("\n")
        old = "".join(line[1:] + "\n" for line in body if line[:1] in " -")
        new = "".join(line[1:] + "\n" for line in body if line[:1] in " +")
        blocks.append(f"<<<<<<< SEARCH\n{old}=======\n{new}>>>>>>> REPLACE\n")
    return "train.py\n" + "\n".join(blocks)


DEFECTS: dict[str, Callable[[str, random.Random], str]] = {
    "none": lambda d, rng: d,
    "line numbers off by up to 40": lambda d, rng: (lambda k: _HEADER.sub(lambda m: f"@@ -{max(1, int(m.group(1)) + k)}{m.group(2) or ''} +{max(1, int(m.group(3)) + k)}{m.group(4) or ''} @@", d))(rng.randint(-40, 40)),
    "bare @@": lambda d, rng: _HEADER.sub("@@", d),
    "no ---/+++, bare @@": lambda d, rng: "".join(l for l in _HEADER.sub("@@", d).splitlines(True) if not l.startswith(("--- ", "+++ "))),
    "trailing spaces": lambda d, rng: _map_body(d, lambda t, x: t + x + ("  " if t != "+" and x.strip() else "")),
    "tabs for spaces": lambda d, rng: _map_body(d, _tabs),
    "hunk 4 columns left": lambda d, rng: _dedent(d),
    "empty context lines": lambda d, rng: _map_body(d, lambda t, x: "" if t == " " and not x.strip() else t + x),
    "context without its space": lambda d, rng: _map_body(d, lambda t, x: x if t == " " and x[:1] not in ("", " ", "\t") else t + x),
    "CRLF": lambda d, rng: d.replace("\n", "\r\n"),
    "as SEARCH/REPLACE": lambda d, rng: _search_replace(d),
}


def _mutate(text: str, rng: random.Random) -> str:
    lines = text.split("\n")[:-1]
    for _ in range(rng.randint(1, 3)):
        i, kind = rng.randrange(len(lines)), rng.random()
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        if kind < 0.4:
            lines[i] += "  # tuned"
        elif kind < 0.6:
            lines.insert(i, indent + "pass  # added")
        elif kind < 0.7:
            del lines[i]
        elif kind < 0.8 and lines[i].strip():
            lines[i] = lines[i][4:] if lines[i].startswith("    ") and rng.random() < 0.5 else "    " + lines[i]
        else:
            lines[i] = lines[i].replace("1", "2")
    return "\n".join(lines) + "\n"


def _generated_outcome(files: dict[str, str], edit: str, expected: dict[str, str]) -> str:
    try:
        result = {**files, **apply_edit(files, edit, list(files))}
    except DiffError as exc:
        message = str(exc)
        return "no anchor" if "anchor" in message or "empty SEARCH" in message else "ambiguous" if "ambiguous" in message else "other refusal"
    return "correct" if result == expected else "wrong"


def generated(sources: Sequence[str], n: int, seed: int) -> list[tuple[str, str, str, str]]:
    """``n`` (defect, before, after, edit) quadruples for the file ``train.py``."""
    rng = random.Random(seed)
    out: list[tuple[str, str, str, str]] = []
    while len(out) < n:
        before = rng.choice(sources)
        after = _mutate(before, rng)
        if after == before:
            continue
        context = rng.choice([0, 1, 3])
        diff = "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), "a/train.py", "b/train.py", n=context))
        defect = rng.choice(list(DEFECTS))
        out.append((defect, before, after, DEFECTS[defect](diff, rng)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generated", type=int, default=3000, help="generated edits, besides the corpus")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cases = load_cases()
    appliers: dict[str, Applier] = {"tolerant": apply_edit, "strict": _strict}
    t0 = time.perf_counter()
    results = {name: [outcome(c, fn) for c in cases] for name, fn in appliers.items()}
    seconds = time.perf_counter() - t0

    accept = [i for i, c in enumerate(cases) if c.expect == "apply"]
    rate = {name: sum(r[i] == "correct" for i in accept) / len(accept) for name, r in results.items()}
    wrong = {name: sum(o == "wrong" for o in r) for name, r in results.items()}
    rows: list[list[object]] = []
    for defect in dict.fromkeys(c.defect for c in cases):
        idx = [i for i, c in enumerate(cases) if c.defect == defect]
        rows.append([defect, len(idx)] + [
            f"{sum(results[n][i] == 'correct' for i in idx)} ({sum(results[n][i] == 'wrong' for i in idx)} wrong)" for n in appliers
        ])
    misses = [f"{cases[i].name} ({results['tolerant'][i]})" for i in range(len(cases)) if results["tolerant"][i] != "correct"]

    sources = sorted({text for c in cases for text in c.files.values()})
    kinds = ("correct", "no anchor", "ambiguous", "other refusal", "wrong")
    by_defect: dict[str, Counter[str]] = {d: Counter() for d in DEFECTS}
    for defect, before, after, edit in generated(sources, args.generated, args.seed):
        by_defect[defect][_generated_outcome({"train.py": before}, edit, {"train.py": after})] += 1
    total: Counter[str] = sum(by_defect.values(), Counter())
    gen_rows: list[list[object]] = [[d, sum(c.values())] + [c[k] for k in kinds] for d, c in by_defect.items()]

    body = (
        f"{len(cases)} edits of the example tasks' scripts as language models write them "
        f"({len(accept)} that must apply, {len(cases) - len(accept)} that must be refused), in "
        "`tests/fixtures/model_edits`. *Tolerant* is `tools.patches.apply_edit`; *strict* is "
        "`tools.workspace.check_diff` + `tools.diffs.apply_patch`, what `apply_diff` runs (with this "
        "change's fix: lines past a hunk's counts are refused, where before they were dropped and a "
        "no-op applied). A case is correct when the result is exactly the expected text "
        "(accept-cases) or the edit raises `DiffError` (refuse-cases, the classes starting with "
        "'refuse'); wrong means applied with another text, or applied at all for a refuse-case. "
        f"Both appliers together took {seconds * 1000 / len(cases):.1f} ms per case.\n\n"
        + markdown_table(["defect", "cases", "tolerant correct", "strict correct"], rows)
        + f"\n\nTolerant misses: {', '.join(misses) or 'none'}. Strict wrong applications: {wrong['strict']}."
        + "\n\nThe corpus was written alongside the applier, so it shows what is covered rather than what "
        f"models will send. As a check on that, {args.generated} generated edits (seed {args.seed}; random "
        "changes of the same scripts as diffs with 0, 1 or 3 lines of context, each with one random defect) "
        "through the tolerant applier. *No anchor*: a hunk with no context at all or only blank lines "
        "(diff -U0 style), which cannot be placed without trusting its line number, so it is refused even "
        "when the number is right; *ambiguous*: lines that occur in several places and nothing tells which. "
        "A wrong application here is a one-line hunk whose shifted line number lands next to an identical "
        "line elsewhere: the nearest-line rule's residual risk, which more context removes.\n\n"
        + markdown_table(["generated defect", "edits", *kinds], gen_rows)
    )
    write_section(
        "patches",
        "Model-written edits: tolerant vs strict applier",
        body,
        {
            "patch apply rate (model-style diffs)": round(rate["tolerant"], 3),
            "strict apply rate (model-style diffs)": round(rate["strict"], 3),
            "wrong applications": wrong["tolerant"],
            "generated edits applied correctly": round(total["correct"] / args.generated, 3),
            "generated edits wrong applications": total["wrong"],
        },
        f".venv/bin/python -m bench.bench_patches --generated {args.generated} --seed {args.seed}",
    )


if __name__ == "__main__":
    main()
