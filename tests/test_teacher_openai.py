"""The ``openai`` teacher backend against a real OpenAI-compatible server on loopback.

The server is ``transformers serve`` (``tests/openai_server.py``, started by ``helpers.Server``,
wraps its app to count requests, record them, and inject delays and error answers) serving a
tiny scratch model built here with the project's own tokenizer and model code. Nothing is mocked: every request crosses a socket to
a separate server process, and the counts asserted are the server's.
"""

from __future__ import annotations

import json
import logging
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from helpers import KEY_ENV, Server, require_serving

from mathrecipes.config import ConfigError, OpenAITeacherSpec, load_config
from mathrecipes.teachers import BuiltinTeacher, make_teacher, openai_backend
from mathrecipes.teachers.cache import ResponseCache
from mathrecipes.teachers.openai_backend import (
    CACHE_FILE,
    OpenAIBackend,
    TeacherConfigError,
    TeacherUnavailable,
    derive_seed,
)

require_serving()  # the server side: `pip install "transformers[serving]"` (in the test extra)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama with the project's scratch tokenizer and a plain chat template."""
    from mathrecipes.training.model import build_scratch_model
    from mathrecipes.training.tokenizer import train_bpe_tokenizer

    texts = [f"What is {a} + {b}? The answer is {a + b}." for a in range(20) for b in range(20)]
    tok = train_bpe_tokenizer(texts, vocab_size=300)
    tok.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    dims = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "max_position_embeddings": 256,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
    }
    model = build_scratch_model(dims, tok, seed=0)
    path = tmp_path_factory.mktemp("teacher") / "tiny-teacher"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def server(model_dir, tmp_path_factory):
    srv = Server(model_dir, tmp_path_factory.mktemp("server")).start()
    yield srv
    srv.stop()


@pytest.fixture
def live(server):
    """The shared server, its counters reset, no delay, no injected failures."""
    server.reset()
    return server


def spec(srv: Server, **kw) -> dict:
    return {
        "backend": "openai",
        "model": str(srv.model),
        "base_url": f"{srv.url}/v1",
        "max_tokens": 8,
        "backoff_s": 0.05,
        **kw,
    }


def prompts(backend: OpenAIBackend, n: int, tag: str) -> list:
    return [backend.request(f"{tag}/{i:03d}", prompt=f"{tag}: what is {i} + 1?") for i in range(n)]


def check_one_per_request(results, requests) -> None:
    assert [r.key for r in results] == [q.key for q in requests]
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]


# ------------------------------------------------------------------ round trips


def test_chat_and_completions_round_trip(live):
    b = OpenAIBackend(spec(live, max_tokens=6, temperature=0.0))
    reqs = [
        b.request("row/0#0", messages=[("system", "Solve it."), ("user", "What is 2 + 3?")]),
        b.request("row/1#0", prompt="What is 4 + 4?"),
    ]
    results = b.generate(reqs, progress=False)
    check_one_per_request(results, reqs)
    for r in results:
        assert r.finish_reason in ("stop", "length")
        assert 1 <= r.usage["completion_tokens"] <= 6 and r.usage["prompt_tokens"] > 0
        assert not r.cached
    assert results[0].usage["prompt_tokens"] > results[1].usage["prompt_tokens"]  # template

    seen = live.records()[-2:]
    assert {(r["path"], r["input"], r["seed"]) for r in seen} == {
        ("/v1/chat/completions", "What is 2 + 3?", derive_seed(0, "row/0#0")),
        ("/v1/completions", "What is 4 + 4?", derive_seed(0, "row/1#0")),
    }
    assert not any(r["auth"] for r in seen)  # no api_key_env: no Authorization header
    assert live.stats()["received"] == 2
    assert b.last_summary.sent == 2 and b.last_summary.ok == 2


def test_requests_in_flight_are_bounded_by_concurrency(live):
    live.control(delay=0.4)
    b = OpenAIBackend(spec(live, concurrency=4))
    reqs = prompts(b, 12, "conc4")
    check_one_per_request(b.generate(reqs, progress=False), reqs)
    # the server counted 4 requests at once (each held 0.4 s), never more
    assert live.stats()["max_in_flight"] == 4

    live.reset(delay=0.2)
    b1 = OpenAIBackend(spec(live, concurrency=1))
    reqs = prompts(b1, 3, "conc1")
    check_one_per_request(b1.generate(reqs, progress=False), reqs)
    assert live.stats() | {"in_flight": 0} == {
        "received": 3,
        "answered": 3,
        "in_flight": 0,
        "max_in_flight": 1,
    }


