"""Robustness: randomized smoothing of any policy, observation attacks and certificates."""

from smoothrl.robust.attacks import ATTACKS, Attack, AttackedPolicy, perturb, project
from smoothrl.robust.certify import certified_radius, certify_continuous, certify_discrete, clopper_pearson
from smoothrl.robust.smoothing import SMOOTHING_MODES, SmoothedPolicy
from smoothrl.robust.views import PolicyView

__all__ = [
    "ATTACKS",
    "SMOOTHING_MODES",
    "Attack",
    "AttackedPolicy",
    "PolicyView",
    "SmoothedPolicy",
    "certified_radius",
    "certify_continuous",
    "certify_discrete",
    "clopper_pearson",
    "perturb",
    "project",
]
