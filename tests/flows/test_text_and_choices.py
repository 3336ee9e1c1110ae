import difflib
from difflib import SequenceMatcher

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.choices import Option, match
from flows.text import as_number, clean_input, fold

OPTIONS = (
    Option("language", "Language"),
    Option("country", "Country"),
    Option("delete", "Delete my data", ("erase",)),
)


def test_fold_makes_typed_variants_equal() -> None:
    assert fold("  STOP! ") == fold("stop") == fold("/stop@HotlineBot") == "stop"
    assert fold("Стоп.") == "стоп"
    assert fold("o‘zbek") == fold("o'zbek") == fold("oʻzbek")
    assert fold("إلغاء") == fold("الغاء")  # hamza on alef is often left out
    assert fold("йод") == "йод"  # й keeps its breve


def test_numbers_in_any_script() -> None:
    assert as_number("2.") == 2
    assert as_number(" ٣ ") == 3  # Arabic-Indic digit
    assert as_number("2 please") is None
    assert as_number("") is None


def test_clean_input_removes_what_cannot_be_stored() -> None:
    assert clean_input("a\x00b\ud800c") == "ab?c"


def test_match_by_button_number_label_synonym_and_typo() -> None:
    assert match(OPTIONS, None, "country") == "country"
    assert match(OPTIONS, None, "gone") is None  # a stale button
    assert match(OPTIONS, "3", None) == "delete"
    assert match(OPTIONS, "4", None) is None
    assert match(OPTIONS, "country", None) == "country"
    assert match(OPTIONS, "ERASE", None) == "delete"
    assert match(OPTIONS, "langauge", None) == "language"  # a typing error
    assert match(OPTIONS, "xyz", None) is None
    assert match(OPTIONS, "", None) is None


def test_fold_of_long_runs_is_still_exact() -> None:
    # The shapes that once took seconds: a punctuation run inside, long runs of marks.
    assert fold("!" * 5000 + "Stop" + "?" * 5000) == "stop"
    assert fold("a" + "!" * 9998 + "b") == "a" + "!" * 9998 + "b"
    assert fold("a" + "\u0301\u0316" * 5000 + "b") == "ab"
    assert fold("\u0f73" * 10_000) == ""  # Tibetan vowel signs: marks once decomposed
    # A few marks in a row are text (Zalgo aside): they fold as before.
    assert fold("e" + "\u0301" * 30) == "e" and fold("и" + "\u0306") == "й"


def test_a_long_message_never_reaches_the_typo_matcher(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[str, str]] = []
    ratio = SequenceMatcher.ratio

    def spy(self: SequenceMatcher) -> float:  # type: ignore[type-arg]
        compared.append((self.a, self.b))
        return ratio(self)

    monkeypatch.setattr(difflib.SequenceMatcher, "ratio", spy)
    assert match(OPTIONS, "langauge", None) == "language"
    assert compared, "a typo of a label is compared"
    compared.clear()
    assert match(OPTIONS, "language country " * 600, None) is None
    assert match(OPTIONS, "Langu" + "a" * 10_000 + "ge", None) is None
    assert compared == []


def reference_match(options: tuple[Option, ...], text: str) -> str | None:
    """match() as first written, for text: every key compared in full."""
    number = as_number(text)
    if number is not None:
        return options[number - 1].id if 1 <= number <= len(options) else None
    key = fold(text)
    keyed = {o.id: o.keys() for o in options}
    exact = [option_id for option_id, keys in keyed.items() if key in keys]
    if not key or len(exact) == 1:
        return exact[0] if key else None
    if len(key) < 4:
        return None
    scored = sorted(((max(SequenceMatcher(None, key, k).ratio() for k in keys), option_id)
                     for option_id, keys in keyed.items()), reverse=True)
    return scored[0][1] if scored[0][0] >= 0.8 and scored[1][0] < scored[0][0] else None


@st.composite
def typed_labels(draw: st.DrawFn) -> str:
    """A label or synonym with a few letters added or left out, or anything at all."""
    text = list(draw(st.sampled_from(["Language", "country", "Delete my data", "erase", ""])))
    for _ in range(draw(st.integers(0, 5))):
        at = draw(st.integers(0, len(text)))
        if at < len(text) and draw(st.booleans()):
            del text[at]
        else:
            text.insert(at, draw(st.sampled_from("aeiolnrstuy !2")))
    return "".join(text)


@given(st.one_of(typed_labels(), st.text(max_size=30)))
def test_pruning_changes_no_decision(text: str) -> None:
    assert match(OPTIONS, text, None) == reference_match(OPTIONS, text)
