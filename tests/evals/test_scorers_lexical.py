"""Lexical scorers against independently computed references: sacrebleu's own CLI for BLEU and
chrF, Google's rouge-score called directly (and by hand), hand-computed token F1 and edit distances.

sacrebleu and rouge-score are the `eval` extra; when they are missing these tests fail with the
pin to install (they do not skip).
"""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from podium.evals import get_scorer
from podium.evals.scorers.lexical import levenshtein, normalize_answer, normalized_edit_distance, token_f1

PAIRS = [  # (hypothesis, reference)
    ("the cat sat on a mat", "the cat sat on the mat"),
    ("hello there world", "hello world"),
    ("A quick brown fox jumped over the lazy dog!", "The quick brown fox jumps over the lazy dog."),
    ("Paris is the capital of France.", "The capital of France is Paris."),
    ("completely unrelated words here", "the cat sat on the mat"),
    ("", "a non-empty reference"),
    ("Die Katze sitzt auf der Matte.", "Die Katze saß auf der Matte."),
    ("東京は日本の首都です。", "日本の首都は東京です。"),
]
REFS2 = [  # a second reference per pair, for multi-reference scoring
    "a cat was sitting on the mat",
    "hello, world",
    "A fast brown fox leaps over a lazy dog.",
    "France's capital is Paris.",
    "a cat on a mat",
    "another reference",
    "Eine Katze saß auf einer Matte.",
    "東京が日本の首都です。",
]


def _sacrebleu_cli() -> Path:
    exe = Path(sys.executable).parent / "sacrebleu"
    found = exe if exe.exists() else (Path(p) if (p := shutil.which("sacrebleu")) else None)
    if found is None:
        pytest.fail("the sacrebleu CLI is not installed in this environment: install the eval extra "
                    "(`pip install 'podium[eval]'`, i.e. 'sacrebleu>=2.4,<3')")
    return found


