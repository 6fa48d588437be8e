"""Feedback text for :mod:`retain.synth`: the phrase bank and its vectorised renderer.

Templates hold ``{slot}`` placeholders filled from :data:`FILLERS`; the first letter of every
rendered sentence is upper-cased, so a template may start with a lower-case slot.
:func:`build_phrase_bank` renders a few hundred variants per category once (slot fillers, the
occasional typo); :func:`render_texts` then composes any number of texts by choosing variant
indices with numpy, so a million texts cost one list comprehension.

- :data:`THEME_CLAUSES` maps ``(theme, sentiment)`` to sentences that *raise* the theme; a text
  built from one carries the theme in its label.
- :data:`DECOYS` maps a theme to positive sentences that use the theme's vocabulary without
  raising it ("support replied within minutes" is not ``slow_support``); they carry no theme.
  ``staff_attitude`` has no decoys: its taxonomy description includes praise.
- :data:`GENERIC` holds theme-free sentences per sentiment; :data:`OPENERS` and :data:`CLOSERS`
  frame a text.

The theme ids used as keys must match ``configs/themes.yaml`` (``retain.synth.THEMES``).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from retain.contracts import SENTIMENTS

FILLERS: dict[str, tuple[str, ...]] = {
    "product": (
        "the dashboard", "the mobile app", "the reports page", "the export tool", "calendar sync",
        "the invoicing module", "the web app", "the API", "the analytics view", "the inbox",
        "the scheduler", "the admin console", "the iOS app", "the Android app", "the desktop app",
        "the integrations page", "search", "checkout", "notifications", "file upload",
        "the team workspace", "the data import", "the browser extension", "the timeline view",
    ),
    "feature": (
        "a dark mode", "an Excel export", "a Slack integration", "SSO", "bulk editing",
        "an offline mode", "two-factor login", "a public API", "custom fields", "recurring tasks",
        "a Zapier connector", "multi-currency support", "audit logs", "a Gantt view",
        "shared templates", "role-based permissions", "a Salesforce integration",
        "scheduled reports", "a Teams integration", "PDF export", "a kanban board",
        "webhooks", "custom dashboards", "a Linux app",
    ),
    "duration": (
        "two days", "three days", "a week", "over a week", "48 hours", "five days", "two weeks",
        "ten days", "a whole month", "72 hours", "four days", "nearly three weeks",
    ),
    "short_duration": (
        "a few minutes", "five minutes", "under an hour", "ten minutes", "half an hour",
        "twenty minutes", "no time",
    ),
    "agent": (
        "Maria", "James", "Priya", "Tom", "Aisha", "Lukas", "Sofia", "Daniel", "Mei", "Carlos",
        "Fatima", "Oliver", "Hannah", "Kenji", "Chloe", "Mateo", "Nina", "Omar", "Grace", "Ivan",
        "Leila", "Sam", "Elena", "Ben", "Zoe", "Ravi", "Anna", "Jonas",
    ),
    "intens": (
        "really", "very", "extremely", "so", "incredibly", "pretty", "quite", "super", "truly",
        "absolutely", "seriously", "way too",
    ),
    "times": (
        "three times", "four times", "twice", "again and again", "five times", "over and over",
        "multiple times", "six times", "several times",
    ),
    "nth": ("third", "fourth", "fifth", "sixth", "tenth"),
    "amount": (
        "$19.99", "$49", "€30", "£25", "$120", "$9.99", "$75", "$240", "€89", "£14.50", "$310",
    ),
    "percent": ("20%", "30%", "15%", "40%", "25%", "50%", "35%"),
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "month": (
        "January", "February", "March", "April", "May", "June", "July", "August", "September",
        "October", "November", "December",
    ),
    "plan": ("basic", "plus", "pro", "annual", "monthly", "team"),
    "seats": ("5", "10", "12", "25", "40", "100"),
    "use": (
        "client reports", "team planning", "invoicing", "tracking projects", "our weekly reviews",
        "scheduling", "sharing files", "customer follow-ups", "budgeting",
    ),
}

_NEG, _NEU, _POS = "negative", "neutral", "positive"

# Sentences shared by two themes (or two sentiments): the same words carry either label, which
# is what makes the labels only partly predictable from the text, as with real annotations.
_BILLING_OR_PRICING = (
    "we were charged a lot more than expected this month.",
    "the renewal cost us {amount} more than last year.",
    "the bill keeps going up.",
)
_SLOW_OR_UNRESOLVED = (
    "still waiting on support to sort out my case.",
    "{duration} and still nothing from support.",
    "I've been going back and forth with support for {duration}.",
)
_BUGS_OR_UNRESOLVED = (
    "{product} still doesn't work properly.",
    "the error is back again.",
)
_USABILITY_OR_MISSING = (
    "I can't find a way to export my data.",
    "there's no simple way to make bulk changes.",
    "I can't work out how to share a report with my team.",
)
_STAFF_OR_SLOW = (
    "nobody seemed to care about my request.",
    "the agent said they'd call back and never did.",
)
_BUGS_OR_USABILITY = (
    "{product} behaves strangely when I switch views.",
    "the buttons in {product} don't do what I expect.",
)
# Mild complaints: neutral and negative texts alike use them, with the same theme.
_MILD_SLOW = ("any update on my request? I sent it {duration} ago.",)
_MILD_UNRESOLVED = ("following up on my earlier ticket, the issue is still open.",)
_MILD_BUGS = ("{product} was slow to load this morning.",)
_MILD_USABILITY = ("took me a while to find the export button.",)
_MILD_PRICING = ("thinking about whether the {plan} plan is worth it for us.",)
_NEUTRAL_OR_NEGATIVE = ("could be better.", "not great, not terrible.", "it's okay I guess.")
_NEUTRAL_OR_POSITIVE = ("works fine for us.", "does what we need.", "no complaints so far.")

THEME_CLAUSES: dict[tuple[str, str], tuple[str, ...]] = {
    # ---------------------------------------------------------------- billing
    ("billing", _NEG): (
        *_BILLING_OR_PRICING,
        "I was charged twice for my {plan} subscription this month.",
        "you billed me {amount} after I had already cancelled the add-on.",
        "there is an unexpected charge of {amount} on my card and nobody can explain it.",
        "my invoice shows the wrong amount again.",
        "still waiting on the refund of {amount} you promised {duration} ago.",
        "the payment failed {times} even though my card is fine.",
        "I got double charged in {month} and the refund never arrived.",
        "the invoice for {month} lists seats we never ordered.",
        "billing took money from the wrong account.",
        "why was I charged {amount} when my plan says otherwise?",
        "your billing system is a mess, the invoices never match what we pay.",
        "auto-renewal charged me without any warning.",
        "we were overcharged {amount} and getting a refund is {intens} painful.",
        "the charge on my bank statement does not match the invoice.",
        "my card keeps getting declined and then I still see a pending charge.",
        "I was billed for the {plan} plan but we are on a cheaper one.",
        "{amount} disappeared from our account with no invoice at all.",
        "the refund for the duplicate payment still hasn't shown up.",
    ),
    ("billing", _NEU): (
        "can you send the invoice to our finance team instead?",
        "how do I update the card used for billing?",
        "please add our VAT number to the invoices.",
        "when will the {month} invoice be available?",
        "is it possible to pay by bank transfer instead of card?",
        "where can I download past invoices?",
        "we need the billing address on the invoice changed.",
        "could you move our billing date to the first of the month?",
    ),
    # ---------------------------------------------------------------- pricing
    ("pricing", _NEG): (
        *_MILD_PRICING,
        *_BILLING_OR_PRICING,
        "the price is {intens} high for what you get.",
        "you raised the price by {percent} with no notice.",
        "way too expensive compared to other tools.",
        "not worth the money anymore after the last price increase.",
        "the {plan} plan costs too much for a small team like ours.",
        "paying {amount} a month for this is hard to justify.",
        "poor value for money, honestly.",
        "another price hike? {percent} more for the same product.",
        "the subscription got {intens} expensive this year.",
        "cheaper alternatives do the same thing for half the price.",
        "I can't justify the cost to my manager anymore.",
        "for the price we pay I expected a lot more.",
        "the new pricing for {seats} seats is outrageous.",
        "it's overpriced for what it does.",
    ),
    ("pricing", _NEU): (
        *_MILD_PRICING,
        "is there a discount for annual plans?",
        "what does the {plan} plan cost for {seats} seats?",
        "do you offer nonprofit pricing?",
        *_MILD_PRICING,
        "how does pricing work if we add more users?",
        "comparing prices with other tools at the moment.",
        "does the price include the {plan} support tier?",
        "will the price change when our contract renews?",
    ),
    # ---------------------------------------------------------------- slow_support
    ("slow_support", _NEG): (
        *_MILD_SLOW,
        *_STAFF_OR_SLOW,
        *_SLOW_OR_UNRESOLVED,
        "I waited {duration} for a reply to my email.",
        "nobody answered my ticket for {duration}.",
        "support takes forever to respond.",
        "I was on hold for over an hour before anyone picked up.",
        "still no reply from support after {duration}.",
        "the chat said someone would be with me shortly, {duration} later nothing.",
        "response times are {intens} slow lately.",
        "it took {duration} to get a first response, which is unacceptable.",
        "I asked for a callback {times} and nobody called.",
        "your support team never gets back to me.",
        "waiting {duration} for an answer to a simple question is ridiculous.",
        "I sent {times} messages and have heard nothing back.",
        "support is {intens} slow to reply.",
        "nobody picks up the phone at your help line.",
        "the wait for support is endless.",
        "{duration} without a response from your help desk.",
    ),
    ("slow_support", _NEU): (
        *_MILD_SLOW,
        "waiting to hear back on my ticket from {day}.",
        *_MILD_SLOW,
        "just checking whether someone has seen my email.",
        "could someone get back to me about my question?",
        "I'm still waiting for a reply, no rush.",
    ),
    # ---------------------------------------------------------------- unresolved_issue
    ("unresolved_issue", _NEG): (
        *_MILD_UNRESOLVED,
        *_BUGS_OR_UNRESOLVED,
        *_SLOW_OR_UNRESOLVED,
        "the problem with {product} is still not fixed.",
        "I have contacted support {times} about the same issue.",
        "you closed my ticket but the issue is still there.",
        "every agent promises a fix and nothing changes.",
        "this is the {nth} time I am reporting this.",
        "the same problem keeps coming back after every so-called fix.",
        "{duration} later and my issue is still unresolved.",
        "I keep having to explain the problem from scratch to a new person.",
        "nobody has actually solved my issue with {product}.",
        "my case was marked resolved but it is not.",
        "still broken after {times} tickets.",
        "I'm tired of chasing support for the same thing.",
        "the issue I reported in {month} is still open.",
        "I have opened {times} tickets and the problem remains.",
    ),
    ("unresolved_issue", _NEU): (
        *_MILD_UNRESOLVED,
        *_MILD_UNRESOLVED,
        "reopening this as it happened again.",
        "is there any progress on my case?",
        "still working with support on the {product} problem.",
        "checking in on the status of my open case.",
    ),
    # ---------------------------------------------------------------- product_bugs
    ("product_bugs", _NEG): (
        *_MILD_BUGS,
        *_BUGS_OR_USABILITY,
        *_BUGS_OR_UNRESOLVED,
        "{product} keeps crashing.",
        "{product} crashes every time I open it.",
        "the app froze and I lost all my changes.",
        "there was an outage again on {day} and we couldn't work.",
        "{product} shows an error and won't load.",
        "data went missing after the last update.",
        "sync is broken, nothing saves.",
        "since the update {product} stopped working.",
        "I get a blank screen whenever I log in.",
        "the site was down for hours.",
        "constant bugs in {product}, it's unreliable.",
        "reports come out with wrong numbers, clearly a bug.",
        "notifications stopped working {duration} ago.",
        "login fails with an error {times} a day.",
        "{product} is {intens} buggy since the last release.",
        "we lost a day of data when {product} went down.",
    ),
    ("product_bugs", _NEU): (
        *_MILD_BUGS,
        "noticed a small glitch in {product}, not a big deal.",
        "reporting an error message I saw in {product} today.",
        *_MILD_BUGS,
        "small bug: the date shows in the wrong format.",
        "one of the buttons in {product} does nothing, FYI.",
    ),
    # ---------------------------------------------------------------- usability
    ("usability", _NEG): (
        *_MILD_USABILITY,
        *_BUGS_OR_USABILITY,
        *_USABILITY_OR_MISSING,
        "{product} is {intens} confusing.",
        "I can't find where to change my settings.",
        "setting it up took {duration} and it's still not right.",
        "the new layout is a mess, nothing is where it used to be.",
        "too many clicks to do something simple.",
        "the interface is cluttered and hard to use.",
        "it is not intuitive at all, the learning curve is steep.",
        "I had to watch {times} tutorials to figure out {product}.",
        "the menus make no sense.",
        "onboarding was confusing and the docs don't help.",
        "hard to find anything in {product}.",
        "my team finds the tool too complicated.",
        "{product} is {intens} clunky to navigate.",
    ),
    ("usability", _NEU): (
        *_MILD_USABILITY,
        *_MILD_USABILITY,
        "would be nice if the settings were easier to find.",
        "it took some getting used to the layout.",
        "is there a guide for setting up {product}?",
        "how do I change the language in {product}?",
    ),
    # ---------------------------------------------------------------- missing_features
    ("missing_features", _NEG): (
        *_USABILITY_OR_MISSING,
        "still no {feature}, which we really need.",
        "we can't use it properly without {feature}.",
        "why is there no {feature} yet?",
        "every competitor has {feature}, you don't.",
        "missing {feature} is a dealbreaker for us.",
        "we asked for {feature} a year ago and nothing.",
        "no {feature} means we have to do everything by hand.",
        "the lack of {feature} is {intens} frustrating.",
        "I need {feature} and it's not on the roadmap.",
        "without {feature} this tool is half useful.",
    ),
    ("missing_features", _NEU): (
        "it would be great to have {feature}.",
        "please consider adding {feature}.",
        "any plans for {feature}?",
        "feature request: {feature}.",
        "would love to see {feature} in a future release.",
        "are you planning {feature}?",
        "does the {plan} plan include {feature}?",
    ),
    ("missing_features", _POS): (
        "love it, just wish it had {feature}.",
        "great tool, the only thing missing is {feature}.",
        "would be perfect with {feature}.",
        "adding {feature} would make it even better.",
    ),
    # ---------------------------------------------------------------- staff_attitude
    ("staff_attitude", _NEG): (
        *_STAFF_OR_SLOW,
        "the agent was rude and dismissive.",
        "{agent} was condescending and didn't listen.",
        "the person on the phone hung up on me.",
        "support staff treated me like an idiot.",
        "the agent blamed me for the problem.",
        "{agent} was unhelpful and {intens} impatient.",
        "I was talked down to by your support team.",
        "nobody showed any empathy.",
        "the rep was sarcastic and unprofessional.",
        "{agent} just read from a script and ignored my question.",
        "the agent was arrogant and cut me off.",
    ),
    ("staff_attitude", _NEU): (
        "the agent was polite.",
        "{agent} handled my call.",
        "spoke with {agent} today about my account.",
        "{agent} took my details and said they would pass it on.",
    ),
    ("staff_attitude", _POS): (
        "{agent} was {intens} kind and helpful.",
        "the support agent was friendly and patient.",
        "huge thanks to {agent} for going above and beyond.",
        "the team was courteous and professional.",
        "{agent} was lovely to deal with.",
        "your staff are always so helpful and polite.",
        "great attitude from {agent}, explained everything clearly.",
        "{agent} was patient with all my questions.",
        "the agent on chat was {intens} friendly.",
    ),
}

DECOYS: dict[str, tuple[str, ...]] = {
    "billing": (
        "billing is always clear and correct.",
        "the invoices are simple to read.",
        "payment went through without a problem.",
        "never had an issue with charges.",
        "the refund came back within {short_duration}.",
    ),
    "pricing": (
        "great value for money.",
        "fair price for what you get.",
        "worth every penny.",
        "the price is reasonable.",
        "the {plan} plan is good value.",
    ),
    "slow_support": (
        "support replied within {short_duration}.",
        "got an answer from support in {short_duration}.",
        "fast support, quick response.",
        "support answered right away.",
        "no waiting at all, the help desk picked up immediately.",
    ),
    "unresolved_issue": (
        "my issue was fixed on the first try.",
        "the problem was solved quickly.",
        "they sorted everything out in one call.",
        "the ticket was resolved the same day.",
    ),
    "product_bugs": (
        "no crashes, rock solid.",
        "it just works, never had an outage.",
        "very reliable, no bugs so far.",
        "{product} runs smoothly.",
        "the last update fixed the error I used to get.",
    ),
    "usability": (
        "{product} is easy to use.",
        "setup took {short_duration}.",
        "very intuitive interface.",
        "simple and clean design.",
        "everything is easy to find.",
    ),
    "missing_features": (
        "it has every feature we need.",
        "the integrations cover everything we use.",
        "the new export feature is great.",
    ),
}

GENERIC: dict[str, tuple[str, ...]] = {
    _NEG: (
        *_NEUTRAL_OR_NEGATIVE,
        "really disappointed.",
        "not happy at all.",
        "this has been a bad experience.",
        "considering switching to another provider.",
        "very frustrating overall.",
        "I expected much better.",
        "would not recommend.",
        "honestly fed up.",
        "terrible experience this month.",
        "this is getting worse every month.",
        "it has been one problem after another.",
    ),
    _NEU: (
        *_NEUTRAL_OR_NEGATIVE,
        *_NEUTRAL_OR_POSITIVE,
        "it does the job.",
        "using it mostly for {use}.",
        "nothing special to report.",
        "we use it every week.",
        "it's fine.",
        "average, neither good nor bad.",
        "mixed feelings so far.",
        "just started using it.",
        "okay for now.",
        "it works for {use}, more or less.",
        "no strong opinion yet.",
    ),
    _POS: (
        *_NEUTRAL_OR_POSITIVE,
        "love this product!",
        "works great for our team.",
        "very happy with it.",
        "highly recommend.",
        "best tool we've used.",
        "makes my job so much easier.",
        "great experience overall.",
        "five stars.",
        "keep up the good work!",
        "we use it every day for {use} and it's excellent.",
        "really pleased with it.",
    ),
}

OPENERS: dict[str, tuple[str, ...]] = {
    _NEG: (
        "Hi.", "Hello team.", "Where do I even start.", "Ugh.", "Not impressed.",
        "Long-time customer here.", "I have to say this.", "Okay, so.",
    ),
    _NEU: (
        "Hi.", "Hello.", "Quick note.", "Hi team.", "Just a quick one.", "Feedback:",
        "Long-time customer here.",
    ),
    _POS: (
        "Hi!", "Hello team!", "Quick note.", "Just wanted to say this.", "Long-time customer here.",
        "Wow.",
    ),
}

CLOSERS: dict[str, tuple[str, ...]] = {
    _NEG: (
        "Please fix this.", "Very disappointed.", "Sort it out.", "Do better.",
        "I'm considering cancelling.", "Not good enough.", "Fix it please.", "Thanks for nothing.",
    ),
    _NEU: ("Thanks.", "Regards.", "Let me know.", "Cheers.", "Thank you.", "Best."),
    _POS: ("Thanks!", "Keep it up!", "Cheers!", "Thank you so much.", "Great job.", "10/10."),
}


# ============================================================================= rendering

_N_SENTIMENTS = len(SENTIMENTS)
_NEUTRAL = SENTIMENTS.index("neutral")
_MIDDLE_SLOTS = 5  # up to three theme clauses, a decoy and a generic sentence, in random order


@dataclass(frozen=True)
class PhraseBank:
    """Rendered sentence variants grouped by category; ``pieces[0]`` is the empty piece.

    Categories, in order: a theme clause per ``(theme, sentiment)`` (``theme * 3 + sentiment``),
    a decoy per theme, then generic sentences, openers and closers per sentiment.
    """

    pieces: np.ndarray  # object
    offset: np.ndarray  # int64, first piece of each category
    count: np.ndarray  # int64, pieces per category (0: the combination has no templates)
    n_themes: int

    @property
    def decoy_base(self) -> int:
        return _N_SENTIMENTS * self.n_themes

    @property
    def generic_base(self) -> int:
        return self.decoy_base + self.n_themes

    @property
    def opener_base(self) -> int:
        return self.generic_base + _N_SENTIMENTS

    @property
    def closer_base(self) -> int:
        return self.opener_base + _N_SENTIMENTS

    def pick(self, category: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One random piece index per entry of ``category``."""
        category = np.asarray(category, dtype=np.int64)
        within = (rng.random(len(category)) * self.count[category]).astype(np.int64)
        return self.offset[category] + within


