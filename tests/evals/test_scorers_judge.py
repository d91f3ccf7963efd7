"""LLM-as-judge scorers against a real OpenAI-protocol HTTP server (tests/gateway/fake_upstream.py),
called through the official `openai` client: verdict parsing, retry on unparseable output, give-up,
templates and the prompt_source hook, claim-based faithfulness, G-Eval steps, agreement with humans."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from podium.evals import JudgeError, JudgeTemplate, Score, ScorerConfigError, get_scorer, stats
from podium.evals.scorers.judge import parse_list, parse_verdict, parse_verdicts
from podium.evals.scorers.templates import BUILTIN_TEMPLATES
from tests.gateway.fake_upstream import Fail, FakeUpstream, Reply


@pytest.fixture(scope="module")
def up() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    yield server
    server.stop()


@pytest.fixture
def client(up: FakeUpstream) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=up.base_url, api_key="sk-test", max_retries=0)
    yield c
    c.close()


_n = 0


def model_name() -> str:
    """A fresh model alias per test, so scripts and recorded requests never mix."""
    global _n
    _n += 1
    return f"judge-{_n}"


def _verdict(score: Any, reasoning: str = "because") -> Reply:
    return Reply(json.dumps({"reasoning": reasoning, "score": score}))


# --- rubric: the happy path, what is sent ----------------------------------------------------


def test_rubric_verdict_is_normalised_and_recorded(up: FakeUpstream, client: openai.OpenAI) -> None:
    m = model_name()
    up.script(m, _verdict(4, "Polite and answers the question."))
    s = get_scorer("llm-rubric", value="The reply is polite.", judge=client, model=m)
    r = s(input="Where is my order?", output="It ships tomorrow, thank you for waiting!")
    assert r.value == pytest.approx(0.75) and r.passed is True  # (4 - 1) / (5 - 1), threshold 0.5
    assert r.explanation == "Polite and answers the question. (0.75 >= threshold 0.5)"
    assert r.metadata == {"template": "judge.rubric", "template_version": 1, "model": m, "attempts": 1,
                          "raw_score": 4.0, "score_range": [1.0, 5.0]}
    (body,) = up.bodies(m)
    assert body["temperature"] == 0.0 and body["max_tokens"] == 512
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"]["properties"]["score"]["enum"] == [1, 2, 3, 4, 5]
    user = body["messages"][1]["content"]
    assert "Rubric:\nThe reply is polite." in user
    assert "Input given to the assistant:\nWhere is my order?" in user
    assert "Output to grade:\nIt ships tomorrow" in user


def test_missing_input_is_rendered_as_not_given(up: FakeUpstream, client: openai.OpenAI) -> None:
    m = model_name()
    up.script(m, _verdict(1))
    r = get_scorer("llm-rubric", value="mentions a price", judge=client, model=m)(output="{{rubric}} hello")
    assert r.value == 0.0 and r.passed is False  # a real low score, not an error
    user = up.bodies(m)[0]["messages"][1]["content"]
    assert "Input given to the assistant:\n(not given)" in user
    assert "Output to grade:\n{{rubric}} hello" in user  # substituted text is never expanded again


@pytest.mark.parametrize(
    ("reply", "score", "reasoning"),
    [
        ('```json\n{"score": 5, "reasoning": "great"}\n```', 5.0, "great"),
        ('Sure! Here is my verdict: {"Reasoning": "ok", "Score": "3"} Hope it helps.', 3.0, "ok"),
        ('{"reasoning": "fine", "score": "4/5"}', 4.0, "fine"),
        ('{"reasoning": "cut off mid-sen', None, None),  # no score at all
        ('{"score": 2, "reasoning": "truncated reason', 2.0, "truncated reason"),  # the score survived
        ("<think>hmm, score: 1?</think>Score: 4", 4.0, ""),
        ('{"score": 2.5, "reasoning": "between"}', 2.5, "between"),
    ],
)
def test_parse_verdict_is_forgiving_but_never_guesses(reply: str, score: float | None, reasoning: str | None) -> None:
    from podium.evals.scorers.judge import UnparseableVerdict

    if score is None:
        with pytest.raises(UnparseableVerdict):
            parse_verdict(reply, (1, 5))
    else:
        assert parse_verdict(reply, (1, 5)) == (score, reasoning)


def test_parse_rejects_out_of_scale_and_non_numeric_scores() -> None:
    from podium.evals.scorers.judge import UnparseableVerdict

    with pytest.raises(UnparseableVerdict, match="outside the scale 1 to 5"):
        parse_verdict('{"score": 7, "reasoning": "x"}', (1, 5))
    with pytest.raises(UnparseableVerdict, match="must be a number"):
        parse_verdict('{"score": "excellent", "reasoning": "x"}', (1, 5))
    with pytest.raises(UnparseableVerdict, match="empty"):
        parse_verdict("   ", (1, 5))
    assert parse_list('{"claims": ["a", {"claim": "b"}, " "]}', "claims") == ["a", "b"]
    assert parse_verdicts('{"verdicts": [{"claim": 2, "supported": "no"}, {"claim": 1, "supported": true}]}', 2) == [
        (True, ""), (False, "")]
    with pytest.raises(UnparseableVerdict, match="expected 3 verdicts"):
        parse_verdicts('{"verdicts": [{"supported": true}]}', 3)


# --- retry and give-up ----------------------------------------------------------------------


def test_unparseable_output_is_retried_with_the_problem_explained(up: FakeUpstream, client: openai.OpenAI) -> None:
    m = model_name()
    up.script(m, Reply("I think this answer is pretty good overall."), _verdict(9), _verdict(2, "weak"))
    s = get_scorer("llm-rubric", value="is correct", judge=client, model=m, max_retries=2)
    r = s(output="42")
    assert r.value == pytest.approx(0.25) and r.metadata["attempts"] == 3
    bodies = up.bodies(m)
    assert len(bodies) == 3
    first, second, third = (b["messages"] for b in bodies)
    assert len(first) == 2
    assert second[:2] == first and second[2] == {"role": "assistant", "content": "I think this answer is pretty good overall."}
    assert second[3]["role"] == "user" and "no score found" in second[3]["content"]
    assert third[2]["content"] == json.dumps({"reasoning": "because", "score": 9})
    assert "outside the scale 1 to 5" in third[3]["content"]


def test_give_up_raises_judge_error_never_a_silent_zero(up: FakeUpstream, client: openai.OpenAI) -> None:
    m = model_name()
    up.script(m, Reply("nope"), Reply("still no"), Reply("{}"))
    s = get_scorer("llm-rubric", value="is correct", judge=client, model=m, max_retries=2)
    with pytest.raises(JudgeError) as ei:
        s(output="42")
    err = ei.value
    assert err.attempts == 3 and err.raw_outputs == ["nope", "still no", "{}"]
    assert "no usable verdict in 3 attempt(s)" in str(err) and err.code == "judge_error"
    assert len(up.bodies(m)) == 3
    # in a batch, the error is recorded in the item's slot and the next item is scored
    up.script(m, Reply("x"), Reply("y"), Reply("z"), _verdict(5))
    res = s.score_batch([{"output": "a"}, {"output": "b"}])
    assert isinstance(res[0], JudgeError) and res[0].scorer == "llm-rubric"
    assert isinstance(res[1], Score) and res[1].value == 1.0


def test_no_retries_when_max_retries_is_zero(up: FakeUpstream, client: openai.OpenAI) -> None:
    m = model_name()
    up.script(m, Reply("garbage"), _verdict(5))
    with pytest.raises(JudgeError, match="1 attempt"):
        get_scorer("fluency", judge=client, model=m, max_retries=0)(output="Hello.")
    assert len(up.bodies(m)) == 1


def test_a_failed_call_is_a_judge_error_at_once(up: FakeUpstream, client: openai.OpenAI) -> None:
    m = model_name()
    up.script(m, Fail(500, "upstream exploded"))
    res = get_scorer("coherence", judge=client, model=m).score_batch([{"output": "Text."}])
    assert isinstance(res[0], JudgeError) and "the judge call to model" in str(res[0])
    assert isinstance(res[0].__cause__, openai.InternalServerError)
    assert len(up.bodies(m)) == 1  # transport retries are the client's job


# --- the other judges -----------------------------------------------------------------------


def test_factuality_relevance_coherence_fluency_render_their_fields(up: FakeUpstream, client: openai.OpenAI) -> None:
    cases = [
        ("factuality", {"input": "Capital of France?", "output": "Lyon", "expected": "Paris"},
         ["Reference answer (treat it as correct):\nParis", "Answer to check:\nLyon"]),
        ("answer-relevance", {"input": "Capital of France?", "output": "I like trains."},
         ["Question:\nCapital of France?", "Answer:\nI like trains."]),
        ("coherence", {"output": "First. Then. Finally."}, ["Text to rate:\nFirst. Then. Finally."]),
        ("fluency", {"output": "Me go store yesterday."}, ["Text to rate:\nMe go store yesterday."]),
    ]
    for type_name, item, snippets in cases:
        m = model_name()
        up.script(m, _verdict(3))
        r = get_scorer(type_name, judge=client, model=m).score(item)
        assert r.value == 0.5 and r.metadata["template"] == f"judge.{type_name}", type_name
        user = up.bodies(m)[0]["messages"][1]["content"]
        for snip in snippets:
            assert snip in user, (type_name, snip)
    from podium.evals import MissingField

    with pytest.raises(MissingField, match="`expected`"):
        get_scorer("factuality", judge=client, model="x")(output="Lyon")
    with pytest.raises(MissingField, match="`input`"):
        get_scorer("answer-relevance", judge=client, model="x")(output="Lyon")


def test_context_faithfulness_checks_each_claim(up: FakeUpstream, client: openai.OpenAI) -> None:
    m = model_name()
    claims = ["Paris is the capital of France.", "Paris has 90 million residents.", "Paris is in Europe."]
    up.script(
        m,
        Reply(json.dumps({"claims": claims})),
        Reply(json.dumps({"verdicts": [{"claim": 1, "supported": True}]})),  # wrong count: retried
        Reply(json.dumps({"verdicts": [
            {"claim": 1, "reasoning": "stated", "supported": True},
            {"claim": 2, "reasoning": "context says 2.1 million", "supported": False},
            {"claim": 3, "reasoning": "implied", "supported": True},
        ]})),
    )
    s = get_scorer("context-faithfulness", judge=client, model=m)
    r = s(output="Paris is the capital of France, has 90 million residents and is in Europe.",
          context=["Paris is the capital of France.", {"content": "It has 2.1 million residents and lies in Europe."}])
    assert r.value == pytest.approx(2 / 3) and r.passed is True
    assert "2 of 3 claims supported" in (r.explanation or "") and "90 million" in (r.explanation or "")
    assert [c["supported"] for c in r.metadata["claims"]] == [True, False, True]
    assert r.metadata["attempts"] == 3
    assert r.metadata["templates"] == {"judge.faithfulness-claims": 1, "judge.faithfulness-verdicts": 1}
    bodies = up.bodies(m)
    assert len(bodies) == 3
    verify = bodies[1]["messages"][1]["content"]
    assert "[1] Paris is the capital of France.\n[2] It has 2.1 million residents" in verify
    assert "1. Paris is the capital of France.\n2. Paris has 90 million residents.\n3. Paris is in Europe." in verify


def test_context_faithfulness_without_claims_is_one_call(up: FakeUpstream, client: openai.OpenAI) -> None:
    m = model_name()
    up.script(m, Reply('{"claims": []}'))
    r = get_scorer("context-faithfulness", judge=client, model=m)(output="Hello!", context="anything")
    assert (r.value, r.explanation) == (1.0, "the output makes no factual claims (1 >= threshold 0.5)")
    assert len(up.bodies(m)) == 1


def test_g_eval_generates_steps_once(up: FakeUpstream, client: openai.OpenAI) -> None:
    m = model_name()
    up.script(m, Reply('{"steps": ["Read the question.", "Check the answer is concise."]}'), _verdict(5), _verdict(2))
    s = get_scorer("g-eval", value="Conciseness: the answer has no filler.", judge=client, model=m)
    res = s.score_batch([{"output": "Paris."}, {"output": "Well, so, um, it is Paris I think."}])
    assert [r.value for r in res] == [1.0, 0.25]  # type: ignore[union-attr]
    bodies = up.bodies(m)
    assert len(bodies) == 3  # one steps call, then one per item
    assert bodies[0]["response_format"]["json_schema"]["name"] == "judge_g-eval-steps"
    assert "1. Read the question.\n2. Check the answer is concise." in bodies[1]["messages"][1]["content"]
    assert res[0].metadata["steps"] == ["Read the question.", "Check the answer is concise."]  # type: ignore[union-attr]
    m2 = model_name()
    up.script(m2, _verdict(4))
    given = get_scorer("g-eval", value="Accuracy", steps=["Compare with the expected answer."], judge=client, model=m2)
    assert given(output="x", expected="y").value == 0.75 and len(up.bodies(m2)) == 1


# --- templates as data, prompt_source, client kinds -----------------------------------------


def test_prompt_source_supplies_a_versioned_template(up: FakeUpstream, client: openai.OpenAI) -> None:
    m = model_name()
    up.script(m, _verdict(2))
    asked: list[str] = []

    def source(name: str) -> dict[str, Any] | None:
        asked.append(name)
        return {"name": "team-rubric", "version": 7,
                "messages": [{"role": "user", "content": "Grade {{output}} against {{rubric}} as JSON."}]}

    s = get_scorer("llm-rubric", value="be brief", judge=client, model=m, prompt_source=source)
    r = s(output="ok")
    assert r.metadata["template"] == "team-rubric" and r.metadata["template_version"] == 7
    assert up.bodies(m)[0]["messages"] == [{"role": "user", "content": "Grade ok against be brief as JSON."}]
    up.script(m, _verdict(2))
    s(output="again")
    assert asked == ["judge.rubric"]  # resolved once per scorer: one run, one prompt version
    bad = get_scorer("llm-rubric", value="x", judge=client, model=m,
                     prompt_source=lambda name: {"messages": [{"role": "user", "content": "{{nonsense}}"}]})
    with pytest.raises(ScorerConfigError, match=r"uses \{\{nonsense\}\}"):
        bad(output="ok")
    keep = get_scorer("fluency", judge=client, model=m, prompt_source=lambda name: None)
    up.script(m, _verdict(5))
    assert keep(output="Fine.").metadata["template"] == "judge.fluency"


def test_prompt_source_may_return_a_registry_prompt() -> None:
    from dataclasses import dataclass, field

    @dataclass
    class RegistryPrompt:  # the shape of a prompt-registry prompt: name, prompt, version, config
        name: str
        prompt: Any
        version: int
        config: dict[str, Any] = field(default_factory=dict)

    seen: list[Any] = []
    registry = {"judge.fluency": RegistryPrompt(
        "judge.fluency", [{"role": "user", "content": "Rate {{ output }} from 0 to 10 as JSON."}], 12,
        {"score_range": [0, 10]})}

    def chat(messages: Any, **kw: Any) -> str:
        seen.append((messages, kw))
        return '{"score": 7, "reasoning": "fine"}'

    r = get_scorer("fluency", judge=chat, prompt_source=registry.get)(output="Hello there.")
    assert r.value == pytest.approx(0.7) and r.metadata["template_version"] == 12
    assert seen[0][0] == [{"role": "user", "content": "Rate Hello there. from 0 to 10 as JSON."}]
    # a new scale without its own schema gets a matching one (constrained decoding must allow 0..10)
    assert seen[0][1]["response_format"]["json_schema"]["schema"]["properties"]["score"]["enum"] == list(range(11))


def test_templates_are_plain_data() -> None:
    for name, tpl in BUILTIN_TEMPLATES.items():
        data = tpl.to_dict()
        assert json.loads(json.dumps(data)) == data  # JSON-able, storable in a prompt registry
        assert JudgeTemplate.from_dict(data) == tpl, name
        assert tpl.version == 1 and tpl.messages[0]["role"] == "system"
    rubric = BUILTIN_TEMPLATES["judge.rubric"]
    assert rubric.placeholders == {"rubric", "input", "output"}
    msgs = rubric.render({"rubric": "R", "input": "I", "output": "O {{input}}"})
    assert msgs[1]["content"].endswith("Output to grade:\nO {{input}}\n\nHow well does the output satisfy the rubric? "
                                       "1 = not at all, 2 = mostly not, 3 = partly, 4 = mostly, 5 = fully. "
                                       "Reply with only the JSON object.")
    no_scale = JudgeTemplate(name="t", version=1, messages=({"role": "user", "content": "Rate {{output}}"},))
    with pytest.raises(ScorerConfigError, match="needs a `score_range`"):
        get_scorer("llm-rubric", value="x", judge=lambda messages: "", template=no_scale)
    t = JudgeTemplate.from_dict({"messages": "Rate {{output}} from 0 to 10", "score_range": [0, 10], "version": 3})
    assert t.messages == ({"role": "user", "content": "Rate {{output}} from 0 to 10"},) and t.version == 3


def test_template_override_with_another_scale() -> None:
    seen: list[list[dict[str, str]]] = []

    def chat(messages: list[dict[str, str]]) -> str:  # no **kw: only what it declares is passed
        seen.append(messages)
        return '{"score": 8, "reasoning": "good"}'

    s = get_scorer("fluency", judge=chat, template={"name": "fluency-10", "version": 2,
                                                    "messages": "Rate {{output}} 0-10", "score_range": [0, 10]})
    r = s(output="Nice text.")
    assert r.value == pytest.approx(0.8) and r.metadata["raw_score"] == 8.0 and r.metadata["template_version"] == 2
    assert seen == [[{"role": "user", "content": "Rate Nice text. 0-10"}]]


def test_chat_callable_receives_supported_options_and_may_return_a_completion_dict() -> None:
    got: dict[str, Any] = {}

    def chat(messages: list[dict[str, str]], **kw: Any) -> dict[str, Any]:
        got.update(kw)
        return {"choices": [{"message": {"role": "assistant", "content": '{"score": 5, "reasoning": "r"}'}}]}

    r = get_scorer("fluency", judge=chat, model="gw-alias", seed=7, response_format="json_object")(output="Hi there.")
    assert r.value == 1.0
    assert got == {"model": "gw-alias", "temperature": 0.0, "max_tokens": 512, "seed": 7,
                   "response_format": {"type": "json_object"}}
    plain: dict[str, Any] = {}
    get_scorer("fluency", judge=lambda messages, **kw: plain.update(kw) or '{"score": 1}', response_format=None)(
        output="x")
    assert "response_format" not in plain
    with pytest.raises(ScorerConfigError, match="`judge` must be"):
        get_scorer("fluency", judge=42)
    with pytest.raises(ScorerConfigError, match="`response_format`"):
        get_scorer("fluency", judge=lambda m: "", response_format="yaml")


def test_judge_scores_agree_with_human_labels(up: FakeUpstream, client: openai.OpenAI) -> None:
    m = model_name()
    raw = [5, 4, 1, 2, 5, 3, 1, 4]
    up.script(m, *[_verdict(x) for x in raw])
    s = get_scorer("llm-rubric", value="is helpful", judge=client, model=m)
    scores = s.score_batch([{"output": f"answer {i}"} for i in range(len(raw))])
    human_pass = [True, True, False, False, True, False, False, False]
    judge_pass = [sc.passed for sc in scores]  # type: ignore[union-attr]
    agree = stats.judge_agreement(judge_pass, human_pass)
    # judge: T T F F T T F T (>= 3 passes); human: T T F F T F F F -> 6/8 agree
    # p_o = 0.75; judge yes 5/8, human yes 3/8: p_e = (5*3 + 3*5) / 64 = 30/64 -> kappa = (0.75 - 0.46875) / 0.53125
    assert agree.kind == "categorical" and agree.accuracy == 0.75
    assert agree.kappa == pytest.approx((0.75 - 30 / 64) / (1 - 30 / 64))
    human_rating = [5, 5, 1, 1, 4, 2, 2, 3]
    rho = stats.judge_agreement([sc.metadata["raw_score"] for sc in scores], human_rating)  # type: ignore[union-attr]
    assert rho.kind == "numeric" and rho.spearman == pytest.approx(0.839506172839506, abs=1e-12)  # scipy.stats.spearmanr


@pytest.mark.slow
def test_local_model_judge_always_gives_a_parseable_verdict() -> None:
    """The bundled SmolLM2 as judge (called in-process): JSON-schema constrained decoding makes its
    verdict parseable on the first attempt. (Its judgement is weak; that is not what this checks.)"""
    from podium.evals.scorers.perplexity import default_language_model

    model = default_language_model()
    s = get_scorer("answer-relevance", judge=model, max_tokens=128)
    r = s(input="What is the capital of France?", output="The capital of France is Paris.")
    assert r.metadata["attempts"] == 1 and r.metadata["raw_score"] in {1, 2, 3, 4, 5}
    assert 0.0 <= r.value <= 1.0  # type: ignore[operator]
