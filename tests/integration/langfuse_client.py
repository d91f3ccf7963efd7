"""A Langfuse SDK user's program, run by tests/integration/test_langfuse.py in a subprocess with
the real ``langfuse`` package (v3 in the project's venv, v5 in its own) against a Podium server.

Environment: LANGFUSE_PUBLIC_KEY, LANGFUSE_SECRET_KEY, LANGFUSE_HOST, TAG (makes names unique).
Prints one JSON object with what it did (ids, fetched values) on its last stdout line.
"""

from __future__ import annotations

import json
import os
from importlib.metadata import version

from langfuse import Langfuse, observe, propagate_attributes

MAJOR = int(version("langfuse").split(".")[0])
TAG = os.environ["TAG"]
HOST = os.environ["LANGFUSE_HOST"]
if MAJOR >= 4:
    lf = Langfuse(public_key=os.environ["LANGFUSE_PUBLIC_KEY"], secret_key=os.environ["LANGFUSE_SECRET_KEY"],
                  base_url=HOST)
else:
    lf = Langfuse(public_key=os.environ["LANGFUSE_PUBLIC_KEY"], secret_key=os.environ["LANGFUSE_SECRET_KEY"],
                  host=HOST)
out: dict = {"major": MAJOR}

# --- auth_check() from the quickstart ---------------------------------------------------------------
out["auth_check"] = lf.auth_check()


# --- tracing with @observe --------------------------------------------------------------------------
@observe(name="retrieve")
def retrieve(question: str) -> list[str]:
    lf.update_current_span(metadata={"step": "retrieval", "k": 2})
    return ["Paris is the capital of France."]


@observe(name="llm-call", as_type="generation")
def call_llm(question: str, docs: list[str]) -> str:
    lf.update_current_generation(
        model="gpt-4o-mini",
        usage_details={"input": 12, "output": 3},
        cost_details={"input": 0.0012, "output": 0.0006},
    )
    return "Paris"


@observe(name="qa-pipeline")
def pipeline(question: str, secret: str) -> str:
    with propagate_attributes(user_id="user-7", session_id=f"sess-{TAG}", metadata={"feature": "qa"}):
        docs = retrieve(question)
        answer = call_llm(question, docs)
        if MAJOR == 3:
            # Explicit trace input/output: must win over the root function's arguments.
            lf.update_current_trace(input={"question": question}, output={"answer": answer})
        out["trace_id"] = lf.get_current_trace_id()
        return answer


pipeline("What is the capital of France?", "do-not-show")

# --- scores -----------------------------------------------------------------------------------------
lf.create_score(name="correctness", value=0.9, trace_id=out["trace_id"], comment="checked by hand")
lf.create_score(name="verdict", value="good", data_type="CATEGORICAL", trace_id=out["trace_id"])

# --- prompts ----------------------------------------------------------------------------------------
pname = f"team/qa-{TAG}"  # a folder: the SDK URL-encodes the slash
lf.create_prompt(name=pname, prompt="Answer {{question}} briefly.", labels=["production"],
                 config={"model": "gpt-4o-mini", "temperature": 0})
lf.create_prompt(name=pname, prompt="Answer {{question}} in one word.", labels=[])
p = lf.get_prompt(pname, label="production")
out["prompt"] = {"version": p.version, "compiled": p.compile(question="the capital of France"),
                 "config": p.config}
latest = lf.get_prompt(pname, label="latest", cache_ttl_seconds=0)
out["prompt_latest_version"] = latest.version
lf.update_prompt(name=pname, version=2, new_labels=["staging"])
chat_name = f"chat-{TAG}"
lf.create_prompt(name=chat_name, type="chat", labels=["production"], prompt=[
    {"role": "system", "content": "You are {{persona}}."},
    {"role": "user", "content": "{{question}}"},
])
chat = lf.get_prompt(chat_name, type="chat")
out["chat"] = chat.compile(persona="terse", question="Hi?")
missing = lf.get_prompt(f"missing-{TAG}", fallback="fallback text", max_retries=0, fetch_timeout_seconds=5)
out["fallback"] = missing.prompt

# --- datasets and an experiment ---------------------------------------------------------------------
dname = f"capitals-{TAG}"
lf.create_dataset(name=dname, description="capital cities", metadata={"owner": "qa"})
for country, city in (("France", "Paris"), ("Italy", "Rome")):
    lf.create_dataset_item(dataset_name=dname, input={"country": country}, expected_output=city,
                           metadata={"region": "EU"})
dataset = lf.get_dataset(dname)
out["dataset_items"] = sorted(i.input["country"] for i in dataset.items)


def task(*, item, **kwargs):
    return {"France": "Paris", "Italy": "Milan"}[item.input["country"]]


def exact(*, input, output, expected_output=None, **kwargs):
    from langfuse import Evaluation

    return Evaluation(name="exact", value=1.0 if output == expected_output else 0.0)


result = dataset.run_experiment(name=f"run-{TAG}", run_name=f"run-{TAG}", task=task, evaluators=[exact])
out["experiment"] = sorted(
    (r.item.input["country"], r.output, r.evaluations[0].value, r.trace_id) for r in result.item_results
)

lf.flush()
lf.shutdown()
print(json.dumps(out))
