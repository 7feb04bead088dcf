"""Inspection plans (双随机): a weighted random draw of enterprises and inspectors that anyone can re-run.

The regulator commits to a secret seed (its SHA-256, in `inspection.plan`) together with everything
the draw depends on: the population — the enterprises registered before entry `basis`, within the
plan's scope, each with its risk class under the model named — fixed by the SHA-256 of its canonical
list, the weight of each class, the count, the inspectors. Only then does it reveal the seed
(`inspection.draw`), with the selection. Every replica refuses a reveal that does not hash to the
commitment, a draw before its plan and a second draw; `verify` recomputes the population from the
ledger and the selection from the seed, and names the first difference.

The algorithm (Efraimidis & Spirakis, "Weighted random sampling with a reservoir", IPL 97(5), 2006):
each enterprise i of weight w_i > 0 gets u_i uniform in (0, 1) and the key ln(u_i) / w_i (the log of
u_i^(1/w_i)); the `count` largest keys are the sample, without replacement, in that order (ties by
DID). u_i comes from the seed alone: m = SHA-256("qdsn/inspection-draw/v1" ‖ seed ‖ plan txid), and
u_i = (the first 53 bits of SHA-256(m ‖ RFC 8785 ["enterprise", DID]) + ½) / 2^53, so the draw does
not depend on the order the population is listed in. Each selected enterprise gets the
`per_inspection` inspectors with the largest u of ["inspector", DID, inspector id]: uniform, without
replacement. Written here because no maintained library draws a weighted sample from a given,
publishable hash stream; numpy's generators are seeded but their algorithms are not a specification.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from qdsn.crypto import canonical_json, sha256
from qdsn.errors import Conflict, IntegrityError, InvalidInput, NotFound, PermissionDenied
from qdsn.ledger import tx
from qdsn.ledger.integrity import Damaged, Incomplete, Outcome, Verdict, judge
from qdsn.supervision import evidence, risk

DOMAIN = b"qdsn/inspection-draw/v1"
DEFAULT_WEIGHTS = {"A": 1, "B": 2, "C": 4, "D": 8}  # each class twice as likely to be drawn as the one below


@dataclass(frozen=True)
class Draw:
    """A draw's outcome: the enterprises selected, in draw order, and the inspectors sent to each."""

    selection: tuple[str, ...]
    teams: tuple[tuple[str, ...], ...]


def new_seed() -> str:
    """32 random bytes, hex: the secret the plan commits to."""
    return os.urandom(32).hex()


def commitment(seed: str) -> str:
    """SHA-256 of the seed's bytes, hex: what `inspection.plan` records before the draw."""
    return sha256(_seed_bytes(seed)).hex()


def _seed_bytes(seed: str) -> bytes:
    if not isinstance(seed, str) or len(seed) != 64:
        raise InvalidInput("a seed is 32 bytes as 64 hex digits")
    try:
        return bytes.fromhex(seed)
    except ValueError:
        raise InvalidInput("a seed is 32 bytes as 64 hex digits") from None


def population(classes: Mapping[str, str]) -> list[list[str]]:
    """The population as committed: [[DID, class], …] sorted by DID."""
    return [[did, classes[did]] for did in sorted(classes)]


def population_hash(pop: Sequence[Sequence[str]]) -> str:
    """SHA-256 of the population's RFC 8785 form, hex."""
    return sha256(canonical_json([list(p) for p in pop])).hex()


def _uniform(material: bytes, *parts: str) -> float:
    """A uniform number in (0, 1) from the seed's material and a label: 53 bits of SHA-256."""
    h = sha256(material + canonical_json(list(parts)))
    return ((int.from_bytes(h[:8], "big") >> 11) + 0.5) / 2**53


