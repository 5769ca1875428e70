"""Long multiplication, one voted digit at a time: the paper's open problem of decomposing a task.

a x b is split into partial products a x b_j (one per digit of b, shifted j places), each a chain
of microsteps "digit of a x b_j + carry -> digit, carry", and a binary tree of sums, each a chain
of microsteps "digit + digit + carry -> digit, carry". Every microstep's prompt holds only its
digits and carry; every reply is ``digit = D, carry = C``, read by a strict red-flag parser.

Numbers are digit strings as written (most significant first); a chain's output grows to the left.
At depth 0 one chain does everything in order (all partial products, then the sums); at depth >= 1
the partial products are independent chains that run at once and each sum waits for its two
inputs (a critical path of one product and about log2(len(b)) sums).
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from maker import Plan, RedFlag, RedFlagReason, Subtask, Task

MAX_DIGITS = 2000
Candidate = tuple[int, int]  # (digit, carry)


class Number(NamedTuple):
    """A chain's result: ``int(digits) * 10**shift`` (digits as written, maybe with leading zeros)."""

    digits: str
    shift: int

    @property
    def value(self) -> int:
        return int(self.digits.lstrip("0") or "0") * 10**self.shift


class ProductState(NamedTuple):
    """A partial product a x d (shifted ``shift`` places) with ``len(out)`` digits of a done."""

    a: str
    d: int
    carry: int
    out: str  # digits produced so far, as written
    shift: int


class SumState(NamedTuple):
    """x + y, aligned to the same length, with ``len(out)`` low positions done."""

    x: str
    y: str
    carry: int
    out: str
    shift: int


class MultiplyState(NamedTuple):
    """The whole multiplication: the finished chains' numbers, in stage order, and the chain in
    progress (None once every stage is done; the last number is then the product)."""

    results: tuple[Number, ...]
    current: ProductState | SumState | None


class Stage(NamedTuple):
    name: str
    steps: int
    digit: int | None  # a partial product: the position of b's digit (0 = ones); a sum: None
    inputs: tuple[int, int] | None  # a sum: the indices of the two stages it adds


def number_of(state: ProductState | SumState) -> Number:
    """The number a finished chain made: its final carry on top of its output digits."""
    return Number(f"{state.carry}{state.out}", state.shift)


def product_of(final_state: MultiplyState) -> int:
    """The product, read off a finished run's final state."""
    if final_state.current is not None or not final_state.results:
        raise ValueError("the multiplication is not finished")
    return final_state.results[-1].value


def layout(len_a: int, len_b: int) -> list[Stage]:
    """Partial products first, then pairwise sums level by level (an odd one out waits a level).

    Lengths and shifts of every number are known from the split alone, so are the step counts.
    """
    stages = [Stage(f"product{j}", len_a, j, None) for j in range(len_b)]
    shapes = [(len_a + 1, j) for j in range(len_b)]  # (digits, shift) of each stage's number
    items, level = list(range(len_b)), 0
    while len(items) > 1:
        level += 1
        paired = []
        for i in range(0, len(items) - 1, 2):
            left, right = items[i], items[i + 1]
            (lx, sx), (ly, sy) = shapes[left], shapes[right]
            top, low = max(lx + sx, ly + sy), min(sx, sy)
            stages.append(Stage(f"sum{level}_{i // 2}", top - max(sx, sy), None, (left, right)))
            shapes.append((top - low + 1, low))
            paired.append(len(stages) - 1)
        items = paired + items[len(items) - len(items) % 2 :]
    return stages


def product_start(a: str, d: int, shift: int) -> ProductState:
    return ProductState(a, d, 0, "", shift)


def sum_start(x: Number, y: Number) -> SumState:
    """Align x and y. Below the higher shift only the lower-shifted number has digits, and adding
    zero with no carry copies them: those positions start done (no model call)."""
    low = min(x.shift, y.shift)
    top = max(len(x.digits) + x.shift, len(y.digits) + y.shift)
    xs = (x.digits + "0" * (x.shift - low)).rjust(top - low, "0")
    ys = (y.digits + "0" * (y.shift - low)).rjust(top - low, "0")
    free = max(x.shift, y.shift) - low
    lower = xs if x.shift == low else ys
    return SumState(xs, ys, 0, lower[len(lower) - free :], low)


# --- the reply format and its red-flag parser ----------------------------------------------------
_KEY = re.compile(r"(digit|carry)\s*=\s*([^\s,;]*)")
_NUMBER = re.compile(r"[0-9]{1,2}")


