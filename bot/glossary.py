"""Plain-language meanings of every statistic valuemetric prints, in one place.

Templates gloss a term the first time it appears in a message (the ``gloss`` filter in
:mod:`bot.render`); ``/valuemetric help TERM`` prints the full entry.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    name: str
    short: str  # a few words, printed beside the number the first time
    long: str  # what `help TERM` prints
    aliases: tuple[str, ...] = ()


TERMS: tuple[Term, ...] = (
    Term("rho", "rank correlation: 1 = rise together, 0 = unrelated",
         "Spearman's rho, a rank correlation from -1 to 1. 0.4 means accounts that use more "
         "tend to pay more, though with many exceptions; 0 means no relation.",
         ("\u03c1", "spearman", "correlation")),
    Term("partial", "the same with account age held fixed",
         "Partial rho: the rank correlation left after taking account age (tenure) out. Old "
         "accounts both use more and pay more; if the correlation vanishes here, usage only "
         "tracks age, not value.", ("partial rho", "tenure fixed", "tenure")),
    Term("AUC", "0.5 = no signal, 1 = usage tells perfectly",
         "Area under the ROC curve. AUC 0.72 for retention: an account that stayed has a 72% "
         "chance of having used more than one that left. 0.5 = no signal, 1 = perfect.",
         ("roc",)),
    Term("q", "chance of a fluke, corrected for many tests; < 0.05 = real",
         "The Benjamini-Hochberg adjusted p-value. With many metrics some look good by luck; "
         "q below 0.05 keeps the share of false findings under 5%.",
         ("p", "p-value", "fdr", "benjamini-hochberg", "bh")),
    Term("CI", "the range the true value likely lies in",
         "95% confidence interval: with the same kind of data again, 95 of 100 such intervals "
         "would contain the true value. Wide intervals mean few accounts.",
         ("interval", "confidence interval", "95% ci")),
    Term("J", "how well the cutoff separates, 0 to 1",
         "Youden's J = sensitivity + specificity - 1. The threshold is the level with the "
         "highest J: 0 = separates nothing, 1 = perfectly.", ("youden", "youden's j")),
    Term("PPV", "share above the cutoff with the outcome",
         "Positive predictive value: of the accounts at or above the threshold, the share "
         "that retained (or expanded).", ("precision",)),
    Term("NPV", "share below the cutoff without it",
         "Negative predictive value: of the accounts below the threshold, the share that did "
         "not retain (or expand)."),
    Term("sensitivity", "share with the outcome above the cutoff",
         "Of the accounts that retained (or expanded), the share at or above the threshold.",
         ("recall",)),
    Term("specificity", "share without the outcome below the cutoff",
         "Of the accounts that did not retain (or expand), the share below the threshold."),
    Term("lift", "times as often above the cutoff as below",
         "Rate above the threshold divided by the rate below it. Lift 2 = twice as often."),
    Term("hazard ratio", "churn risk per doubling of usage; < 1 = churn less",
         "Cox hazard ratio per doubling of usage: 0.7 means an account using twice as much "
         "churns at 70% of the rate, at any age. 1 = no difference.", ("hr", "cox")),
    Term("concordance", "0.5 = chance, 1 = orders churn perfectly",
         "Harrell's concordance index: for two accounts, the chance the one predicted to "
         "churn sooner really did. 0.5 = chance, 1 = perfect.", ("c-index", "c index")),
    Term("aligned", "value rises with usage: a candidate to price on",
         "A metric is aligned when retention, expansion or ARR rises with its usage across "
         "usage bands (significantly, after correction) and none falls.", ("alignment",)),
    Term("activation", "early usage at which accounts tend to stay",
         "The activation threshold: the usage in the first weeks that best separates accounts "
         "that stayed from those that left."),
    Term("expansion", "paying more than six months earlier",
         "An account expanded when its MRR is higher than six months before.",
         ("expansion rate",)),
    Term("base rate", "how often accounts below it expanded",
         "For alerts: the share of accounts below the threshold that still expanded within "
         "90 days. An alert is worth acting on when its hit rate is well above this."),
    Term("hit rate", "share of past alerts followed by expansion",
         "For alerts: replaying the rule over past weeks, the share of its crossings that "
         "were followed by an MRR increase within 90 days.", ("backtest",)),
    Term("ARR", "annual recurring revenue: 12 x the monthly revenue",
         "Annual recurring revenue, 12 x MRR at the as-of date.", ("mrr", "revenue")),
)


def _key(text: str) -> str:
    return " ".join(text.lower().split())


INDEX: dict[str, Term] = {}
for _term in TERMS:
    for _name in (_term.name, *_term.aliases):
        INDEX[_key(_name)] = _term


def lookup(text: str) -> Term | None:
    return INDEX.get(_key(text))


def near(text: str) -> list[str]:
    """Terms spelled like ``text``, for "did you mean"."""
    found = difflib.get_close_matches(_key(text), list(INDEX), n=3, cutoff=0.5)
    return sorted({INDEX[f].name for f in found})