# ------------------------------------------------------------------ cache


def test_rerun_sends_no_request_and_the_cache_key_covers_sampling(live, tmp_path):
    cache = tmp_path / "cache"
    b = OpenAIBackend(spec(live), cache_dir=cache)
    reqs = prompts(b, 10, "cache")
    first = b.generate(reqs, progress=False)
    check_one_per_request(first, reqs)
    assert live.stats()["received"] == 10

    again = OpenAIBackend(spec(live), cache_dir=cache)  # a new process would do the same
    second = again.generate(reqs, progress=False)
    assert live.stats()["received"] == 10  # nothing sent
    assert [(r.key, r.text, r.finish_reason, r.usage) for r in second] == [
        (r.key, r.text, r.finish_reason, r.usage) for r in first
    ]
    assert all(r.cached for r in second)
    assert again.last_summary.as_dict() | {"seconds": 0} == {
        "requests": 10,
        "unique": 10,
        "cached": 10,
        "sent": 0,
        "ok": 0,
        "failed": 0,
        "retried": 0,
        "seconds": 0,
    }

    # every sampling parameter and the seed are part of the key: each variant is sent once
    base = reqs[0]
    variants = [
        again.request(base.key, prompt=base.prompt, temperature=0.7),
        again.request(base.key, prompt=base.prompt, top_p=0.5),
        again.request(base.key, prompt=base.prompt, max_tokens=4),
        again.request(base.key, prompt=base.prompt, seed=base.seed + 1),
    ]
    for v in variants:
        again.generate([v], progress=False)
    assert live.stats()["received"] == 14
    # identical requests under two keys are sent once
    twins = [again.request(k, prompt="twin: what is 7 + 7?", seed=5) for k in ("t/0", "t/1")]
    got = again.generate(twins, progress=False)
    assert live.stats()["received"] == 15
    assert [r.key for r in got] == ["t/0", "t/1"] and got[0].text == got[1].text
    assert ResponseCache(cache / CACHE_FILE).count() == 15