def draw(seed: str, plan_txid: str, pop: Sequence[Sequence[str]], weights: Mapping[str, int], count: int,
         inspectors: Sequence[str] = (), per_inspection: int = 0) -> Draw:  # fmt: skip
    """Draw `count` enterprises of `pop` weighted by class, and `per_inspection` inspectors for each
    (the algorithm is in the module's docstring). Pure: the same inputs give the same draw anywhere."""
    if not isinstance(plan_txid, str) or len(plan_txid) != 64 or plan_txid.strip("0123456789abcdef"):
        raise InvalidInput("the plan's transaction id is 64 lowercase hex digits")
    if not isinstance(count, int) or count < 1:
        raise InvalidInput(f"draw at least one enterprise, not {count!r}")
    if any(not isinstance(w, int) or isinstance(w, bool) or w < 0 for w in weights.values()):
        raise InvalidInput("a class weight is an integer ≥ 0", "e.g. A=1, B=2, C=4, D=8")
    if len({did for did, _ in pop}) != len(pop):
        raise InvalidInput("the population names an enterprise twice")
    material = sha256(DOMAIN + _seed_bytes(seed) + bytes.fromhex(plan_txid))
    keys = []
    for did, cls in pop:
        if cls not in weights:
            raise InvalidInput(f"{did} has class {cls!r}, which the plan gives no weight")
        if weights[cls] > 0:
            keys.append((math.log(_uniform(material, "enterprise", did)) / weights[cls], did))
    if count > len(keys):
        raise InvalidInput(f"cannot draw {count} enterprises: only {len(keys)} of the population have a weight above 0",
                           "draw fewer, or give every class a weight")  # fmt: skip
    if per_inspection > len(inspectors):
        raise InvalidInput(f"{per_inspection} inspectors per inspection, but only {len(inspectors)} are named")
    keys.sort(key=lambda k: (-k[0], k[1]))
    selection = tuple(did for _, did in keys[:count])
    teams = tuple(
        tuple(sorted(inspectors, key=lambda i: (-_uniform(material, "inspector", did, i), i))[:per_inspection])
        for did in selection
    ) if per_inspection else ()  # fmt: skip
    return Draw(selection, teams)


# -- plans on the ledger ------------------------------------------------------------------------------------


def classes_at(ledger: Any, basis: int, as_of: date, scope: Mapping[str, str]) -> dict[str, risk.Assessment]:
    """Each enterprise of the scope, registered before entry `basis`, assessed on the evidence before it."""
    return risk.assess_all(evidence.read(ledger, as_of, upto=basis, scope=scope), as_of)


def plan_payload(ledger: Any, plan: str, title: str, seed: str, *, as_of: date, count: int,
                 scope: Mapping[str, str] | None = None, weights: Mapping[str, int] | None = None,
                 inspectors: Sequence[str] = (), per_inspection: int = 0) -> dict[str, Any]:  # fmt: skip
    """The `inspection.plan` payload for the ledger as it stands: its population assessed now, committed."""
    if plan in ledger.state.plans:
        raise Conflict(f"inspection plan {plan!r} already exists", "give the new plan its own id")
    scope = {k: v for k, v in (scope or {}).items() if v}
    weights = dict(weights or DEFAULT_WEIGHTS)
    assessed = classes_at(ledger, ledger.size, as_of, scope)
    if not assessed:
        where = f" within {scope}" if scope else ""
        raise NotFound(f"no enterprise is registered on this ledger{where}", "admit members first (qdsn member add)")
    pop = population({d: a.risk_class for d, a in assessed.items()})
    weighted = sum(1 for _, c in pop if weights.get(c, 0) > 0)
    if count > weighted:
        raise InvalidInput(f"cannot draw {count} enterprises: the plan's population has {weighted} with a weight "
                           "above 0", "draw fewer, or widen the scope")  # fmt: skip
    payload = {"plan": plan, "title": title, "commitment": commitment(seed), "model": risk.MODEL,
               "basis": ledger.size, "as_of": as_of.isoformat(), "scope": scope, "population": len(pop),
               "population_hash": population_hash(pop), "weights": weights, "count": count,
               "inspectors": list(inspectors), "per_inspection": per_inspection}  # fmt: skip
    tx.check_payload("inspection.plan", payload)
    return payload


def planned(ledger: Any, plan: str) -> tuple[dict[str, Any], str]:
    """A plan's `inspection.plan` payload and transaction id, from the ledger."""
    p = ledger.state.plans.get(plan)
    if p is None:
        raise NotFound(f"no inspection plan {plan!r} on this ledger", "see the plans: qdsn supervise plan list")
    row = ledger.store.entry(p.planned)
    return tx.from_leaf(row.leaf).payload, row.txid


