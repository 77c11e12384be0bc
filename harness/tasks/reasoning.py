"""Rule-rewarded reasoning tasks: Knights-and-Knaves puzzles and column arithmetic.

Both produce :class:`Problem` objects (prompt ending in a pre-filled ``<think>``, a
ground truth, a difficulty) and grade any response onto TRPA's four levels
(:mod:`harness.tasks.levels`). Texts are space-separated words so a word-level
tokenizer sees every number digit and every tag as one token.
"""
from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from ..api import BenchError, TaskData
from .levels import KK_REWARDS, MATH_REWARDS, Grade, answer_text, format_ok

NAMES = ("Alice", "Bob", "Carol", "Dave", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy",
         "Mallory", "Nina", "Oscar", "Peggy", "Quinn", "Rupert", "Sybil", "Trent", "Uma",
         "Victor")


@dataclass(frozen=True)
class Problem:
    prompt: str
    answer: Any            # K&K: tuple of bools (knight?) per person; arithmetic: int
    difficulty: int        # K&K: number of people; arithmetic: number of digits
    people: tuple[str, ...] = ()
    solution: str = ""     # a correct response (scratchpad + answer)
    statements: tuple = ()  # K&K: each speaker's statement (nested tuples, see evaluate)
    scratchpad: str = ""    # K&K: which scratchpad ``solution`` uses (KK_SCRATCHPADS)


# --- Knights and Knaves ----------------------------------------------------------------------
# A statement is a nested tuple: ("is", person, knight?) | ("not", s) | (op, s1, s2)

def evaluate(stmt: tuple, roles: Sequence[bool]) -> bool:
    kind = stmt[0]
    if kind == "is":
        return roles[stmt[1]] == stmt[2]
    if kind == "not":
        return not evaluate(stmt[1], roles)
    a, b = evaluate(stmt[1], roles), evaluate(stmt[2], roles)
    return {"and": a and b, "or": a or b, "if": (not a) or b, "iff": a == b}[kind]


def render(stmt: tuple, names: Sequence[str]) -> str:
    kind = stmt[0]
    if kind == "is":
        return f"{names[stmt[1]]} is a {'knight' if stmt[2] else 'knave'}"
    if kind == "not":
        return f"it is not the case that {render(stmt[1], names)}"
    a, b = render(stmt[1], names), render(stmt[2], names)
    return {"and": f"{a} and {b}", "or": f"{a} or {b}", "if": f"if {a} then {b}",
            "iff": f"{a} if and only if {b}"}[kind]


def _random_statement(rng: random.Random, speaker: int, n: int, depth: int) -> tuple:
    others = [p for p in range(n) if p != speaker] or [speaker]
    if depth <= 1 or rng.random() < 0.4:
        return ("is", rng.choice(others), rng.random() < 0.5)
    op = rng.choice(["not", "and", "or", "if", "iff"])
    if op == "not":
        return ("not", ("is", rng.choice(others), rng.random() < 0.5))
    return (op, _random_statement(rng, speaker, n, 1), _random_statement(rng, speaker, n, 1))


def consistent_assignments(statements: Sequence[tuple], n: int) -> list[tuple[bool, ...]]:
    """All role assignments under which every speaker's statement matches their role."""
    return [roles for roles in itertools.product([True, False], repeat=n)
            if all(evaluate(s, roles) == roles[p] for p, s in enumerate(statements))]


def kk_answer(names: Sequence[str], roles: Sequence[bool]) -> str:
    return " ".join(f"( {i + 1} ) {nm} is a {'knight' if r else 'knave'}"
                    for i, (nm, r) in enumerate(zip(names, roles)))


#: K&K scratchpads. ``roles``: the assignment, then "consistent" (the model must solve the
#: puzzle in its head). ``cases``: the assignments in a fixed order (knight before knave,
#: first person slowest), each with the truth value of every statement under it and
#: "yes"/"no" for whether they match the speakers' roles, up to the first (= the only)
#: consistent one: each line is a local check a small model can learn.
KK_SCRATCHPADS = ("roles", "cases")


def _role(r: bool) -> str:
    return "knight" if r else "knave"


def kk_cases(statements: Sequence[tuple], roles: Sequence[bool]) -> str:
    """The ``cases`` scratchpad: assignments in order up to and including ``roles``, which
    alone is marked "yes". For the true roles (the only consistent assignment) every
    verdict is right; for other ``roles`` (a wrong response for the SFT mixture) the
    scratchpad misjudges two lines, as a wrong solver would."""
    lines = []
    for hyp in itertools.product([True, False], repeat=len(statements)):
        truth = " ".join("true" if evaluate(s, hyp) else "false" for s in statements)
        stop = tuple(hyp) == tuple(roles)
        lines.append(f"{' '.join(_role(r) for r in hyp)} : {truth} {'yes' if stop else 'no'}")
        if stop:
            break
    return " ; ".join(lines)


def kk_think(statements: Sequence[tuple], names: Sequence[str], roles: Sequence[bool],
             scratchpad: str) -> str:
    if scratchpad == "cases":
        return kk_cases(statements, roles)
    return " ".join(f"{nm} {_role(r)}" for nm, r in zip(names, roles)) + " consistent"


