"""The ``sentiment`` kind: label each tweet positive, negative or neutral.

Results are decided by a quorum of miners returning the *same* label, so every
honest miner, whatever language it is written in, must compute exactly the same
answer. That rules out models and fuzzy heuristics; the classifier below is a
small lexicon sum that a JavaScript miner can re-implement byte for byte. Any
change to it (or to ``sentiment_lexicon.txt``) changes answers and must be made
in every miner at once, with ``tests/vectors/sentiment.json`` updated to match.

Algorithm (``classify``), for a tweet ``text``:

1. ``s = text.lower()`` (Python ``str.lower``; JavaScript ``toLowerCase``), then
   every typographic apostrophe U+2019 replaced by the ASCII apostrophe U+0027,
   since phone keyboards type "don\u2019t" and it must negate like "don't".
2. ``tokens`` = every maximal run matching the regular expression ``[a-z']+``
   in ``s``, left to right (ASCII ``a``-``z`` and the ASCII apostrophe U+0027
   only, no flags; in JavaScript ``s.match(/[a-z']+/g) ?? []``). Strip every
   leading and trailing apostrophe from each token; drop tokens that become
   empty. Everything else (digits, ``_``, ``#``, ``@``, punctuation, emoji,
   non-ASCII letters) separates tokens.
3. For each token ``tokens[i]`` that is a key of the lexicon, take its score
   ``w`` (an integer in -3..3). If ``tokens[i-1]`` or ``tokens[i-2]`` exists and
   is in ``NEGATORS``, use ``-w`` instead (once: two negators in the window
   still flip only once). Tokens that are not in the lexicon still count as
   positions in the window, so "not a good" flips "good" but "not at all a
   good" does not. Negators are never lexicon words.
4. ``total`` = the sum of those scores. ``total > 0`` gives ``"positive"``,
   ``total < 0`` gives ``"negative"``, ``total == 0`` (including no tokens at
   all) gives ``"neutral"``.

The lexicon file holds one ``word<TAB>score`` per line, ``#`` lines being
comments, sorted by code point with no duplicates; words are ``[a-z]+``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.resources import files
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from qortex.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from qortex.settings import Settings

LABELS = ("positive", "negative", "neutral")

#: Tokens that reverse the score of a lexicon word up to two tokens after them.
NEGATORS = frozenset(
    {
        "not",
        "no",
        "never",
        "don't",
        "dont",
        "isn't",
        "isnt",
        "wasn't",
        "can't",
        "cant",
        "won't",
        "didn't",
        "doesn't",
        "nothing",
        "cannot",
        "nobody",
        "neither",
        "nor",
        "without",
    }
)

#: How many tokens back a negator still reaches.
NEGATION_WINDOW = 2

#: The longest tweet accepted, in Python characters (code points): the old
#: 280-character limit with room for URLs and long posts, but small enough that
#: one task cannot hog a miner.
MAX_TWEET_CHARS = 1000

_TOKEN = re.compile(r"[a-z']+")
_LEXICON_LINE = re.compile(r"([a-z]+)\t(-?[0-3])")


def tokenize(text: str) -> list[str]:
    """Steps 1-2 of the algorithm, kept separate so tests can pin them down."""
    lowered = text.lower().replace("\u2019", "'")
    tokens = (match.strip("'") for match in _TOKEN.findall(lowered))
    return [token for token in tokens if token]


def score(tokens: list[str], lexicon: Mapping[str, int]) -> int:
    """Step 3: the negation-aware sum; exposed so tests can check the window."""
    total = 0
    for i, token in enumerate(tokens):
        weight = lexicon.get(token)
        if weight is None:
            continue
        window = tokens[max(0, i - NEGATION_WINDOW) : i]
        total += -weight if any(t in NEGATORS for t in window) else weight
    return total


def classify(text: str, lexicon: Mapping[str, int]) -> str:
    """The whole algorithm of the module docstring, as one pure function."""
    total = score(tokenize(text), lexicon)
    if total > 0:
        return "positive"
    if total < 0:
        return "negative"
    return "neutral"


def parse_lexicon(text: str) -> dict[str, int]:
    """Parse lexicon text strictly, because a lax parser could hide a miner mismatch."""
    lexicon: dict[str, int] = {}
    previous = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            continue
        match = _LEXICON_LINE.fullmatch(line)
        if match is None:
            raise ConfigError(f"sentiment lexicon line {number}: expected word<TAB>score")
        word, weight = match[1], int(match[2])
        if word in NEGATORS:
            raise ConfigError(f"sentiment lexicon line {number}: {word!r} is a negator")
        if word <= previous:
            raise ConfigError(f"sentiment lexicon line {number}: {word!r} out of order")
        lexicon[word] = weight
        previous = word
    return lexicon


def load_lexicon() -> Mapping[str, int]:
    """The shipped lexicon, read from package data so it works from a wheel or zip."""
    resource = files("qortex.kinds").joinpath("sentiment_lexicon.txt")
    return MappingProxyType(parse_lexicon(resource.read_text(encoding="utf-8")))


class SentimentKind:
    name = "sentiment"
    browser_module = files("qortex.kinds").joinpath("sentiment.js")
    cost = 1.0  # credit per accepted result
    browser_files = ("sentiment_lexicon.txt",)

    def __init__(self, max_tweets: int = 5) -> None:
        if max_tweets < 1:
            raise ConfigError("max_tweets must be at least 1")
        self.max_tweets = max_tweets
        self.limits = {"tweets": max_tweets}  # listed by /api/v1/kinds for clients
        # Read once: compute runs for every microtask and must not touch the disk.
        self.lexicon = load_lexicon()

    def validate(self, task_input: Any) -> list[str]:
        """Accept the seed API's ``{"tweets": [...]}`` body; the tweets come back unchanged.

        Tweets are not stripped or otherwise rewritten, because the task output
        echoes them and clients match labels to their own text.
        """
        if not isinstance(task_input, dict):
            raise InvalidInput("task input must be an object with a 'tweets' list", field="input")
        if "tweets" not in task_input:
            raise InvalidInput("task input is missing 'tweets'", field="tweets")
        tweets = task_input["tweets"]
        if not isinstance(tweets, list):
            raise InvalidInput("tweets must be a list of strings", field="tweets")
        if not tweets:
            raise InvalidInput("tweets must not be empty", field="tweets")
        if len(tweets) > self.max_tweets:
            raise InvalidInput(
                f"at most {self.max_tweets} tweets per task, got {len(tweets)}", field="tweets"
            )
        for i, tweet in enumerate(tweets):
            where = f"tweets[{i}]"
            if not isinstance(tweet, str):
                raise InvalidInput(f"{where} must be a string", field=where)
            if not tweet.strip():
                raise InvalidInput(f"{where} must not be empty", field=where)
            if len(tweet) > MAX_TWEET_CHARS:
                raise InvalidInput(
                    f"{where} is longer than {MAX_TWEET_CHARS} characters", field=where
                )
        return list(tweets)

    def split(self, task_input: list[str]) -> list[str]:
        """One microtask per tweet, so a quorum decides each label on its own."""
        return list(task_input)

    def compute(self, microtask_input: str) -> str:
        return classify(microtask_input, self.lexicon)

    def check(self, microtask_input: str, output: Any) -> bool:
        """Recomputation: a label costs microseconds, so a checked result is simply redone."""
        return isinstance(microtask_input, str) and self.compute(microtask_input) == output

    def agree(self, a: Any, b: Any) -> bool:
        """Labels are discrete, so only identical answers count as the same."""
        return a == b

    def assemble(self, task_input: list[str], outputs: list[Any]) -> list[dict[str, Any]]:
        """Pair each tweet with its label, in the order the client sent them."""
        return [
            {"tweet": tweet, "label": label}
            for tweet, label in zip(task_input, outputs, strict=True)
        ]


def create(settings: Settings) -> SentimentKind:
    """Build the kind from settings, so the seed's MAX_TWEETS_PER_TASK keeps working."""
    return SentimentKind(max_tweets=settings.max_tweets_per_task)
