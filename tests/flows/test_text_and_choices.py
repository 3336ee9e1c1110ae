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
