"""The words families read: category names, practical tips per category, and the names
and meanings of the periods of the school day.

Every text here is an English gettext message id, marked with ``N_`` so it is listed in
the catalogues (filterdns/locale/*/LC_MESSAGES/filterdns.po) and translated when a page is
rendered, in the reader's language. Categories the catalogue does not know (a school's own)
get their configured description and the general tip.
"""

from __future__ import annotations

from dataclasses import dataclass

from filterdns.i18n import N_
from filterdns.reports.periods import Period


# Blocks that matched no category: the school's own deny lists (and one-off blocks).
INDIVIDUAL_SITES = ""


@dataclass(frozen=True, slots=True)
class CategoryGuidance:
    title: str
    tips: tuple[str, ...]


GENERAL_TIP = N_("Ask your child which sites and apps they use, and agree together on what is fine at home.")
UNDESCRIBED = N_("Sites the school has chosen to block for this class.")

CATEGORIES: dict[str, CategoryGuidance] = {
    "adult": CategoryGuidance(N_("Adult content"), (
        N_("Turn on the parental controls of your home broadband and of your child's phone: most providers offer a free filter for adult content."),
        N_("Tell your child calmly what to do if they see something upsetting: close it and tell an adult they trust. Telling you will never get them into trouble."),
    )),
    "gambling": CategoryGuidance(N_("Gambling"), (
        N_("Check your child's phone and game accounts for in-app purchases, loot boxes and betting-style features, and ask for a password before any purchase."),
        N_("Explain that gambling adverts are designed to make winning look easy."),
    )),
    "social": CategoryGuidance(N_("Social networks"), (
        N_("Most social networks are for ages 13 and over. If your child uses them, go through the privacy settings together: a private account, and messages from friends only."),
        N_("Agree on phone-free times at home, such as meals and the hour before bed."),
    )),
    "games": CategoryGuidance(N_("Online games"), (
        N_("Check the age rating of the games your child plays, and turn on the parental controls for chat and spending."),
        N_("Play together now and then: it is the easiest way to see who they talk to."),
    )),
    "chat": CategoryGuidance(N_("Chat and messaging"), (
        N_("Make sure your child knows never to share personal details or photos with people they only know online."),
        N_("Show them how to block and report someone, and remind them they can always tell you."),
    )),
    "dating": CategoryGuidance(N_("Dating"), (
        N_("Dating apps are for adults. Set your child's app store to ask for your approval before new apps are installed."),
    )),
    "drugs": CategoryGuidance(N_("Drugs and vaping"), (
        N_("Talk openly about drugs and vaping: honest information helps children make safe choices."),
        N_("If you are worried, the school or your family doctor can point you to help."),
    )),
    "violence": CategoryGuidance(N_("Violent content"), (
        N_("If your child has seen violent or disturbing videos, let them talk about it and reassure them; contact the school if it keeps upsetting them."),
        N_("Turn off autoplay in video apps, so that one clip does not lead to the next."),
    )),
    "weapons": CategoryGuidance(N_("Weapons"), (
        N_("Ask your child what they have seen and why they were curious: films, games and the news often start such searches."),
        N_("If you are worried about anyone's safety, contact the school straight away: whom to call is under “Where to get help”."),
    )),
    "self-harm": CategoryGuidance(N_("Self-harm and suicide"), (
        N_("If you are worried about your child, talk to them gently, and contact the school (see “Where to get help”) or your family doctor."),
        N_("Free helplines answer day and night: their numbers are under “Where to get help”."),
    )),
    "hate": CategoryGuidance(N_("Hate and extremism"), (
        N_("Talk about what your child sees online and who is behind it; ask how they would check whether something is true."),
        N_("If you are worried that your child is being drawn into extremist ideas, ask the school for advice."),
    )),
    "malware": CategoryGuidance(N_("Viruses and malware"), (
        N_("Keep phones, tablets and computers up to date, and install apps only from the official app stores."),
    )),
    "phishing": CategoryGuidance(N_("Phishing and scams"), (
        N_("Teach your child to distrust messages that ask for a password or promise a prize, and to check with you before typing in any details."),
        N_("Turn on two-step verification for their important accounts."),
    )),
    "bypass": CategoryGuidance(N_("Filter bypass tools"), (
        N_("VPNs and proxies are often used to get round filters. If your child uses one, ask what they are trying to reach."),
        N_("Your broadband's parental controls work best when devices cannot change their own settings: ask your provider how to lock them."),
    )),
    "piracy": CategoryGuidance(N_("Piracy"), (
        N_("Illegal download and streaming sites often carry malware and adult adverts; show your child legal options such as the library and free streaming services."),
    )),
    "ai-chat": CategoryGuidance(N_("AI chatbots"), (
        N_("Most AI chatbots are for ages 13 and over. If your child uses one, talk about what it is good at and what it gets wrong."),
        N_("Remind them not to share personal details or photos with a chatbot, and that homework must still be their own work."),
    )),
    INDIVIDUAL_SITES: CategoryGuidance(N_("Individual sites blocked by the school"), (GENERAL_TIP,)),
}

INDIVIDUAL_SITES_DESCRIPTION = N_("Sites the school has blocked one by one, outside the categories above.")


def category_guidance(category: str) -> CategoryGuidance:
    """The title and tips for ``category``; its own name and the general tip if unknown."""
    return CATEGORIES.get(category) or CategoryGuidance(category, (GENERAL_TIP,))


@dataclass(frozen=True, slots=True)
class PeriodText:
    label: str
    meaning: str


PERIODS: dict[Period, PeriodText] = {
    Period.BEFORE_SCHOOL: PeriodText(N_("Before school"), N_("from 6:00 until the first lesson")),
    Period.LESSONS: PeriodText(N_("Lessons"), N_("during lesson times")),
    Period.BREAK: PeriodText(N_("Breaks"), N_("between the first and the last lesson, outside lessons: breaks and lunch")),
    Period.AFTER_SCHOOL: PeriodText(N_("After school"), N_("from the end of the last lesson until 22:00")),
    Period.LATE_NIGHT: PeriodText(N_("Late night"), N_("from 22:00 to 6:00")),
    Period.NO_SCHOOL: PeriodText(N_("Days without school"), N_("weekends and holidays, from 6:00 to 22:00")),
}

# Names of the example configuration's schedules, so that reports can say "during lunch"
# in the reader's language; other schedule names are shown as configured.
SCHEDULE_NAMES = (N_("lessons"), N_("lunch"), N_("after-school"))