def kk_problem(rng: random.Random, n: int, depth: int = 2, max_tries: int = 1000,
               scratchpad: str = "roles") -> Problem:
    """A puzzle with exactly one consistent assignment (checked by enumeration)."""
    if scratchpad not in KK_SCRATCHPADS:
        raise BenchError(f"unknown K&K scratchpad '{scratchpad}' ({' or '.join(KK_SCRATCHPADS)}).")
    for _ in range(max_tries):
        names = tuple(rng.sample(NAMES, n))
        roles = tuple(rng.random() < 0.5 for _ in range(n))
        statements = []
        for p in range(n):
            s = _random_statement(rng, p, n, depth)
            if evaluate(s, roles) != roles[p]:  # make it consistent with the ground truth
                s = ("not", s)
            statements.append(s)
        if consistent_assignments(statements, n) != [roles]:
            continue
        said = " ".join(f"{names[p]} says : {render(s, names)} ." for p, s in enumerate(statements))
        prompt = (f"Answer in <think> </think> <answer> </answer> . Knights always tell the truth "
                  f"and knaves always lie . {n} people : {' , '.join(names)} . {said} "
                  f"Who is a knight and who is a knave ? <think>")
        think = kk_think(statements, names, roles, scratchpad)
        solution = f"{think} </think> <answer> {kk_answer(names, roles)} </answer>"
        return Problem(prompt, roles, n, names, solution, tuple(statements), scratchpad)
    raise BenchError(f"could not generate a unique {n}-person puzzle in {max_tries} tries.")


def parse_kk(text: str, names: Sequence[str]) -> tuple[bool, ...] | None:
    """Roles from an answer text, or None when it does not name each person exactly once
    (the mention count must equal the number of people, as in the official parser)."""
    if len(re.findall(r"\b(knight|knave)\b", text, flags=re.I)) != len(names):
        return None
    roles = []
    for nm in names:
        m = re.findall(rf"\b{re.escape(nm)}\s+is\s+a\s+(knight|knave)\b", text, flags=re.I)
        if len(m) != 1:
            return None
        roles.append(m[0].lower() == "knight")
    return tuple(roles)


def grade_kk(problem: Problem, response: str) -> Grade:
    if not format_ok(response):
        return Grade(4, KK_REWARDS["format_fail"], False, False)
    text = answer_text(response)
    if not text:
        return Grade(4, KK_REWARDS["empty_answer"], False, True)
    roles = parse_kk(text, problem.people)
    if roles is None:
        return Grade(3, KK_REWARDS[3], False, True)
    if roles == tuple(problem.answer):
        return Grade(1, KK_REWARDS[1], True, True)
    return Grade(2, KK_REWARDS[2], False, True)


def kk_corruptions(problem: Problem, rng: random.Random) -> dict[int, str]:
    """A wrong (L2), an unparsable (L3) and a broken-format (L4) response for SFT mixtures."""
    names, roles = problem.people, list(problem.answer)
    flip = rng.randrange(len(roles))
    wrong = roles.copy()
    wrong[flip] = not wrong[flip]
    think = problem.solution.split("</think>")[0]
    wrong_think = kk_think(problem.statements, names, wrong, problem.scratchpad or "roles")
    missing = kk_answer(names[:-1], roles[:-1])
    return {
        2: f"{wrong_think} </think> <answer> {kk_answer(names, wrong)} </answer>",
        3: f"{think}</think> <answer> {missing} </answer>",
        4: f"{think} <answer> {kk_answer(names, roles)} </answer>",
    }


# --- column arithmetic -------------------------------------------------------------------------

def digits(x: int) -> str:
    return " ".join(str(x)) if x >= 0 else "- " + " ".join(str(-x))


def arithmetic_problem(rng: random.Random, n_digits: int) -> Problem:
    lo, hi = 10 ** (n_digits - 1), 10 ** n_digits - 1
    a, b = rng.randint(lo, hi), rng.randint(lo, hi)
    op = rng.choice("+-")
    if op == "-" and b > a:
        a, b = b, a
    result = a + b if op == "+" else a - b
    steps, carry = [], 0
    for da, db in itertools.zip_longest(reversed(str(a)), reversed(str(b)), fillvalue="0"):
        da, db = int(da), int(db)
        if op == "+":
            s = da + db + carry
            steps.append(f"{da} + {db} + {carry} = {s % 10} c {s // 10}")
            carry = s // 10
        else:
            s = da - db - carry
            steps.append(f"{da} - {db} - {carry} = {s % 10} c {int(s < 0)}")
            carry = int(s < 0)
    prompt = (f"Answer in <think> </think> <answer> </answer> . Compute {digits(a)} {op} "
              f"{digits(b)} . <think>")
    solution = f"{' , '.join(steps)} </think> <answer> {digits(result)} </answer>"
    return Problem(prompt, result, n_digits, (), solution)


def parse_number(text: str) -> int | None:
    compact = text.replace(" ", "")
    return int(compact) if re.fullmatch(r"-?\d+", compact) else None