def _category_templates(themes: Sequence[str]) -> list[tuple[str, ...]]:
    n_themes = len(themes)
    decoy, generic = _N_SENTIMENTS * n_themes, _N_SENTIMENTS * n_themes + n_themes
    templates: list[tuple[str, ...]] = [() for _ in range(generic + 3 * _N_SENTIMENTS)]
    for (theme, sentiment), texts in THEME_CLAUSES.items():
        templates[themes.index(theme) * _N_SENTIMENTS + SENTIMENTS.index(sentiment)] = texts
    for theme, texts in DECOYS.items():
        templates[decoy + themes.index(theme)] = texts
    for s, sentiment in enumerate(SENTIMENTS):
        templates[generic + s] = GENERIC[sentiment]
        templates[generic + _N_SENTIMENTS + s] = OPENERS[sentiment]
        templates[generic + 2 * _N_SENTIMENTS + s] = CLOSERS[sentiment]
    return templates


def _add_typo(text: str, rng: np.random.Generator) -> str:
    """One slip: a swapped, dropped or doubled letter, or a lower-case start without a full stop."""
    words = text.split(" ")
    long_words = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    kind = int(rng.integers(4))
    if kind == 3 or not long_words:
        return text[0].lower() + text[1:].rstrip(".!")
    i = long_words[int(rng.integers(len(long_words)))]
    w = words[i]
    j = int(rng.integers(1, len(w) - 1))
    words[i] = (w[:j] + w[j + 1] + w[j] + w[j + 2:], w[:j] + w[j + 1:], w[:j] + w[j] + w[j:])[kind]
    return " ".join(words)


