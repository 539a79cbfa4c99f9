"""Typos and other languages, below the conversations: what the typo reader changes and never changes, and
how a message's language is told and read."""

from __future__ import annotations

import random
import string
import time

import pytest

from agent import spelling as S
from agent.language_replies import translate_reply
from agent.languages import translate, writes_throughout
from agent.vocabulary import normalize


@pytest.mark.parametrize("typo,word", [
    ("slowy", "slowly"), ("watr", "water"), ("zooom", "zoom"), ("hiar", "hair"), ("secnds", "seconds"),
    ("tial", "tail"), ("seeed", "seed"), ("camra", "camera"), ("lfet", "left"), ("backgrund", "background"),
    ("partciles", "particles"), ("flwoing", "flowing"),
])
def test_typos_are_read(typo, word):
    assert S.suggest(typo) == word


@pytest.mark.parametrize("word", [
    "tall", "fair", "pair", "cake", "wavy", "shaky", "watery", "distorting", "rubs", "blobs", "flicking",
    "fizzle", "wumpus", "zoo", "sea", "fater",  # real words, too short, or unclear (faster or father?)
])
def test_real_words_short_words_and_unclear_ones_stay(word):
    assert S.suggest(word) is None


def test_correct_reports_what_it_read():
    text, fixes = S.correct("make the hiar flow slowy")
    assert text == "make the hair flow slowly" and fixes == [("hiar", "hair"), ("slowy", "slowly")]
    assert S.read_note(fixes) == "I read “hiar” as “hair”, “slowy” as “slowly”"


def test_correcting_is_linear_in_the_message():
    words = " ".join("".join(random.Random(i).choices(string.ascii_lowercase, k=8)) for i in range(2000))
    started = time.perf_counter()
    S.correct(words + " " + "x" * 5000)
    assert time.perf_counter() - started < 2.0


@pytest.mark.parametrize("message,english,lang", [
    ("haz que el pelo se mueva más lento", "make the hair move slower", "es"),
    ("zoom avant sur les cheveux", "zoom in on the hair", "fr"),
    ("schwenk nach links und 4 sekunden", "pan to the left and 4 seconds", "de"),
    ("nova semente", "new seed", "pt"),
    ("più veloce per favore", "faster please", "it"),
    ("头发慢一点", "hair slower", "zh"),
    ("deshacer", "undo", "es"),
    ("the flowers die in the den", "the flowers die in the den", "en"),  # "die", "den": little words tell nothing
    ("a can of cola", "a can of cola", "en"),
])
def test_languages_are_told_and_read(message, english, lang):
    assert translate(normalize(message)) == (english, lang)


def test_the_reply_follows_only_a_message_written_throughout():
    assert writes_throughout(normalize("nueva semilla"), "es")
    assert not writes_throughout(normalize("make the tail move más rápido please"), "es")
    assert translate_reply("Hair 40% slower, new seed 7.", "es") == "Pelo un 40% más lento, nueva semilla 7."
    assert translate_reply("Tail moves 25% less.", "de") == "Schwanz bewegt sich 25 % weniger."
    assert translate_reply("Hair 40% slower.", "en") == "Hair 40% slower."
