"""A small text dataset built in code: customer-support tickets routed to a team.

Nothing here is downloaded: the table is generated from phrase lists with a fixed seed,
so it is the same on every machine. It exists to exercise text as a modality (TF-IDF +
a linear model exported to ONNX with string input) on data with a realistic shape:

* ``message`` (text): one to three phrases of the ticket's team, often one phrase of
  another team (tickets mention more than one thing), greetings and sign-offs, a few
  typos, and sometimes accented words;
* ``channel`` (categorical): email, chat or phone, weakly tied to the team;
* ``account_age_days`` (numeric): how old the customer's account is;
* ``team`` (label): billing, technical, shipping or account.

About 4 % of the labels are routed to another team at random, as human triage does.

Examples
--------
>>> frame = tickets_frame(rows=40)
>>> list(frame.columns)
['message', 'channel', 'account_age_days', 'team']
>>> sorted(frame["team"].unique())
['account', 'billing', 'shipping', 'technical']
>>> tickets_frame(rows=40).equals(frame)
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlcycle._optional import require

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TEAMS", "tickets_frame"]

#: The label values, in a fixed order.
TEAMS: tuple[str, ...] = ("billing", "technical", "shipping", "account")

_PHRASES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged twice this month",
        "my invoice shows the wrong amount",
        "please refund the last payment",
        "the card payment failed at checkout",
        "why did my subscription price go up",
        "I need a copy of my receipt",
        "you billed me after I cancelled",
        "the discount code was not applied to the bill",
        "can I pay by bank transfer instead of card",
        "there is an unknown charge on my statement",
        "the VAT on the invoice is wrong",
        "I want to change my billing address",
        "my refund has not arrived yet",
        "the annual plan was charged as monthly",
    ),
    "technical": (
        "the app crashes when I open settings",
        "I get an error 500 on the dashboard",
        "the page loads forever and then times out",
        "sync stopped working after the update",
        "the export button does nothing",
        "notifications are not delivered to my phone",
        "the API returns 401 with a valid key",
        "search results are empty even for exact names",
        "the desktop client will not install on Windows",
        "images fail to upload larger than 2 MB",
        "the screen goes blank after login",
        "dark mode breaks the layout on mobile",
        "the integration with the calendar lost my events",
        "the website is very slow since yesterday",
    ),
    "shipping": (
        "my parcel has not arrived",
        "the tracking number does not work",
        "the package arrived damaged",
        "I received the wrong item in the box",
        "can you change the delivery address",
        "the courier left the parcel at the wrong door",
        "delivery is two weeks late",
        "I want to return the order by post",
        "one item is missing from my order",
        "do you ship to Norway",
        "the delivery slot was missed",
        "the box was opened before it reached me",
        "how long does express shipping take",
        "the order shows delivered but nothing came",
    ),
    "account": (
        "I cannot reset my password",
        "please delete my account",
        "I want to change the email on my profile",
        "my account was locked after three tries",
        "how do I add a second user to my team",
        "two factor codes are not accepted",
        "I forgot my username",
        "someone else logged into my account",
        "merge my two accounts into one",
        "change the owner of the workspace",
        "I never got the verification email",
        "update my phone number for sign in",
        "how do I export my personal data",
        "close the account of a former employee",
    ),
}

_OPENERS = ("", "", "Hello,", "Hi team,", "Good morning.", "Bonjour,", "Dear support,", "Hey")
_CLOSERS = ("", "", "Thanks.", "Thank you!", "Regards, Ana", "Merci beaucoup.", "ASAP please", "")
_CONNECTORS = (". Also", ". And", "; besides,", ". By the way", ". PS:")
_CHANNEL_WEIGHTS: dict[str, tuple[float, float, float]] = {
    "billing": (0.55, 0.25, 0.20),
    "technical": (0.30, 0.55, 0.15),
    "shipping": (0.35, 0.30, 0.35),
    "account": (0.40, 0.40, 0.20),
}
_CHANNELS = ("email", "chat", "phone")


def tickets_frame(rows: int = 1200, seed: int = 7) -> pd.DataFrame:
    """The support-ticket table.

    Parameters
    ----------
    rows
        Number of tickets.
    seed
        Seed of the generator; the same seed and ``rows`` give the same table.

    Returns
    -------
    pandas.DataFrame
        Columns ``message``, ``channel``, ``account_age_days``, ``team``.
    """
    pd = require("pandas", "train")
    rng = np.random.default_rng(seed)
    teams = rng.choice(len(TEAMS), size=rows, p=[0.34, 0.30, 0.22, 0.14])
    messages: list[str] = []
    channels: list[str] = []
    ages: list[int] = []
    labels: list[str] = []
    for t in teams:
        team = TEAMS[int(t)]
        messages.append(_message(rng, team))
        channels.append(_CHANNELS[int(rng.choice(3, p=_CHANNEL_WEIGHTS[team]))])
        age = rng.gamma(2.0, 200.0 if team != "account" else 120.0)
        ages.append(int(age))
        if rng.random() < 0.04:
            team = TEAMS[int(rng.integers(len(TEAMS)))]
        labels.append(team)
    return pd.DataFrame(
        {
            "message": messages,
            "channel": channels,
            "account_age_days": ages,
            "team": labels,
        }
    )


def _message(rng: np.random.Generator, team: str) -> str:
    own = _PHRASES[team]
    parts = [own[int(i)] for i in rng.choice(len(own), size=int(rng.integers(1, 4)))]
    if rng.random() < 0.35:
        others = [t for t in TEAMS if t != team]
        other = others[int(rng.integers(len(others)))]
        extra = _PHRASES[other][int(rng.integers(len(_PHRASES[other])))]
        parts.insert(int(rng.integers(len(parts) + 1)), extra)
    body = parts[0]
    for part in parts[1:]:
        body += f"{_CONNECTORS[int(rng.integers(len(_CONNECTORS)))]} {part}"
    if rng.random() < 0.15:
        body = _typo(rng, body)
    if rng.random() < 0.5:
        body = body[0].upper() + body[1:]
    opener = _OPENERS[int(rng.integers(len(_OPENERS)))]
    closer = _CLOSERS[int(rng.integers(len(_CLOSERS)))]
    return " ".join(p for p in (opener, body + ".", closer) if p)


def _typo(rng: np.random.Generator, text: str) -> str:
    """Swap two neighbouring letters of one word (a common typing slip)."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    if not candidates:
        return text
    i = candidates[int(rng.integers(len(candidates)))]
    w = words[i]
    j = int(rng.integers(1, len(w) - 2))
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    return " ".join(words)