def parse_reply(reply: str) -> Candidate:
    """``digit = D, carry = C`` (case and spacing free; the last of each key counts) -> (D, C).

    Raises RedFlag for a missing key or a value that is not a whole number of one or two digits.
    Ranges are not judged here (``check`` does).
    """
    found: dict[str, str] = {}
    text = reply.lower()
    for match in _KEY.finditer(text):
        start = match.start()
        if start == 0 or not (text[start - 1].isalnum() or text[start - 1] == "_"):
            found[match.group(1)] = match.group(2)
    values = []
    for key in ("digit", "carry"):
        if key not in found:
            raise RedFlag(f"no '{key} = ...' found")
        if not _NUMBER.fullmatch(found[key]):
            raise RedFlag(f"{key} must be a whole number, got {found[key]!r}")
        values.append(int(found[key]))
    return values[0], values[1]


def format_reply(candidate: Candidate) -> str:
    return f"digit = {candidate[0]}, carry = {candidate[1]}"


# A reply is "digit = D, carry = C": about 7 tokens for our models, so 24 flags a rambling one.
DIGIT_STEP_DEFAULTS = {"max_tokens": 24}
_REPLY_FORMAT = "Reply with its ones digit and its tens digit (the carry), exactly as:\ndigit = <ones>, carry = <tens>\n"


def _check_range(candidate: Candidate, max_carry: int) -> None:
    digit, carry = candidate
    if not 0 <= digit <= 9:
        raise RedFlag(f"digit {digit} is not 0-9", RedFlagReason.INVALID)
    if not 0 <= carry <= max_carry:
        raise RedFlag(f"carry {carry} is not 0-{max_carry}", RedFlagReason.INVALID)


def _split(value: int) -> Candidate:
    """(ones digit, carry) of a microstep's value: the oracle's arithmetic (simulation only)."""
    return value % 10, value // 10


def _mistake(truth: Candidate, options: list[Candidate], max_carry: int, rng: random.Random) -> Candidate:
    digit, carry = truth
    options = options + [((digit + 1) % 10, carry), ((digit - 1) % 10, carry), (digit, carry + 1), (digit, carry - 1)]
    wrong = [c for c in options if c != truth and 0 <= c[0] <= 9 and 0 <= c[1] <= max_carry]
    return rng.choice(wrong)


# --- the two microstep kinds ---------------------------------------------------------------------
class ProductStep(Task):
    """One microstep of a partial product: (digit of a) x d + carry -> (digit, carry)."""

    name = "multiply-product"
    agent = "multiply-product"

    def prompt(self, state: ProductState) -> str:
        x = state.a[len(state.a) - 1 - len(state.out)]
        return f"Compute {x} x {state.d} + {state.carry}. {_REPLY_FORMAT}"

    kind_names = ("product",)

    def kind(self, state: ProductState) -> str:
        return "product"

    def run_defaults(self) -> dict[str, object]:
        return dict(DIGIT_STEP_DEFAULTS)

    def parse(self, state: ProductState, reply: str) -> Candidate:
        return parse_reply(reply)

    def check(self, state: ProductState, candidate: Candidate) -> None:
        _check_range(candidate, 8)  # 9 x 9 + 8 = 89

    def apply(self, state: ProductState, candidate: Candidate) -> ProductState:
        digit, carry = candidate
        return state._replace(carry=carry, out=f"{digit}{state.out}")

    def is_done(self, state: ProductState) -> bool:
        return len(state.out) == len(state.a)

    def oracle(self, state: ProductState) -> Candidate:
        return _split(int(state.a[len(state.a) - 1 - len(state.out)]) * state.d + state.carry)

    def format_reply(self, state: ProductState, candidate: Candidate) -> str:
        return format_reply(candidate)

    def plausible_mistake(self, state: ProductState, candidate: Candidate, rng: random.Random) -> Candidate:
        """Off by one in the digit or carry, the carry dropped, or digit and carry swapped."""
        dropped = _split(int(state.a[len(state.a) - 1 - len(state.out)]) * state.d)
        return _mistake(candidate, [dropped, (candidate[1], candidate[0])], 8, rng)