def build_phrase_bank(
    themes: Sequence[str], rng: np.random.Generator, variants_per_category: int = 300,
    typo_rate: float = 0.05,
) -> PhraseBank:
    """Render the sentence variants of every category by filling template slots at random.

    Parameters
    ----------
    themes : sequence of str
        Theme ids in taxonomy order; theme codes used by :func:`render_texts` index this.
    rng : numpy.random.Generator
        Source of all randomness (slot fillers, template choice, typos).
    variants_per_category : int, default 300
        Variants rendered per category that has slots; slot-free categories keep a few copies
        of each template (so typos can touch some of them).
    typo_rate : float, default 0.05
        Share of variants with one typo.

    Returns
    -------
    PhraseBank
    """
    formatter = string.Formatter()
    pieces: list[str] = [""]
    templates_by_category = _category_templates(list(themes))
    offset = np.zeros(len(templates_by_category), dtype=np.int64)
    count = np.zeros(len(templates_by_category), dtype=np.int64)
    for category, templates in enumerate(templates_by_category):
        offset[category] = len(pieces)
        if not templates:
            continue
        fields = [[f for _, f, _, _ in formatter.parse(t) if f] for t in templates]
        n_variants = variants_per_category if any(fields) else 4 * len(templates)
        chosen = rng.integers(len(templates), size=n_variants)
        typo = rng.random(n_variants) < typo_rate
        for k in range(n_variants):
            fill = {f: FILLERS[f][int(rng.integers(len(FILLERS[f])))] for f in fields[chosen[k]]}
            text = templates[chosen[k]].format(**fill)
            text = text[0].upper() + text[1:]
            pieces.append(_add_typo(text, rng) if typo[k] else text)
        count[category] = len(pieces) - offset[category]
    return PhraseBank(
        pieces=np.array(pieces, dtype=object), offset=offset, count=count, n_themes=len(themes)
    )