def recompute(ledger: Any, plan: str, seed: str) -> tuple[Draw, list[list[str]]]:
    """The draw a plan gives with `seed`, from its population recomputed on this ledger; refused when the
    seed is not the committed one or the population is not the committed one."""
    spec, txid = planned(ledger, plan)
    if commitment(seed) != spec["commitment"]:
        raise IntegrityError(f"the seed does not match the commitment of plan {plan}",
                             "reveal the seed whose SHA-256 the plan committed to")  # fmt: skip
    if spec["model"] != risk.MODEL:
        raise Incomplete(f"plan {plan} classes its population with {spec['model']}; this node computes {risk.MODEL}",
                         "verify it with a QDSN of that risk model")  # fmt: skip
    assessed = classes_at(ledger, spec["basis"], date.fromisoformat(spec["as_of"]), spec["scope"])
    pop = population({d: a.risk_class for d, a in assessed.items()})
    if population_hash(pop) != spec["population_hash"]:
        raise Damaged(f"plan {plan}", f"its committed population ({spec['population']} enterprises) is not the one "
                      f"the ledger gives at entry {spec['basis']} ({len(pop)} enterprises, another hash)")  # fmt: skip
    got = draw(seed, txid, pop, spec["weights"], spec["count"], spec["inspectors"], spec["per_inspection"])
    return got, pop


def draw_payload(ledger: Any, plan: str, seed: str) -> dict[str, Any]:
    """The `inspection.draw` payload revealing `seed`: checked against the commitment before it is signed."""
    return reveal(ledger, plan, seed)[0]


def reveal(ledger: Any, plan: str, seed: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The `inspection.draw` payload revealing `seed`, and the class of every enterprise of the population."""
    p = ledger.state.plans.get(plan)
    if p is not None and p.drawn is not None:
        raise Conflict(f"plan {plan} was drawn at entry {p.drawn}; a plan is drawn once",
                       "commit a new plan for another draw")  # fmt: skip
    got, pop = recompute(ledger, plan, seed)
    payload = {"plan": plan, "seed": seed, "selection": list(got.selection),
               "inspectors": [list(t) for t in got.teams]}  # fmt: skip
    return payload, dict(map(tuple, pop))  # type: ignore[arg-type]


def verify(ledger: Any, plan: str) -> Verdict:
    """Re-run a plan's draw from its revealed seed: verified, damaged (the first difference named), or
    incomplete (not yet drawn; a risk model this node does not compute)."""
    if plan not in ledger.state.plans:  # asking about nothing is a mistake of the question, not damage
        raise NotFound(f"no inspection plan {plan!r} on this ledger", "see the plans: qdsn supervise plan list")
    return judge(lambda: _verify(ledger, plan), f"plan {plan}")


def _verify(ledger: Any, plan: str) -> Verdict:
    p = ledger.state.plans[plan]
    if p.drawn is None:
        raise Incomplete(f"plan {plan} was committed at entry {p.planned} and is not drawn yet")
    revealed = tx.from_leaf(ledger.store.entry(p.drawn).leaf).payload
    got, pop = recompute(ledger, plan, revealed["seed"])
    for i, (want, have) in enumerate(zip(got.selection, revealed["selection"], strict=True)):
        if want != have:
            raise Damaged(f"draw of plan {plan} (entry {p.drawn})",
                          f"selection {i + 1} is {have}; the seed draws {want}")  # fmt: skip
    if [list(t) for t in got.teams] != revealed["inspectors"]:
        at = next(i for i, t in enumerate(got.teams) if i >= len(revealed["inspectors"])
                  or list(t) != revealed["inspectors"][i])  # fmt: skip
        raise Damaged(f"draw of plan {plan} (entry {p.drawn})",
                      f"the inspectors of selection {at + 1} are not the ones the seed draws")  # fmt: skip
    basis = planned(ledger, plan)[0]["basis"]
    return Verdict(
        Outcome.VERIFIED,
        f"plan {plan}: the seed matches its commitment (entry {p.planned}), the "
        f"population of {len(pop)} is the ledger's before entry {basis}, and the draw at entry {p.drawn} "
        f"is the one the seed gives ({len(got.selection)} enterprises)",
        checked=len(got.selection),
    )


def plans(ledger: Any) -> list[dict[str, Any]]:
    """Every plan on the ledger, with its draw when drawn, in log order."""
    out = []
    for p in sorted(ledger.state.plans.values(), key=lambda p: p.planned):
        spec = tx.from_leaf(ledger.store.entry(p.planned).leaf).payload
        row = {"plan": p.id, "title": spec["title"], "planned": p.planned, "commitment": p.commitment,
               "population": spec["population"], "count": p.count, "weights": spec["weights"],
               "as_of": spec["as_of"], "scope": spec["scope"], "drawn": p.drawn}  # fmt: skip
        if p.drawn is not None:
            d = tx.from_leaf(ledger.store.entry(p.drawn).leaf).payload
            row |= {"seed": d["seed"], "selection": d["selection"], "inspectors": d["inspectors"]}
        out.append(row)
    return out


class Seeds:
    """The regulator's secret seeds until their draw, one file per commitment (mode 0600, written whole),
    so a plan whose submission failed half-way cannot overwrite the seed of one that is on the log."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def keep(self, plan: str, seed: str) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.folder / f"{commitment(seed)}.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"plan": plan, "seed": seed}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def seed(self, committed: str) -> str:
        """The seed of a commitment; NotFound when this home does not hold it."""
        path = self.folder / f"{committed}.json"
        if not path.exists():
            raise NotFound(f"this node does not hold the seed of commitment {committed[:16]}…",
                           "draw on the regulator's node that created the plan")  # fmt: skip
        seed = str(json.loads(path.read_text())["seed"])
        if commitment(seed) != committed:
            raise IntegrityError(f"the kept seed file {path} does not hash to its commitment")
        return seed


