"""Where families can get help, shown on the family pages and in the digest: the school's
named safeguarding contact (``reports.safeguarding_contact``) and the national helplines
of the school's country, with what the law obliges the school to do with a worry.

The country is that of the school's language (``reports.language``: ``en`` for the UK,
``pt-BR`` for Brazil), not the reader's: a Portuguese-reading family at a school in
England needs Childline, not CVV. The words are translated into the reader's language as
usual. Each helpline's site is in the essential-services catalogue
(blocklists/essential.yaml, kind ``helplines``), so no category list can block it.
"""

from __future__ import annotations

from dataclasses import dataclass

from filterdns.config.model import Config, SafeguardingContact
from filterdns.i18n import N_


@dataclass(frozen=True, slots=True)
class Helpline:
    name: str  # a proper name, shown as it is
    phone: str  # "" when there is no national number
    about: str  # message id: who it is for and when it answers
    url: str


@dataclass(frozen=True, slots=True)
class CountryHelp:
    helplines: tuple[Helpline, ...]
    role: str  # message id: the usual title of the school's contact, when none is configured
    duty: str  # message id: the school's legal duty to pass a worry on, so nothing is promised secret
    illegal: str  # message id: the block page's standard text for illegal content (a locked category)
    hotlines: tuple[Helpline, ...]  # where anyone reports illegal content seen online


COUNTRY_HELP: dict[str, CountryHelp] = {
    "en": CountryHelp(
        helplines=(
            Helpline("Childline", "0800 1111", N_("For children and young people: free, day and night, by phone or online chat."), "https://www.childline.org.uk/"),
            Helpline("Samaritans", "116 123", N_("For anyone who is struggling, parents too: free, day and night."), "https://www.samaritans.org/"),
        ),
        role=N_("Designated safeguarding lead"),
        duty=N_("If a child may be at risk of harm, the school must pass the worry on to children's social care or the police, so it cannot promise to keep what you tell it secret."),
        illegal=N_("Access to this site has been blocked because it may contain material that is illegal in the UK, such as child sexual abuse images or terrorist content. This block cannot be lifted by anyone at the school."),
        hotlines=(
            Helpline("Internet Watch Foundation", "", N_("Report sexual images or videos of children."), "https://report.iwf.org.uk/"),
            Helpline("GOV.UK", "", N_("Report terrorist content online."), "https://www.gov.uk/report-terrorism"),
        ),
    ),
    "pt-BR": CountryHelp(
        helplines=(
            Helpline("CVV – Centro de Valorização da Vida", "188", N_("Emotional support and suicide prevention, for anyone: free, day and night, by phone or chat."), "https://cvv.org.br/"),
            Helpline("Disque 100", "100", N_("Reports of violence against children and adolescents: free, day and night, and anonymous if you wish."), "https://www.gov.br/mdh/pt-br/disque100"),
            Helpline("Conselho Tutelar", "", N_("Every town has one, to protect the rights of children and adolescents; the school or the town hall gives its address and telephone."), "https://www.gov.br/mdh/pt-br/navegue-por-temas/crianca-e-adolescente"),
        ),
        role=N_("Pedagogical coordination or educational guidance"),
        duty=N_("When a child or adolescent may be at risk, the law (ECA, articles 13 and 245) obliges the school to tell the Conselho Tutelar, so it cannot promise to keep what you tell it secret."),
        illegal=N_("Access to this site has been blocked because it may contain material that is illegal in Brazil, such as images of sexual abuse of children and adolescents or terrorist content. This block cannot be lifted by anyone at the school."),
        hotlines=(
            Helpline("SaferNet Brasil", "", N_("Report crimes against human rights online, such as images of sexual abuse of children and adolescents; anonymous."), "https://new.safernet.org.br/denuncie"),
        ),
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SchoolHelp:
    """What a help panel shows: the school's contact and its country's help."""

    contact: SafeguardingContact
    country: CountryHelp

    @classmethod
    def of(cls, config: Config) -> SchoolHelp:
        reports = config.node.reports
        return cls(reports.safeguarding_contact, COUNTRY_HELP[reports.language])

    @property
    def role(self) -> str:
        """The contact's role: the school's words, else its country's usual title (a message id)."""
        return self.contact.role or self.country.role
