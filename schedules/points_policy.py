"""Points (积分) renewal policy as data: touch days, contract and social-insurance thresholds.

Loaded from YAML (policies/shanghai_points.yaml) and checked once, like the main policy, so the
checks in schedules.points can trust it. Every threshold keeps its source note, since most come
from the source article only and may need correcting without code changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from schedules.policy import PolicyError, read_packaged_policy, read_policy_file

DEFAULT_POINTS_POLICY = "shanghai_points"

# Points bases (how the holder's points were earned) and every finding code the checks produce.
EDUCATION = "education"
TITLE = "title"
SOCIAL_INSURANCE_MULTIPLE = "social_insurance_multiple"
BASES = (EDUCATION, TITLE, SOCIAL_INSURANCE_MULTIPLE)

LABOR_CONTRACT_UNDER_ONE_YEAR = "labor_contract_under_one_year"
LABOR_CONTRACT_ENDING = "labor_contract_ending"
SOCIAL_INSURANCE_GAP = "social_insurance_gap"
SOCIAL_INSURANCE_LOW_BASE = "social_insurance_low_base"
EMPLOYER_RENAMED = "employer_renamed"
FINDING_CODES = (
    LABOR_CONTRACT_UNDER_ONE_YEAR, LABOR_CONTRACT_ENDING, SOCIAL_INSURANCE_GAP, SOCIAL_INSURANCE_LOW_BASE,
    EMPLOYER_RENAMED,
)

# `min_base_multiple: reference` in YAML: the multiple the holder's points were granted at.
REFERENCE = "reference"


@dataclass(frozen=True)
class ContractRule:
    min_term_months: int  # the contract's term (start to end) is at least this long
    must_exceed_months: int  # and on the renewal day strictly more than this many months are left
    source: str = ""


@dataclass(frozen=True)
class InsuranceRule:
    """Social insurance the points basis needs within the window before renewal."""

    months: int
    # None: any paid month; a number: paid at that multiple or more; REFERENCE: the holder's.
    min_base_multiple: float | str | None
    continuous: bool  # True: `months` consecutive qualifying months; False: any `months`
    source: str = ""


@dataclass(frozen=True)
class PointsPolicy:
    name: str
    title: str
    touches: tuple[int, ...]  # days relative to points_valid_until, ascending, all < 0
    contract: ContractRule
    window_months: int
    default_reference_multiple: float
    bases: dict[str, InsuranceRule]
    holder_can_act: frozenset[str]  # finding codes the holder can act on (others: HR only)
    sources: dict[str, str]  # finding code -> source note

    def __hash__(self) -> int:  # dict fields: hash by name, policies are loaded once
        return hash(self.name)


def _insurance_rule(basis: str, raw: dict[str, Any]) -> InsuranceRule:
    minimum = raw.get("min_base_multiple")
    if minimum is not None and minimum != REFERENCE:
        minimum = float(minimum)
    rule = InsuranceRule(int(raw["months"]), minimum, bool(raw.get("continuous", False)), str(raw.get("source", "")))
    if rule.months < 1:
        raise PolicyError(f"points basis {basis}: months must be 1 or more")
    return rule


def points_policy_from_mapping(raw: dict[str, Any]) -> PointsPolicy:
    try:
        contract, insurance, findings = raw["labor_contract"], raw["social_insurance"], raw["findings"]
        policy = PointsPolicy(
            name=str(raw["name"]),
            title=str(raw.get("title", raw["name"])),
            touches=tuple(sorted(int(t) for t in raw["touches"])),
            contract=ContractRule(
                int(contract["min_term_months"]), int(contract["must_exceed_months"]),
                str(contract.get("source", "")),
            ),
            window_months=int(insurance["window_months"]),
            default_reference_multiple=float(insurance["default_reference_multiple"]),
            bases={b: _insurance_rule(b, r) for b, r in insurance["bases"].items()},
            holder_can_act=frozenset(c for c, f in findings.items() if f.get("holder_can_act")),
            sources={str(c): str(f.get("source", "")) for c, f in findings.items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise PolicyError(f"points policy is missing or has a malformed field: {exc}") from exc
    _validate(policy)
    return policy


def _validate(policy: PointsPolicy) -> None:
    if not policy.touches or any(t >= 0 for t in policy.touches):
        raise PolicyError("points touches must be days before points_valid_until (negative)")
    if set(policy.bases) != set(BASES):
        raise PolicyError(f"points bases must be exactly {', '.join(BASES)}")
    if set(policy.sources) != set(FINDING_CODES):
        raise PolicyError(f"points findings must list exactly {', '.join(FINDING_CODES)}")
    for basis, rule in policy.bases.items():
        if rule.months > policy.window_months:
            raise PolicyError(f"points basis {basis} needs more months than the window holds")
    if policy.contract.min_term_months < 1 or policy.contract.must_exceed_months < 0:
        raise PolicyError("labor_contract months must be positive")


def load_points_policy(path: str | Path | None = None) -> PointsPolicy:
    """Load a points policy file; with no path, the packaged Shanghai points policy."""
    if path is None:
        return default_points_policy()
    return points_policy_from_mapping(read_policy_file(path, "points policy"))


@lru_cache(maxsize=1)
def default_points_policy() -> PointsPolicy:
    return points_policy_from_mapping(read_packaged_policy(DEFAULT_POINTS_POLICY))