def grade_arithmetic(problem: Problem, response: str) -> Grade:
    """Levels as in math_reward_pl.py: L4 no think delimiter / nothing extracted,
    L3 empty or non-numeric answer, L2 wrong, L1 correct."""
    text = answer_text(response)
    if not format_ok(response) or text is None:
        return Grade(4, MATH_REWARDS[4], False, False)
    value = parse_number(text) if text else None
    if value is None:
        return Grade(3, MATH_REWARDS[3], False, True)
    if value == problem.answer:
        return Grade(1, MATH_REWARDS[1], True, True)
    return Grade(2, MATH_REWARDS[2], False, True)


def arithmetic_corruptions(problem: Problem, rng: random.Random) -> dict[int, str]:
    think = problem.solution.split("</think>")[0]
    wrong = problem.answer + rng.choice([-10, -1, 1, 10])
    return {2: f"{think}</think> <answer> {digits(wrong)} </answer>",
            3: f"{think}</think> <answer> unknown </answer>",
            4: f"{think} <answer> {digits(problem.answer)} </answer>"}


# --- the task dataset -----------------------------------------------------------------------

@dataclass
class ReasoningData(TaskData):
    """Train/valid/test problems plus the task's grader and SFT-mixture builder."""

    grader: Callable[[Problem, str], Grade] = field(default=grade_kk, repr=False)
    corrupt: Callable[[Problem, random.Random], dict] = field(default=kk_corruptions, repr=False)
    reward_range: tuple[float, float] = (-3.0, 3.0)

    def grade(self, problem: Problem, response: str) -> Grade:
        return self.grader(problem, response)

    def corpus(self) -> list[str]:
        """Every text the tokenizer must cover (prompts, solutions, corruptions)."""
        rng = random.Random(0)
        out = []
        for p in self.train + self.valid + self.test:
            out += [p.prompt, p.solution, *self.corrupt(p, rng).values()]
        return out

    def sft_pairs(self, mix: Sequence[float] = (0.55, 0.25, 0.10, 0.10), seed: int = 0
                  ) -> tuple[list[str], list[str]]:
        """(prompts, responses) over the training problems with levels drawn from ``mix``
        (L1..L4 shares), so the warm-started policy visits every level."""
        rng = random.Random(seed)
        prompts, responses = [], []
        for p in self.train:
            level = rng.choices([1, 2, 3, 4], weights=mix)[0]
            prompts.append(p.prompt)
            responses.append(p.solution if level == 1 else self.corrupt(p, rng)[level])
        return prompts, responses


def make_reasoning(kind: str, n_train: int, n_valid: int, n_test: int,
                   difficulties: Sequence[int], seed: int, depth: int = 2,
                   scratchpad: str = "roles") -> ReasoningData:
    """Knights-and-Knaves (``kind='knights_knaves'``, difficulty = people) or column
    arithmetic (``kind='arithmetic'``, difficulty = digits); difficulties cycle evenly.
    ``scratchpad`` picks the K&K solution format (:data:`KK_SCRATCHPADS`); the puzzles
    are the same whichever it is."""
    if not difficulties:
        raise BenchError(f"{kind}: difficulties must not be empty.")
    rng = random.Random(seed)
    if kind == "knights_knaves":
        bad = [d for d in difficulties if not 2 <= d <= len(NAMES)]
        if bad:
            raise BenchError(f"knights_knaves: people must be in 2..{len(NAMES)}, got {bad}.")
        make = lambda d: kk_problem(rng, d, depth, scratchpad=scratchpad)  # noqa: E731
        grader, corrupt, rr = grade_kk, kk_corruptions, (-3.0, 3.0)
    elif kind == "arithmetic":
        bad = [d for d in difficulties if not 1 <= d <= 6]
        if bad:
            raise BenchError(f"arithmetic: digits must be in 1..6, got {bad}.")
        make = lambda d: arithmetic_problem(rng, d)  # noqa: E731
        grader, corrupt, rr = grade_arithmetic, arithmetic_corruptions, (-3.0, 3.0)
    else:
        raise BenchError(f"unknown reasoning task '{kind}' (knights_knaves or arithmetic).")
    seen: set[str] = set()

    def draw(count: int) -> list[Problem]:
        out = []
        while len(out) < count:
            p = make(difficulties[len(out) % len(difficulties)])
            if p.prompt not in seen:  # no prompt shared between parts
                seen.add(p.prompt)
                out.append(p)
        return out

    train, valid, test = draw(n_train), draw(n_valid), draw(n_test)
    fp = {"kind": kind, "n": [n_train, n_valid, n_test], "difficulties": list(difficulties),
          "seed": seed, "depth": depth, "version": 1}
    if kind == "knights_knaves" and scratchpad != "roles":  # old fingerprints stay valid
        fp["scratchpad"] = scratchpad
    diag = {"n_train": n_train, "n_valid": n_valid, "n_test": n_test,
            "difficulties": list(difficulties)}
    return ReasoningData(kind, "reasoning", train, valid, test, fingerprint=fp,
                         protocol={"grader": kind, "levels": "trpa-4"}, diagnostics=diag,
                         grader=grader, corrupt=corrupt, reward_range=rr)
