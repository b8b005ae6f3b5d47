"""The sentiment kind: shared vectors, input validation, and the lexicon's shape.

The vectors file is shared with the JavaScript miner, so a failure here means
the two implementations would stop agreeing, not just that Python changed.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

import pytest

from qortex.core.kinds import Kind, KindRegistry
from qortex.errors import ConfigError, InvalidInput
from qortex.kinds.sentiment import (
    LABELS,
    MAX_TWEET_CHARS,
    NEGATORS,
    SentimentKind,
    create,
    parse_lexicon,
    score,
    tokenize,
)
from qortex.settings import Settings

VECTORS_PATH = Path(__file__).resolve().parent.parent / "vectors" / "sentiment.json"
VECTORS = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def kind() -> SentimentKind:
    return SentimentKind()


def test_vectors_file_is_big_enough_and_well_formed() -> None:
    assert len(VECTORS) >= 40
    for vector in VECTORS:
        assert set(vector) == {"input", "output"}
        assert isinstance(vector["input"], str) and vector["input"].strip()
        assert vector["output"] in LABELS
    assert len({v["input"] for v in VECTORS}) == len(VECTORS)
    assert {v["output"] for v in VECTORS} == set(LABELS)


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: v["input"])
def test_vector(kind: SentimentKind, vector: dict[str, str]) -> None:
    assert kind.compute(vector["input"]) == vector["output"]


def test_vectors_are_valid_task_input(kind: SentimentKind) -> None:
    tweets = [v["input"] for v in VECTORS]
    for start in range(0, len(tweets), kind.max_tweets):
        chunk = tweets[start : start + kind.max_tweets]
        assert kind.validate({"tweets": chunk}) == chunk


def test_kind_fulfils_protocol_and_registers(kind: SentimentKind) -> None:
    assert isinstance(kind, Kind)
    registry = KindRegistry([kind])
    assert registry.get("sentiment") is kind


def test_create_reads_settings() -> None:
    assert create(Settings(max_tweets_per_task=3)).max_tweets == 3
    assert create(Settings()).max_tweets == 5


def test_max_tweets_must_be_positive() -> None:
    with pytest.raises(ConfigError):
        SentimentKind(max_tweets=0)


# --- the algorithm, step by step ---------------------------------------------


def test_tokenize_lowercases_and_keeps_only_ascii_letters_and_apostrophes() -> None:
    assert tokenize("I DON'T like_it!! #Great @bob42 café") == [
        "i",
        "don't",
        "like",
        "it",
        "great",
        "bob",
        "caf",
    ]


def test_tokenize_strips_edge_apostrophes_and_drops_empty_tokens() -> None:
    assert tokenize("'quoted' ''' rock'n'roll' '") == ["quoted", "rock'n'roll"]
    assert tokenize("") == []
    assert tokenize("😀 123 ...") == []


def test_typographic_apostrophe_separates_tokens() -> None:
    # The typographic apostrophe phone keyboards type reads as the ASCII one.
    assert tokenize("don\u2019t") == ["don't"]


def test_negation_reaches_back_two_tokens_and_no_further() -> None:
    lexicon = {"good": 2}
    assert score(tokenize("not good"), lexicon) == -2
    assert score(tokenize("not a good"), lexicon) == -2
    assert score(tokenize("not a very good"), lexicon) == 2
    assert score(tokenize("good not"), lexicon) == 2


def test_negation_flips_once_even_with_two_negators() -> None:
    assert score(tokenize("no, not good"), {"good": 2}) == -2


def test_negation_ignores_punctuation_between_tokens() -> None:
    # Punctuation is not a token, so it neither counts in the window nor stops it.
    assert score(tokenize("Not. Good."), {"good": 2}) == -2


def test_each_negator_negates() -> None:
    for negator in NEGATORS:
        assert score(tokenize(f"{negator} good"), {"good": 2}) == -2, negator


def test_sum_sign_decides_label(kind: SentimentKind) -> None:
    assert kind.compute("good good bad") == "positive"  # 2 + 2 - 2
    assert kind.compute("good bad bad") == "negative"  # 2 - 2 - 2
    assert kind.compute("good bad") == "neutral"  # 2 - 2


def test_compute_is_deterministic() -> None:
    tweets = [v["input"] for v in VECTORS]
    first = [SentimentKind().compute(t) for t in tweets]
    again = SentimentKind()
    for _ in range(3):
        assert [again.compute(t) for t in tweets] == first


# --- the lexicon file ---------------------------------------------------------


def test_lexicon_file_is_sorted_unique_and_in_range() -> None:
    text = files("qortex.kinds").joinpath("sentiment_lexicon.txt").read_text(encoding="utf-8")
    assert text.endswith("\n")
    words = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        word, weight = line.split("\t")
        assert re.fullmatch(r"[a-z]+", word), line
        assert re.fullmatch(r"-?[0-3]", weight), line
        assert -3 <= int(weight) <= 3
        words.append(word)
    assert words == sorted(words)
    assert len(words) == len(set(words))
    assert 250 <= len(words) <= 400
    assert not set(words) & NEGATORS


def test_lexicon_has_no_zero_scores(kind: SentimentKind) -> None:
    # A zero entry would be dead weight that every miner still has to ship.
    assert all(weight != 0 for weight in kind.lexicon.values())


def test_lexicon_covers_everyday_words(kind: SentimentKind) -> None:
    for word in ("love", "great", "amazing", "happy"):
        assert kind.lexicon[word] > 0, word
    for word in ("hate", "awful", "terrible", "boring", "sad"):
        assert kind.lexicon[word] < 0, word


@pytest.mark.parametrize(
    "text",
    ["good 2", "good\t4", "good\t+2", "Good\t2", "good\t2\t", "bad\t-2\nawful\t-3", "a\t1\na\t1"],
)
def test_parse_lexicon_refuses_malformed_text(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_lexicon(text)


def test_parse_lexicon_refuses_negators() -> None:
    with pytest.raises(ConfigError):
        parse_lexicon("not\t-1")


def test_parse_lexicon_skips_comments() -> None:
    assert parse_lexicon("# header\nbad\t-2\ngood\t2\n") == {"bad": -2, "good": 2}


# --- validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("task_input", "message", "field"),
    [
        (["a tweet"], "must be an object", "input"),
        ("a tweet", "must be an object", "input"),
        (None, "must be an object", "input"),
        ({}, "missing 'tweets'", "tweets"),
        ({"tweet": ["a"]}, "missing 'tweets'", "tweets"),
        ({"tweets": "a tweet"}, "must be a list", "tweets"),
        ({"tweets": {"0": "a"}}, "must be a list", "tweets"),
        ({"tweets": []}, "must not be empty", "tweets"),
        ({"tweets": ["a"] * 6}, "at most 5 tweets per task", "tweets"),
        ({"tweets": ["ok", 3]}, "tweets[1] must be a string", "tweets[1]"),
        ({"tweets": ["ok", "ok", None]}, "tweets[2] must be a string", "tweets[2]"),
        ({"tweets": [["nested"]]}, "tweets[0] must be a string", "tweets[0]"),
        ({"tweets": ["ok", ""]}, "tweets[1] must not be empty", "tweets[1]"),
        ({"tweets": [" \t\n "]}, "tweets[0] must not be empty", "tweets[0]"),
        (
            {"tweets": ["ok", "x" * (MAX_TWEET_CHARS + 1)]},
            "tweets[1] is longer than 1000 characters",
            "tweets[1]",
        ),
    ],
)
def test_validate_refuses(
    kind: SentimentKind, task_input: object, message: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        kind.validate(task_input)
    assert message in caught.value.message
    assert caught.value.detail == {"field": field}
    assert caught.value.status == 400


def test_validate_limit_follows_max_tweets() -> None:
    kind = SentimentKind(max_tweets=2)
    assert kind.validate({"tweets": ["a", "b"]}) == ["a", "b"]
    with pytest.raises(InvalidInput, match="at most 2 tweets per task"):
        kind.validate({"tweets": ["a", "b", "c"]})


def test_validate_accepts_edges_and_returns_tweets_unchanged(kind: SentimentKind) -> None:
    tweets = ["  padded  ", "x" * MAX_TWEET_CHARS, "😀" * MAX_TWEET_CHARS, "a", "ok"]
    task_input = {"tweets": tweets, "extra": "ignored"}
    validated = kind.validate(task_input)
    assert validated == tweets
    assert validated is not tweets


# --- split / agree / assemble -------------------------------------------------


def test_split_then_assemble_round_trips(kind: SentimentKind) -> None:
    tweets = kind.validate({"tweets": ["I love it", "I hate it", "It is Tuesday"]})
    microtasks = kind.split(tweets)
    assert microtasks == tweets
    json.dumps(microtasks)  # microtask inputs travel to miners as JSON
    labels = [kind.compute(m) for m in microtasks]
    assert kind.assemble(tweets, labels) == [
        {"tweet": "I love it", "label": "positive"},
        {"tweet": "I hate it", "label": "negative"},
        {"tweet": "It is Tuesday", "label": "neutral"},
    ]


def test_assemble_refuses_a_missing_label(kind: SentimentKind) -> None:
    with pytest.raises(ValueError):
        kind.assemble(["a", "b"], ["neutral"])


def test_agree_means_equal_labels(kind: SentimentKind) -> None:
    assert kind.agree("positive", "positive")
    assert not kind.agree("positive", "negative")
    assert not kind.agree("neutral", "Neutral")
