"""What families are told about the data the filter keeps, in sentences built from the
configuration, so that the words can never promise more than the school does: staff can
search the per-device log for ``store.raw_events_days`` days, class counts are kept for
``store.aggregates_days``, alert rules tell named staff about single devices, and a figure
is masked below ``reports.mask_below`` devices.

The report page, the digest (text and HTML) and the family home page all show these
sentences; each is a gettext message id (``N_``) translated per reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from filterdns.config.model import Config
from filterdns.i18n import N_, Translator
from filterdns.reports.guidance import category_guidance

WHOLE_CLASS = N_("The reports count each class as a whole: they name no site, no child and no device.")
STAFF_LOG = N_(
    "School staff can see more than this: for %(days)s days they can search the filter's log, which lists each "
    "lookup with the site's name, the time and the device or pupil that made it."
)
ALERTS = N_(
    "Named school staff are alerted when one device repeatedly looks up sites in these categories, so that they "
    "can check that the pupil is safe: %(categories)s."
)
MASKED = N_(
    "A figure is shown only when at least %(n)s different devices make it up; otherwise it reads “fewer than "
    "%(n)s”, to reduce the risk of identifying a pupil. “None” means there were none."
)
COUNTS_KEPT = N_("The weekly class counts are kept for %(days)s days, then deleted.")


@dataclass(frozen=True, slots=True)
class PrivacyFacts:
    """The settings behind the privacy sentences."""

    log_days: int  # the per-lookup log staff can search (store.raw_events_days)
    counts_days: int  # the hourly class counts behind reports (store.aggregates_days)
    mask_below: int
    alert_categories: tuple[str, ...]  # category names alert rules watch ("bypass" for bypass rules)

    @classmethod
    def of(cls, config: Config) -> PrivacyFacts:
        watched: list[str] = []
        for rule in config.policy.alert_rules:
            watched += [*rule.categories, *(("bypass",) if rule.bypass else ())]
        return cls(
            log_days=config.node.store.raw_events_days,
            counts_days=config.node.store.aggregates_days,
            mask_below=config.node.reports.mask_below,
            alert_categories=tuple(dict.fromkeys(watched)),
        )

    def sentences(self, translator: Translator) -> tuple[str, ...]:
        """The sentences, in the reader's language, in the order they are read."""
        said = [
            translator.gettext(WHOLE_CLASS),
            translator.gettext(STAFF_LOG) % {"days": translator.number(self.log_days)},
        ]
        if self.alert_categories:
            titles = ", ".join(translator.gettext(category_guidance(name).title) for name in self.alert_categories)
            said.append(translator.gettext(ALERTS) % {"categories": titles})
        said += [
            translator.gettext(MASKED) % {"n": self.mask_below},
            translator.gettext(COUNTS_KEPT) % {"days": translator.number(self.counts_days)},
        ]
        return tuple(said)