def render_texts(
    bank: PhraseBank, sentiment: np.ndarray, themes: np.ndarray, decoy: np.ndarray,
    opener_probability: np.ndarray, closer_probability: np.ndarray, rng: np.random.Generator,
    extra_generic_probability: float = 0.3,
) -> list[str]:
    """Compose one text per row from its sentiment, themes and decoy.

    A text is: an optional opener; one clause per theme (at most three); the decoy sentence if
    any; a generic sentence (always when there is no theme, else with
    ``extra_generic_probability``); an optional closer. The middle sentences are shuffled.

    Parameters
    ----------
    bank : PhraseBank
    sentiment : numpy.ndarray
        Index into ``contracts.SENTIMENTS`` per row.
    themes : numpy.ndarray
        Bit mask over the bank's themes per row (bit ``i`` = theme ``i``), at most three bits.
        A theme without templates for the row's sentiment is said with its neutral templates.
    decoy : numpy.ndarray
        Theme whose decoy sentence (its words, said positively, not raising it) is added; -1 none.
    opener_probability, closer_probability : numpy.ndarray
        Per row.
    rng : numpy.random.Generator
    extra_generic_probability : float, default 0.3

    Returns
    -------
    list of str
        Non-empty texts, one per row.
    """
    n = len(sentiment)
    sentiment = np.asarray(sentiment, dtype=np.int64)
    cols = np.zeros((n, 2 + _MIDDLE_SLOTS), dtype=np.int64)
    opens = rng.random(n) < opener_probability
    cols[:, 0] = np.where(opens, bank.pick(bank.opener_base + sentiment, rng), 0)
    bits = (np.asarray(themes, dtype=np.int64)[:, None] >> np.arange(bank.n_themes)) & 1
    ranked = np.argsort(np.where(bits == 1, rng.random(bits.shape), 2.0), axis=1)[:, :3]
    rows = np.arange(n)
    for j in range(3):
        theme = ranked[:, j]
        category = theme * _N_SENTIMENTS + sentiment
        category = np.where(bank.count[category] > 0, category, theme * _N_SENTIMENTS + _NEUTRAL)
        cols[:, 1 + j] = np.where(bits[rows, theme] == 1, bank.pick(category, rng), 0)
    cols[:, 4] = np.where(decoy >= 0, bank.pick(bank.decoy_base + np.maximum(decoy, 0), rng), 0)
    generic = (np.asarray(themes) == 0) | (rng.random(n) < extra_generic_probability)
    cols[:, 5] = np.where(generic, bank.pick(bank.generic_base + sentiment, rng), 0)
    closes = rng.random(n) < closer_probability
    cols[:, 6] = np.where(closes, bank.pick(bank.closer_base + sentiment, rng), 0)
    order = np.argsort(rng.random((n, _MIDDLE_SLOTS)), axis=1)
    cols[:, 1:6] = np.take_along_axis(cols[:, 1:6], order, axis=1)
    return [" ".join(filter(None, row)) for row in bank.pieces[cols].tolist()]