class SumStep(Task):
    """One microstep of a sum: digit + digit + carry -> (digit, carry)."""

    name = "multiply-sum"
    agent = "multiply-sum"

    def prompt(self, state: SumState) -> str:
        i = len(state.x) - 1 - len(state.out)
        return f"Compute {state.x[i]} + {state.y[i]} + {state.carry}. {_REPLY_FORMAT}"

    kind_names = ("sum",)

    def kind(self, state: SumState) -> str:
        return "sum"

    def run_defaults(self) -> dict[str, object]:
        return dict(DIGIT_STEP_DEFAULTS)

    def parse(self, state: SumState, reply: str) -> Candidate:
        return parse_reply(reply)

    def check(self, state: SumState, candidate: Candidate) -> None:
        _check_range(candidate, 1)  # 9 + 9 + 1 = 19

    def apply(self, state: SumState, candidate: Candidate) -> SumState:
        digit, carry = candidate
        return state._replace(carry=carry, out=f"{digit}{state.out}")

    def is_done(self, state: SumState) -> bool:
        return len(state.out) == len(state.x)

    def oracle(self, state: SumState) -> Candidate:
        i = len(state.x) - 1 - len(state.out)
        return _split(int(state.x[i]) + int(state.y[i]) + state.carry)

    def format_reply(self, state: SumState, candidate: Candidate) -> str:
        return format_reply(candidate)

    def plausible_mistake(self, state: SumState, candidate: Candidate, rng: random.Random) -> Candidate:
        """Off by one in the digit, the carry flipped, or the incoming carry dropped."""
        i = len(state.x) - 1 - len(state.out)
        return _mistake(candidate, [_split(int(state.x[i]) + int(state.y[i]))], 1, rng)