def _cli_scores(tmp_path: Path, metric: str, hyps: list[str], *ref_sets: list[str], extra: tuple[str, ...] = ()) -> list[float]:
    """Sentence-level scores from `sacrebleu REF... -i HYP -m METRIC -sl -b` (its own CLI)."""
    hyp_file = tmp_path / "hyp.txt"
    hyp_file.write_text("\n".join(hyps) + "\n", encoding="utf-8")
    ref_files = []
    for i, refs in enumerate(ref_sets):
        f = tmp_path / f"ref{i}.txt"
        f.write_text("\n".join(refs) + "\n", encoding="utf-8")
        ref_files.append(str(f))
    out = subprocess.run(
        [str(_sacrebleu_cli()), *ref_files, "-i", str(hyp_file), "-m", metric, "-sl", "-b", "-w", "10", *extra],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return [float(line) / 100 for line in out.stdout.split()]


def test_bleu_matches_sacrebleu_cli_sentence_level(tmp_path: Path) -> None:
    hyps, refs = [h for h, _ in PAIRS], [r for _, r in PAIRS]
    want = _cli_scores(tmp_path, "bleu", hyps, refs)
    s = get_scorer("bleu")
    got = [x.value for x in s.score_batch([{"output": h, "expected": r} for h, r in PAIRS])]  # type: ignore[union-attr]
    assert got == pytest.approx(want, abs=1e-9)
    assert want[0] == pytest.approx(0.537284965911771, abs=1e-9)  # sanity: a fixed, known value
    sig = s.score({"output": hyps[0], "expected": refs[0]}).metadata["signature"]
    assert sig.startswith("nrefs:1|case:mixed|eff:yes|tok:13a|smooth:exp|version:")


def test_bleu_multi_reference_and_options_match_the_cli(tmp_path: Path) -> None:
    hyps, refs = [h for h, _ in PAIRS], [r for _, r in PAIRS]
    want = _cli_scores(tmp_path, "bleu", hyps, refs, REFS2)
    got = [get_scorer("bleu")(output=h, expected=[r1, r2]).value for h, r1, r2 in zip(hyps, refs, REFS2, strict=True)]
    assert got == pytest.approx(want, abs=1e-9)
    want_lc = _cli_scores(tmp_path, "bleu", hyps, refs, extra=("-lc", "-tok", "intl", "-s", "floor"))
    s = get_scorer("bleu", lowercase=True, tokenize="intl", smooth_method="floor")
    got_lc = [s(output=h, expected=r).value for h, r in PAIRS]
    assert got_lc == pytest.approx(want_lc, abs=1e-9)


def test_chrf_and_chrf_plus_plus_match_sacrebleu_cli(tmp_path: Path) -> None:
    hyps, refs = [h for h, _ in PAIRS], [r for _, r in PAIRS]
    want = _cli_scores(tmp_path, "chrf", hyps, refs)
    got = [get_scorer("chrf")(output=h, expected=r).value for h, r in PAIRS]
    assert got == pytest.approx(want, abs=1e-9)
    want_pp = _cli_scores(tmp_path, "chrf", hyps, refs, extra=("--chrf-word-order", "2"))
    got_pp = [get_scorer("chrf", word_order=2)(output=h, expected=r).value for h, r in PAIRS]
    assert got_pp == pytest.approx(want_pp, abs=1e-9)
    want_multi = _cli_scores(tmp_path, "chrf", hyps, refs, REFS2)
    got_multi = [get_scorer("chrf")(output=h, expected=[r1, r2]).value for h, r1, r2 in zip(hyps, refs, REFS2, strict=True)]
    assert got_multi == pytest.approx(want_multi, abs=1e-9)


def test_bleu_threshold_and_value_as_reference() -> None:
    s = get_scorer("bleu", value="the cat sat on the mat", threshold=0.5)
    assert s.fields == ("output",)
    assert s(output="the cat sat on a mat").passed is True
    assert s(output="a dog").passed is False


def test_rouge_by_hand() -> None:
    # hyp "the cat sat" vs ref "the cat sat on the mat":
    # ROUGE-1: 3 common unigrams, P = 3/3, R = 3/6 -> F = 2/3; ROUGE-2: 2 common bigrams, P = 2/2, R = 2/5 -> F = 4/7;
    # ROUGE-L: LCS = 3 -> F = 2/3.
    item = {"output": "the cat sat", "expected": "the cat sat on the mat"}
    assert get_scorer("rouge-1").score(item).value == pytest.approx(2 / 3)
    assert get_scorer("rouge-2").score(item).value == pytest.approx(4 / 7)
    assert get_scorer("rouge-l").score(item).value == pytest.approx(2 / 3)
    assert get_scorer("rouge-1", measure="recall").score(item).value == pytest.approx(0.5)
    assert get_scorer("rouge-2", measure="precision").score(item).value == pytest.approx(1.0)
    # stemming is on: "cats"/"cat" and "sitting"/"sit" match
    assert get_scorer("rouge-1")(output="cats sitting", expected="cat sit").value == pytest.approx(1.0)
    assert get_scorer("rouge-1", stemmer=False)(output="cats sitting", expected="cat sit").value == 0.0


def test_rouge_matches_rouge_score_directly() -> None:
    from rouge_score import rouge_scorer

    ref_scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    for h, r in PAIRS:
        want = ref_scorer.score(r, h)
        for t, key in (("rouge-1", "rouge1"), ("rouge-2", "rouge2"), ("rouge-l", "rougeL"), ("rouge-lsum", "rougeLsum")):
            assert get_scorer(t)(output=h, expected=r).value == pytest.approx(want[key].fmeasure, abs=1e-12), (t, h)
    multi = ref_scorer.score_multi([PAIRS[2][1], REFS2[2]], PAIRS[2][0])["rougeL"].fmeasure
    assert get_scorer("rouge-l")(output=PAIRS[2][0], expected=[PAIRS[2][1], REFS2[2]]).value == pytest.approx(multi)


def test_rouge_unicode_tokenizer_handles_non_latin_text() -> None:
    item = {"output": "Москва столица России", "expected": "Столица России Москва"}
    assert get_scorer("rouge-1").score(item).value == 0.0  # rouge-score's default tokenizer drops Cyrillic
    assert get_scorer("rouge-1", tokenizer="unicode").score(item).value == pytest.approx(1.0)
    assert get_scorer("rouge-l", tokenizer="unicode").score(item).value == pytest.approx(2 / 3)  # LCS "столица россии"


def test_token_f1_and_exact_match_by_hand() -> None:
    # normalisation: lowercase, strip punctuation, drop articles, collapse spaces
    assert normalize_answer("The  Eiffel Tower, in Paris!") == "eiffel tower in paris"
    # pred {eiffel, tower}, gold {eiffel, tower, in, paris}: P = 1, R = 1/2 -> F1 = 2/3
    assert token_f1("the Eiffel Tower", "Eiffel Tower, in Paris") == pytest.approx(2 / 3)
    # repeated tokens count with multiplicity: pred [a1 x3] vs gold [a1 x1]: same = 1, P = 1/3, R = 1 -> 0.5
    assert token_f1("yes yes yes", "yes") == pytest.approx(0.5)
    assert token_f1("", "") == 1.0 and token_f1("the", "") == 1.0  # both normalise to empty: agree (SQuAD v2)
    assert token_f1("nothing", "else") == 0.0
    s = get_scorer("token-f1")
    assert s(output="Eiffel Tower", expected=["The Louvre", "the eiffel tower"]).value == 1.0  # best reference
    em = get_scorer("exact-match")
    assert em(output="The Eiffel Tower.", expected="eiffel tower").passed is True
    assert em(output="Eiffel", expected="eiffel tower").passed is False


def _naive_levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_edit_distance_by_hand_and_against_the_textbook_dp() -> None:
    assert levenshtein("kitten", "sitting") == 3  # k->s, e->i, +g
    assert levenshtein("flaw", "lawn") == 2
    assert levenshtein("", "abc") == 3 and levenshtein("abc", "") == 3 and levenshtein("", "") == 0
    assert levenshtein("café", "cafe") == 1  # code points, not bytes
    assert normalized_edit_distance("kitten", "sitting") == pytest.approx(3 / 7)
    assert normalized_edit_distance("", "") == 0.0
    rng = random.Random(5)
    for _ in range(3000):
        a = "".join(rng.choices("abcé ", k=rng.randint(0, 14)))
        b = "".join(rng.choices("abcé ", k=rng.randint(0, 14)))
        assert levenshtein(a, b) == _naive_levenshtein(a, b), (a, b)
    for _ in range(30):  # past 64 bits: several machine words per bit vector
        a = "".join(rng.choices("abcdefgh", k=rng.randint(60, 220)))
        b = "".join(rng.choices("abcdefgh", k=rng.randint(60, 220)))
        assert levenshtein(a, b) == _naive_levenshtein(a, b)
    ed = get_scorer("edit-distance", threshold=0.2)
    r = ed(output="kitten", expected="sitting")
    assert r.value == pytest.approx(3 / 7) and r.passed is False  # lower is better: threshold is a maximum
    assert ed(output="Kitten", expected="kitten").passed is True
    assert get_scorer("edit-distance", ignore_case=True)(output="KITTEN", expected="kitten").value == 0.0
    lev = get_scorer("levenshtein", threshold=3)
    assert (lev(output="kitten", expected=["sitting", "bitten"]).value, lev(output="kitten", expected="sitting").passed) == (1.0, True)


@pytest.mark.parametrize(
    ("type_name", "module", "pin"),
    [("bleu", "sacrebleu.metrics", "sacrebleu>=2.4,<3"), ("chrf", "sacrebleu.metrics", "sacrebleu>=2.4,<3"),
     ("rouge-l", "rouge_score.rouge_scorer", "rouge-score>=0.1.2,<0.2")],
)
def test_a_missing_library_is_a_configuration_error_naming_the_pin(
    monkeypatch: pytest.MonkeyPatch, type_name: str, module: str, pin: str
) -> None:
    from podium.evals import MissingDependency

    monkeypatch.setitem(sys.modules, module, None)  # import fails as if the package were not installed
    with pytest.raises(MissingDependency) as ei:
        get_scorer(type_name)
    assert pin in str(ei.value) and "pip install 'podium[eval]'" in str(ei.value)
    assert ei.value.code == "missing_dependency"
