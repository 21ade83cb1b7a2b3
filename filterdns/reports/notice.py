"""The privacy notice families read (``/family/privacy``): who answers for the data (the
config's ``reports.data_protection``), what is recorded and why, children's data, the
reader's rights and the regulator, and what the filter does not cover, under the law of
the school's country (``reports.language``, as for the helplines in ``help``): the UK
GDPR for ``en``, the LGPD for ``pt-BR``. How long things are kept comes from
``privacy.PrivacyFacts``, so the notice and the reports say the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from filterdns.i18n import N_
from filterdns.reports.help import Helpline

PURPOSE = N_(
    "The filter records each lookup made on the school's network: the site's name, the time, the device's "
    "address and, when a device uses the school's encrypted DNS, the pupil. The school uses this to keep pupils "
    "away from harmful sites, to let staff check why a site was blocked, and to alert staff when a pupil may be "
    "at risk."
)
NOT_COVERED = N_(
    "The filter only sees lookups made through the school's network, or by devices set up to use the school's "
    "encrypted DNS. It does not cover mobile data (4G or 5G) or home and public Wi-Fi, unless the device uses "
    "the school's encrypted DNS there, and it never sees what is typed or shown inside a site or app it allows."
)


@dataclass(frozen=True, slots=True)
class CountryLaw:
    law: str  # message id naming the law
    officer: str  # message id: the data protection officer's title
    children: str  # message id: what the law says of children's data
    rights: tuple[str, ...]  # message ids, one right each
    regulator: Helpline


COUNTRY_LAW: dict[str, CountryLaw] = {
    "en": CountryLaw(
        law=N_("the UK GDPR and the Data Protection Act 2018"),
        officer=N_("Data protection officer"),
        children=N_("Children's personal data merits specific protection (UK GDPR, recital 38). The school processes pupils' lookups to keep them safe at school (its safeguarding duty under Keeping Children Safe in Education) and keeps no more than it needs."),
        rights=(
            N_("to be told what data the school holds about you or your child, and to get a copy (article 15);"),
            N_("to have wrong data corrected (article 16) and, where the school has no reason to keep it, deleted (article 17);"),
            N_("to ask the school to restrict or to stop using it (articles 18 and 21);"),
            N_("to complain to the regulator."),
        ),
        regulator=Helpline("Information Commissioner's Office (ICO)", "0303 123 1113", N_("The UK's data protection regulator."), "https://ico.org.uk/make-a-complaint/"),
    ),
    "pt-BR": CountryLaw(
        law=N_("the LGPD (Lei Geral de Proteção de Dados, Law 13,709 of 2018)"),
        officer=N_("Data protection officer (encarregado)"),
        children=N_("Data of children and adolescents must be processed in their best interest (LGPD, article 14). The school processes pupils' lookups to protect them at school, as the Estatuto da Criança e do Adolescente asks, and keeps no more than it needs."),
        rights=(
            N_("to confirm whether the school processes your or your child's data, and to access it (LGPD, article 18, I and II);"),
            N_("to have incomplete, inaccurate or out-of-date data corrected (article 18, III);"),
            N_("to have unnecessary or excessive data anonymised, blocked or deleted (article 18, IV and VI);"),
            N_("to know with whom the school shares the data (article 18, VII);"),
            N_("to complain to the national authority (article 18, § 1)."),
        ),
        regulator=Helpline("ANPD – Autoridade Nacional de Proteção de Dados", "", N_("Brazil's data protection authority."), "https://www.gov.br/anpd/"),
    ),
}  # fmt: skip