# --- the task ------------------------------------------------------------------------------------
def _digit_string(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return value


class MultiplyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    a: str | None = Field(None, description=f"first factor, decimal digits (at most {MAX_DIGITS})")
    b: str | None = Field(None, description=f"second factor, decimal digits (at most {MAX_DIGITS})")
    digits: int | None = Field(None, ge=1, le=MAX_DIGITS, description="instead of a and b: draw two random factors of this many digits")
    draw_seed: int = Field(0, description="seed for the random factors drawn with digits")

    @field_validator("a", "b", mode="before")
    @classmethod
    def _ints_as_digits(cls, value: Any) -> Any:
        return _digit_string(value)

    @field_validator("a", "b")
    @classmethod
    def _decimal(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if not value or not all("0" <= c <= "9" for c in value):
            raise ValueError("must be decimal digits only")
        if len(value) > 1 and value[0] == "0":
            raise ValueError("must not have leading zeros")
        if len(value) > MAX_DIGITS:
            raise ValueError(f"must have at most {MAX_DIGITS} digits, got {len(value)}")
        return value

    @model_validator(mode="after")
    def _factors(self) -> MultiplyParams:
        given = (self.a is not None) + (self.b is not None)
        if self.digits is not None and given:
            raise ValueError("give either --a and --b, or --digits, not both")
        if self.digits is None and given != 2:
            raise ValueError("give both --a and --b (or --digits for random factors)")
        return self


class MultiplyTask(Task):
    """Multiply ``a`` by ``b`` exactly, one voted digit step at a time.

    >>> import maker
    >>> task = MultiplyTask(a="1234", b="5678")
    >>> result = maker.run(task, maker.SimulatedBackend(task, error_rate=0.1, seed=1), k=3, depth=1)
    >>> result.solved, product_of(result.final_state), task.total_steps()
    (True, 7006652, 33)
    """

    name = "multiply"
    Params = MultiplyParams
    agent = "multiply"
    #: our own microagent: a LoRA adapter on the shared base (models/adapters/multiply), the default backend
    default_model = Path(__file__).resolve().parent.parent / "models" / "adapters" / "multiply"
    params: MultiplyParams

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        p = self.params
        if p.digits is not None:
            rng = random.Random(p.draw_seed)
            low, high = 10 ** (p.digits - 1), 10**p.digits - 1
            self.a, self.b = str(rng.randint(low, high)), str(rng.randint(low, high))
        else:
            self.a, self.b = p.a, p.b  # type: ignore[assignment]
        self.stages = layout(len(self.a), len(self.b))
        self.product_step, self.sum_step = ProductStep(), SumStep()

    def _start(self, index: int, results: tuple[Number, ...] | list[Number]) -> ProductState | SumState:
        stage = self.stages[index]
        if stage.inputs is None:
            return product_start(self.a, self._digit_of(stage), stage.digit)  # type: ignore[arg-type]
        return sum_start(results[stage.inputs[0]], results[stage.inputs[1]])

    def _digit_of(self, stage: Stage) -> int:
        """The digit of b that a partial-product stage multiplies by."""
        return int(self.b[len(self.b) - 1 - stage.digit])  # type: ignore[operator]

    def _inner(self, state: MultiplyState) -> tuple[Task, Any]:
        """The microstep task and state of the chain in progress (a depth-0 run does every stage
        in one chain; a plan's chains run ``ProductStep`` and ``SumStep`` themselves)."""
        inner = state.current
        return (self.product_step if isinstance(inner, ProductState) else self.sum_step), inner

    # --- the Task protocol --------------------------------------------------------------------
    def initial_state(self) -> MultiplyState:
        return MultiplyState((), self._start(0, ()))

    def prompt(self, state: Any) -> str:
        task, inner = self._inner(state)
        return task.prompt(inner)

    kind_names = ("product", "sum")

    def kind(self, state: Any) -> str:
        task, inner = self._inner(state)
        return task.kind(inner)

    def parse(self, state: Any, reply: str) -> Candidate:
        return parse_reply(reply)

    def check(self, state: Any, candidate: Candidate) -> None:
        task, inner = self._inner(state)
        task.check(inner, candidate)

    def apply(self, state: MultiplyState, candidate: Candidate) -> MultiplyState:
        task, inner = self._inner(state)
        inner = task.apply(inner, candidate)
        if not task.is_done(inner):
            return MultiplyState(state.results, inner)
        results = state.results + (number_of(inner),)
        following = self._start(len(results), results) if len(results) < len(self.stages) else None
        return MultiplyState(results, following)

    def is_done(self, state: MultiplyState) -> bool:
        return state.current is None and len(state.results) == len(self.stages)

    def oracle(self, state: Any) -> Candidate:
        task, inner = self._inner(state)
        return task.oracle(inner)

    def answer(self, state: MultiplyState) -> dict[str, Any]:
        """The factors and the product (None while unfinished), as decimal strings: JSON readers lose big ints."""
        done = state.current is None and bool(state.results)
        return {"a": self.a, "b": self.b, "product": str(product_of(state)) if done else None}

    def run_defaults(self) -> dict[str, object]:
        return dict(DIGIT_STEP_DEFAULTS)

    def training_states(self, rng: random.Random, count: int) -> list[MultiplyState]:
        """Digit steps of both kinds, half each: a product step shows only (digit, factor digit,
        carry 0-8), a sum step only (digit, digit, carry 0-1). That is 1,100 prompts in all, so a
        microagent trained on these has seen every state a run can show it (its card says so)."""
        states = []
        for _ in range(count):
            if rng.random() < 0.5:
                inner: ProductState | SumState = ProductState(str(rng.randrange(10)), rng.randrange(10), rng.randrange(9), "", 0)
            else:
                inner = SumState(str(rng.randrange(10)), str(rng.randrange(10)), rng.randrange(2), "", 0)
            states.append(MultiplyState((), inner))
        return states

    def total_steps(self) -> int:
        return sum(stage.steps for stage in self.stages)

    def format_reply(self, state: Any, candidate: Candidate) -> str:
        return format_reply(candidate)

    def plausible_mistake(self, state: Any, candidate: Candidate, rng: random.Random) -> Candidate:
        task, inner = self._inner(state)
        return task.plausible_mistake(inner, candidate, rng)

    def plan(self, depth: int) -> Plan:
        """Partial products as independent chains, then the tree of sums (the same at every
        depth >= 1: a digit step cannot be split further). Each chain checks its end: all its
        positions done, and a final carry the split allows (a x d < d x 10^len(a), so a partial
        product's top carry is below d; a sum's is 0 or 1)."""
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        plan = Plan()
        names = [stage.name for stage in self.stages]
        for index, stage in enumerate(self.stages):
            if stage.inputs is None:
                top = max(self._digit_of(stage) - 1, 0)
                plan.add(Subtask(
                    stage.name, start=self._start(index, ()), steps=stage.steps, task=self.product_step,
                    expect=lambda st, top=top: len(st.out) == len(st.a) and 0 <= st.carry <= top,
                ))
            else:
                left, right = (names[i] for i in stage.inputs)
                plan.add(Subtask(
                    stage.name, start_from=lambda r, left=left, right=right: sum_start(number_of(r[left]), number_of(r[right])),
                    after=(left, right), steps=stage.steps, task=self.sum_step,
                    expect=lambda st: len(st.out) == len(st.x) and st.carry in (0, 1),
                ))
        plan.finish = lambda r: MultiplyState(tuple(number_of(r[name]) for name in names), None)
        return plan