def test_a_killed_job_resumes_from_the_cache(live, tmp_path):
    """The client process is SIGKILLed mid-shard; the rerun sends only what was not answered."""
    cache = tmp_path / "cache"
    live.control(delay=0.15)
    s = spec(live, concurrency=2)
    n = 24
    script = tmp_path / "client.py"
    script.write_text(
        "import json, sys\n"
        "from mathrecipes.teachers.openai_backend import OpenAIBackend\n"
        "b = OpenAIBackend(json.loads(sys.argv[1]), cache_dir=sys.argv[2])\n"
        f"reqs = [b.request(f'job/{{i:03d}}', prompt=f'job: what is {{i}} + 1?') for i in range({n})]\n"
        "b.generate(reqs, progress=False)\n"
        "print('finished')\n"
    )
    client = subprocess.Popen(
        [sys.executable, str(script), json.dumps(s), str(cache)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while live.stats()["answered"] < 8 and time.monotonic() < deadline:
        assert client.poll() is None, client.stdout.read().decode()
        time.sleep(0.02)
    client.send_signal(signal.SIGKILL)
    client.wait()
    done = ResponseCache(cache / CACHE_FILE).count()
    assert 4 <= done < n

    live.reset()
    b = OpenAIBackend(s, cache_dir=cache)
    reqs = [b.request(f"job/{i:03d}", prompt=f"job: what is {i} + 1?") for i in range(n)]
    results = b.generate(reqs, progress=False)
    check_one_per_request(results, reqs)
    assert b.last_summary.cached == done and b.last_summary.sent == n - done
    assert live.stats()["received"] == n - done
    assert sum(r.cached for r in results) == done
    assert ResponseCache(cache / CACHE_FILE).count() == n


# ------------------------------------------------------------------ errors and retries


def test_429_and_5xx_are_retried_with_backoff(live):
    live.control(fail=[500, 429, 503])
    b = OpenAIBackend(spec(live, concurrency=1, max_retries=3))
    reqs = prompts(b, 2, "retry")
    check_one_per_request(b.generate(reqs, progress=False), reqs)
    assert b.last_summary.retried == 3
    assert live.stats()["received"] == 5


def test_retries_exhausted_fail_the_call_or_reject_the_row(live, tmp_path):
    live.control(fail=[500, 500])
    b = OpenAIBackend(spec(live, max_retries=1), cache_dir=tmp_path)
    with pytest.raises(
        TeacherUnavailable, match=r"1 of 1 requests failed after 1 retries .*http 500"
    ):
        b.generate(prompts(b, 1, "exhaust"), progress=False)
    assert ResponseCache(tmp_path / CACHE_FILE).count() == 0  # failures are never cached

    live.control(fail=[502, 502])
    r = OpenAIBackend(spec(live, max_retries=1, on_unavailable="reject"), cache_dir=tmp_path)
    (result,) = r.generate(prompts(r, 1, "exhaust"), progress=False)
    assert not result.ok and result.error.startswith("http 502")
    assert r.last_summary.failed == 1 and r.last_summary.retried == 1
    assert live.stats()["received"] == 4


def test_a_4xx_is_this_request_s_failure_and_is_not_retried(live, tmp_path):
    # the server is pinned to one model: another name is a 400 for that request
    b = OpenAIBackend(spec(live, model="some-other-model", max_retries=3), cache_dir=tmp_path)
    (result,) = b.generate(prompts(b, 1, "bad"), progress=False)
    assert result.error.startswith("http 400") and "pinned" in result.error
    assert live.stats()["received"] == 1
    assert ResponseCache(tmp_path / CACHE_FILE).count() == 0


def test_timeouts_are_retried_then_reported(live):
    live.control(delay=1.0)
    b = OpenAIBackend(spec(live, timeout_s=0.25, max_retries=1))
    with pytest.raises(TeacherUnavailable, match="timeout after 0.25 s"):
        b.generate(prompts(b, 1, "slow"), progress=False)
    assert live.stats()["received"] == 2


@pytest.mark.slow
def test_server_killed_mid_shard_and_restarted(model_dir, tmp_path, monkeypatch):
    """SIGKILL the server while a shard is in flight, start it again on the same port: the
    retries carry the call through, every request is answered once, nothing is re-sent."""
    first = Server(model_dir, tmp_path).start()
    try:
        first.control(delay=0.1)
        # retry for as long as a restart takes, at least once a second
        monkeypatch.setattr(openai_backend, "MAX_BACKOFF_S", 1.0)
        b = OpenAIBackend(
            spec(first, concurrency=3, max_retries=40, backoff_s=0.1), cache_dir=tmp_path
        )
        n = 30
        reqs = prompts(b, n, "kill")
        restarted: list[Server] = []

        def kill_and_restart():
            while first.stats()["answered"] < 8:
                time.sleep(0.02)
            first.kill()
            time.sleep(0.5)  # the client sees refused connections for a while
            restarted.append(Server(model_dir, tmp_path, port=first.port).start(wait=False))

        chaos = threading.Thread(target=kill_and_restart)
        chaos.start()
        results = b.generate(reqs, progress=False)
        chaos.join()
        check_one_per_request(results, reqs)
        assert b.last_summary.retried > 0 and b.last_summary.sent == n

        second = restarted[0]
        pid1, pid2 = first.proc.pid, second.proc.pid
        # the record file is shared by both lives of the server (same port)
        assert {r.prompt for r in reqs} <= {r["input"] for r in first.records("answered")}
        before = [r["input"] for r in first.records("answered", pid=pid1)]
        resent = [r["input"] for r in second.records("received", pid=pid2)]
        assert len(resent) == len(set(resent))  # no request sent twice to the new server
        # what the first server had answered is not sent again (but for the last few, whose
        # answer may have been lost with the kill)
        assert not set(resent) & set(before[:-3])
        assert len(resent) <= n - len(before) + 3
        print(f"answered before the kill {len(before)}, re-sent {len(resent)}, {b.last_summary}")
        assert ResponseCache(tmp_path / CACHE_FILE).count() == n

        again = OpenAIBackend(spec(second), cache_dir=tmp_path)
        second.reset()
        assert [r.text for r in again.generate(reqs, progress=False)] == [r.text for r in results]
        assert second.stats()["received"] == 0
    finally:
        first.kill()
        for s in restarted:
            s.stop()


@pytest.mark.slow
def test_server_down_for_longer_than_the_retries_then_rerun(model_dir, tmp_path):
    """The call fails after its retries with the answers so far cached; once the server is back
    a rerun sends exactly the missing requests."""
    srv = Server(model_dir, tmp_path).start()
    try:
        srv.control(delay=0.1)
        s = spec(srv, concurrency=3, max_retries=2)
        b = OpenAIBackend(s, cache_dir=tmp_path)
        n = 24
        reqs = prompts(b, n, "down")

        def kill():
            while srv.stats()["answered"] < 8:
                time.sleep(0.02)
            srv.kill()

        killer = threading.Thread(target=kill)
        killer.start()
        with pytest.raises(TeacherUnavailable, match="rerun to send only the missing ones"):
            b.generate(reqs, progress=False)
        killer.join()
        done = ResponseCache(tmp_path / CACHE_FILE).count()
        assert 5 <= done < n and b.last_summary.ok == done

        srv.start()
        rerun = OpenAIBackend(s, cache_dir=tmp_path)
        results = rerun.generate(reqs, progress=False)
        check_one_per_request(results, reqs)
        assert rerun.last_summary.cached == done and rerun.last_summary.sent == n - done
        print(f"cached before the rerun {done}, {rerun.last_summary}")
        assert srv.stats()["received"] == n - done
        new = [r["input"] for r in srv.records("received", pid=srv.proc.pid)]
        assert sorted(new) == sorted(
            q.prompt for q, r in zip(reqs, results, strict=True) if not r.cached
        )
    finally:
        srv.stop()


# ------------------------------------------------------------------ the API key


def test_the_api_key_is_sent_but_never_written(live, tmp_path, monkeypatch, capfd, caplog):
    for name in (None, "httpx2", "httpcore2"):  # every log line, the HTTP client's included
        caplog.set_level(logging.DEBUG, logger=name)
    monkeypatch.setenv(KEY_ENV, live.key)  # the key the server expects
    live.control(require_key=True, fail=[500])  # a retry too, so its log line is searched
    cache = tmp_path / "cache"
    s = spec(live, api_key_env=KEY_ENV)
    b = make_teacher(s, cache_dir=cache)
    reqs = prompts(b, 3, "key") + [b.request("key/chat", messages=[("user", "hi")])]
    results = b.generate(reqs, progress=True)
    check_one_per_request(results, reqs)
    assert b.last_summary.retried == 1
    assert all(r["auth"] for r in live.records()[-4:])  # it was sent, and accepted
    b.generate(reqs, progress=True)  # the cached path, too
    with pytest.raises(TeacherUnavailable) as unavailable:  # and an error message
        OpenAIBackend({**s, "base_url": "http://127.0.0.1:9/v1", "max_retries": 0}).generate(
            reqs[:1], progress=False
        )

    # a wrong key: the server echoes it in its 401; the error names the variable, not a key
    wrong = f"sk-wrong-{secrets.token_hex(12)}"
    monkeypatch.setenv(KEY_ENV, wrong)
    bad = OpenAIBackend(s, cache_dir=cache)
    with pytest.raises(TeacherConfigError) as refused:
        bad.generate(prompts(bad, 2, "wrong"), progress=False)
    assert KEY_ENV in str(refused.value) and "401" in str(refused.value)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(TeacherConfigError, match=f"environment variable {KEY_ENV} is not set"):
        OpenAIBackend(s)

    captured = capfd.readouterr()
    texts = {
        "stdout": captured.out,
        "stderr": captured.err,
        "log records": caplog.text,
        "describe": json.dumps(b.describe()),
        "summary": json.dumps(b.last_summary.as_dict()),
        "results": repr(results),
        "errors": f"{unavailable.value} {refused.value}",
    }
    assert "teacher" in captured.err  # the progress bar was there to be searched
    files = [p for p in [*tmp_path.rglob("*"), *live.workdir.rglob("*")] if p.is_file()]
    assert any(p.name.endswith(".sqlite") for p in files)
    for p in files:
        texts[str(p)] = p.read_bytes().decode("utf-8", "replace")
    for secret in (live.key, wrong):
        leaks = [where for where, text in texts.items() if secret in text]
        assert not leaks, f"API key found in {leaks}"
    assert b.describe()["api_key_env"] == KEY_ENV


def test_describe_drops_credentials_from_the_url():
    b = OpenAIBackend(
        {
            "backend": "openai",
            "model": "m",
            "base_url": "https://user:pw@example.org:8443/v1/?key=x",
        }
    )
    assert b.describe() == {
        "backend": "openai",
        "model": "m",
        "base_url": "https://example.org:8443/v1",
        "api_key_env": None,
        "max_tokens": 1024,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 0,
    }


# ------------------------------------------------------------------ config


def test_teacher_config_is_a_union_on_backend(repo):
    raw = yaml.safe_load((repo / "config.yaml").read_text())
    teacher = {"backend": "openai", "model": "Qwen/Qwen2.5-7B", "base_url": "http://h:8000/v1"}
    raw["synthesis"]["distilled"]["teacher"] = dict(teacher, api_key_env="MY_KEY")
    cfg = load_config(raw)
    spec = cfg.synthesis["distilled"].teacher
    assert isinstance(spec, OpenAITeacherSpec) and spec.concurrency == 8
    assert spec.api_key_env == "MY_KEY" and spec.cache_dir is None

    def error(t) -> str:
        raw["synthesis"]["distilled"]["teacher"] = t
        with pytest.raises(ConfigError) as info:
            load_config(raw)
        return str(info.value)

    key = "config key 'synthesis.distilled.teacher"
    assert f"{key}.backend': unknown teacher backend 'opanai'" in error({"backend": "opanai"})
    msg = error({**teacher, "concurrency": 0, "api_key": "sk-x"})
    assert f"{key}.concurrency'" in msg and f"{key}.api_key': unknown key" in msg
    assert f"{key}.api_key_env'" in error({**teacher, "api_key_env": "sk-123 secret"})
    assert f"{key}.model': required key is missing" in error({"backend": "openai"})
    # builtin stays the default and unchanged
    raw["synthesis"]["distilled"]["teacher"] = {"error_rate": 0.1}
    assert load_config(raw).synthesis["distilled"].teacher.backend == "builtin"


def test_make_teacher_builds_each_backend(tmp_path):
    assert isinstance(make_teacher({"backend": "builtin", "error_rate": 0.1}), BuiltinTeacher)
    spec = {"backend": "openai", "model": "m", "base_url": "http://127.0.0.1:1/v1"}
    b = make_teacher(spec, cache_dir=tmp_path / "default")
    assert isinstance(b, OpenAIBackend) and b.cache_path == tmp_path / "default" / CACHE_FILE
    own = make_teacher({**spec, "cache_dir": str(tmp_path / "own")}, cache_dir=tmp_path)
    assert own.cache_path == tmp_path / "own" / CACHE_FILE  # the spec's folder wins
    assert set(OpenAITeacherSpec.OPERATIONAL) < set(OpenAITeacherSpec.model_fields)


def test_operational_settings_travel_as_resources_and_back():
    from mathrecipes.teachers.operational import (
        ENCODING,
        RESOURCES,
        as_resources,
        from_resources,
        resource_names,
        split_operational,
        with_operational,
    )

    assert set(ENCODING) == set(OpenAITeacherSpec.OPERATIONAL)
    teacher = OpenAITeacherSpec.model_validate(
        {
            "backend": "openai",
            "model": "m",
            "base_url": "http://h:8000/v1",
            "timeout_s": 2.5,
            "backoff_s": 0.05,
            "max_retries": 0,
            "api_key_env": "K",
        }  # fmt: skip
    ).model_dump()
    answers, settings = split_operational(teacher)
    assert set(settings) == set(OpenAITeacherSpec.OPERATIONAL)
    assert not set(answers) & set(settings) and answers["model"] == "m"
    res = as_resources(teacher, "results/cache/teachers")
    assert set(res) == set(RESOURCES)
    assert all(isinstance(v, int | str) for v in res.values())  # what Snakemake keeps exactly
    assert res["teacher_cache_dir"] == "results/cache/teachers"
    back = from_resources(res)
    assert back == {**settings, "cache_dir": "results/cache/teachers"}
    # the judge's settings travel under its own names; an hf or builtin spec has none
    judge = {**teacher, "base_url": "http://j:9000/v1", "concurrency": 3, "api_key_env": None}
    res |= as_resources(judge, "results/cache/teachers", "judge")
    assert set(res) == {*RESOURCES, *resource_names("judge")}
    job = {"method": "rewrite", "teacher": answers, "judge": split_operational(judge)[0]}
    spec = with_operational(job, res)
    assert OpenAITeacherSpec.model_validate(spec["teacher"]).model_dump() == {
        **teacher,
        "cache_dir": "results/cache/teachers",
    }
    assert spec["judge"]["base_url"] == "http://j:9000/v1" and spec["judge"]["concurrency"] == 3
    assert spec["judge"]["api_key_env"] is None and spec["judge"]["timeout_s"] == 2.5
    # the spec's own cache folder wins
    assert as_resources({**teacher, "cache_dir": "/scratch/c"}, "d")["teacher_cache_dir"] == (
        "/scratch/c"
    )
    builtin = {"backend": "builtin", "error_rate": 0.0, "seed": 0}
    assert split_operational(builtin) == (builtin, {})
    assert from_resources(as_resources(builtin, "c")) == {}
    assert with_operational(
        {"teacher": builtin, "judge": None}, res | as_resources(builtin, "c")
    ) == {"teacher": builtin, "judge": None}