# -- the regulator's node: commit, then reveal -------------------------------------------------------------


def _regulator(node: Any) -> None:
    if node.home.role != "regulator":
        raise PermissionDenied(f"this node is a {node.home.role}: only the regulator plans and draws inspections",
                               "run it on the regulator's node (--home)")  # fmt: skip


def seeds_of(node: Any) -> Seeds:
    """Where a regulator's node keeps its seeds until their draw."""
    return Seeds(node.home.path / "inspection-seeds")


def create_plan(node: Any, plan: str, title: str, *, as_of: date, count: int, scope: Mapping[str, str] | None = None,
                weights: Mapping[str, int] | None = None, inspectors: Sequence[str] = (),
                per_inspection: int = 0) -> tuple[dict[str, Any], list[Any]]:  # fmt: skip
    """Commit a new plan on the log: a fresh seed kept in the home first (so the plan on the log can always
    be drawn), then `inspection.plan`. Returns the payload and the receipts."""
    _regulator(node)
    seed = new_seed()
    payload = plan_payload(node.ledger, plan, title, seed, as_of=as_of, count=count, scope=scope, weights=weights,
                           inspectors=inspectors, per_inspection=per_inspection)  # fmt: skip
    seeds_of(node).keep(plan, seed)
    return payload, node.submit([node.home.sign("inspection.plan", payload)])


def draw_plan(node: Any, plan: str) -> tuple[dict[str, Any], dict[str, str], list[Any]]:
    """Reveal a committed plan's seed with its draw (`inspection.draw`). Returns the payload, the class of
    each enterprise of the population, and the receipts."""
    _regulator(node)
    spec, _ = planned(node.ledger, plan)
    payload, classes = reveal(node.ledger, plan, seeds_of(node).seed(spec["commitment"]))
    return payload, classes, node.submit([node.home.sign("inspection.draw", payload)])


def parse_weights(text: str) -> dict[str, int]:
    """Class weights from `A=1,B=2,C=4,D=8`; every class named once, integers 0–1000."""
    out: dict[str, int] = {}
    for part in text.split(","):
        cls, _, value = part.strip().partition("=")
        cls = cls.strip().upper()
        if cls not in DEFAULT_WEIGHTS or cls in out or not value.strip().isdigit() or int(value) > 1000:
            raise InvalidInput(f"--weights {text!r}: each of A, B, C, D once, as CLASS=INTEGER (0–1000)",
                               "e.g. --weights A=1,B=2,C=4,D=8")  # fmt: skip
        out[cls] = int(value)
    if sorted(out) != sorted(DEFAULT_WEIGHTS):
        raise InvalidInput(f"--weights {text!r} does not weigh every class A, B, C, D",
                           "e.g. --weights A=1,B=2,C=4,D=8")  # fmt: skip
    return out
