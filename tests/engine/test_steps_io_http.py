"""HTTP step types through the real engine, against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import base64
import hmac
import json
import socket
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from engine.api import Engine, Execution
from engine.steps import database as db_steps
from engine.steps import http as http_steps
from engine.steps import messaging as messaging_steps
from tests.waiting import wait_for_condition

# ---------------------------------------------------------------- helpers


def doc(steps_yaml: str, modules_yaml: str = "", name: str = "p") -> str:
    """A one-pipeline file; ``steps_yaml`` lists steps indented by 6 spaces."""
    modules = f"modules:\n{modules_yaml}" if modules_yaml else ""
    return f"{modules}pipelines:\n  {name}:\n    steps:\n{steps_yaml}"


async def run(tmp_path: Path, text: str, payload: Any = None, **kwargs: Any) -> Execution:
    async with Engine.open(text, store=f"sqlite:///{tmp_path}/s.db") as engine:
        return await engine.run("p", payload if payload is not None else {}, **kwargs)


def free_port() -> int:
    """A port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------- metadata of all I/O types


ALL_TYPES = [*http_steps.STEP_TYPES, *db_steps.STEP_TYPES, *messaging_steps.STEP_TYPES]


@pytest.mark.parametrize("step_type", ALL_TYPES, ids=lambda t: t.name)
def test_step_type_metadata_is_complete(step_type: Any) -> None:
    schema = step_type.schema
    Draft202012Validator.check_schema(schema)
    assert schema["additionalProperties"] is False
    assert step_type.description and step_type.output and step_type.category
    for key, prop in schema["properties"].items():
        assert prop.get("description"), f"{step_type.name}.{key} has no description"
    for ref in step_type.module_refs | step_type.step_refs:
        assert ref in schema["properties"], f"{step_type.name}: ref {ref} is not a config key"
    assert step_type.example is not None
    errors = list(Draft202012Validator(schema).iter_errors(step_type.example))
    assert not errors, f"{step_type.name}: example does not fit its schema: {errors[0].message}"


def test_all_io_types_are_registered() -> None:
    from engine.steps.base import default_registry

    names = set(default_registry().steps)
    expected = {"step.http_call", "step.request_parse", "step.json_response",
                "step.raw_response", "step.webhook_verify", "step.db_query", "step.db_exec",
                "step.cache_get", "step.cache_set", "step.cache_delete", "step.publish",
                "step.dlq_send", "step.feature_flag", "step.ff_gate"}
    assert expected <= names
    modules = set(default_registry().modules)
    assert {"database.sql", "cache.memory", "broker.memory", "http.client",
            "featureflags"} <= modules


# ---------------------------------------------------------------- step.http_call


async def test_http_call_get_with_query_and_headers(tmp_path: Path, http_server: Any) -> None:
    ex = await run(tmp_path, doc(f"""\
      - name: call
        type: step.http_call
        config:
          url: {http_server.url("/echo")}
          query: {{page: "{{{{ .page }}}}", tags: [a, b], active: true}}
          headers: {{X-Request-Id: "req-{{{{ .page }}}}"}}
"""), {"page": 2})
    assert ex.status == "completed", ex.error
    call = ex.output
    assert call["status_code"] == 200
    assert call["headers"]["content-type"] == "application/json"
    assert call["headers"]["x-test-server"] == "1"
    assert call["body"]["method"] == "GET"
    assert call["body"]["query"] == {"page": "2", "tags": ["a", "b"], "active": "true"}
    assert call["body"]["headers"]["x-request-id"] == "req-2"
    assert isinstance(call["elapsed_ms"], float) and call["elapsed_ms"] >= 0


async def test_http_call_posts_json_built_from_templates(tmp_path: Path,
                                                         http_server: Any) -> None:
    ex = await run(tmp_path, doc(f"""\
      - name: call
        type: step.http_call
        config:
          url: {http_server.url("/echo")}
          method: POST
          body: {{order: "{{{{ .id }}}}", items: "{{{{ .items }}}}"}}
"""), {"id": 7, "items": [{"sku": "A", "qty": 2}]})
    assert ex.status == "completed", ex.error
    seen = http_server.requests[-1]
    assert seen["method"] == "POST"
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["body"] == {"order": 7, "items": [{"sku": "A", "qty": 2}]}


async def test_http_call_sends_a_string_body_as_written(tmp_path: Path, http_server: Any) -> None:
    ex = await run(tmp_path, doc(f"""\
      - name: call
        type: step.http_call
        config:
          url: {http_server.url("/echo")}
          method: PUT
          headers: {{Content-Type: application/xml}}
          body: "<order id='{{{{ .id }}}}'/>"
"""), {"id": 3})
    assert ex.status == "completed", ex.error
    seen = http_server.requests[-1]
    assert seen["raw_body"] == "<order id='3'/>"
    assert seen["headers"]["content-type"] == "application/xml"


async def test_http_call_decodes_text_and_broken_json_as_text(tmp_path: Path,
                                                              http_server: Any) -> None:
    ex = await run(tmp_path, doc(f"""\
      - name: text
        type: step.http_call
        config: {{url: "{http_server.url("/text")}"}}
      - name: broken
        type: step.http_call
        config: {{url: "{http_server.url("/bad-json")}"}}
      - name: out
        type: step.set
        config: {{values: {{text: "{{{{ .steps.text.body }}}}", broken: "{{{{ .steps.broken.body }}}}"}}}}
"""))
    assert ex.status == "completed", ex.error
    assert ex.output["text"] == "hello"
    assert ex.output["broken"] == "{not json"


async def test_http_error_status_fails_with_status_and_excerpt(tmp_path: Path,
                                                               http_server: Any) -> None:
    ex = await run(tmp_path, doc(f"""\
      - name: call
        type: step.http_call
        config: {{url: "{http_server.url("/status/404")}?text=no+such+order"}}
"""))
    assert ex.status == "failed"
    assert ex.error is not None
    assert ex.error["type"] == "http"
    assert ex.error["status"] == 404
    assert ex.error["step"] == "call"
    assert "returned 404" in ex.error["message"]
    assert "no such order" in ex.error["message"]
    assert ex.error["details"]["status_code"] == 404


async def test_http_error_status_can_be_accepted(tmp_path: Path, http_server: Any) -> None:
    ex = await run(tmp_path, doc(f"""\
      - name: call
        type: step.http_call
        config: {{url: "{http_server.url("/status/503")}", error_on_status: false}}
"""))
    assert ex.status == "completed", ex.error
    assert ex.output["status_code"] == 503
    assert ex.output["body"] == {"status": 503}


async def test_http_call_timeout_config_fails_with_timeout(tmp_path: Path,
                                                           http_server: Any) -> None:
    ex = await run(tmp_path, doc(f"""\
      - name: call
        type: step.http_call
        config: {{url: "{http_server.url("/slow")}?delay=5", timeout: 200ms}}
"""))
    assert ex.status == "failed"
    assert ex.error is not None and ex.error["type"] == "timeout"
    assert "timed out after 0.2s" in ex.error["message"]


async def test_step_timeout_cancels_the_request(tmp_path: Path, http_server: Any) -> None:
    # The first call opens the shared client and its connection, so the timed call's budget
    # is spent waiting for the answer, not on set-up (slow on a loaded machine).
    text = doc(f"""\
      - name: warm
        type: step.http_call
        config: {{url: "{http_server.url("/echo")}"}}
      - name: call
        type: step.http_call
        timeout: 1s
        config: {{url: "{http_server.url("/hang")}"}}
""")
    async with Engine.open(text, store=f"sqlite:///{tmp_path}/s.db") as engine:
        ex = await engine.run("p", {})
        assert ex.status == "failed"
        assert ex.error is not None and ex.error["type"] == "timeout"
        assert http_server.hits("/hang") == 1
        # Cancelled, not abandoned: the connection closes while the engine is still open
        # (closing the engine would close it anyway).
        await wait_for_condition(lambda: http_server.hangups("/hang") == 1,
                                 "the server to see the client close the connection")


async def test_connection_refused_names_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/down"
    ex = await run(tmp_path, doc(f"""\
      - name: call
        type: step.http_call
        config: {{url: "{url}"}}
"""))
    assert ex.status == "failed"
    assert ex.error is not None and ex.error["type"] == "http_connection"
    assert url in ex.error["message"]


async def test_relative_url_without_client_is_a_clear_error(tmp_path: Path) -> None:
    ex = await run(tmp_path, doc("""\
      - name: call
        type: step.http_call
        config: {url: /users/1}
"""))
    assert ex.status == "failed"
    assert ex.error is not None and ex.error["type"] == "config"
    assert "base_url" in ex.error["message"]


async def test_http_call_through_a_client_module(tmp_path: Path, http_server: Any) -> None:
    modules = f"""\
  - name: api
    type: http.client
    config: {{base_url: "{http_server.base_url}", headers: {{Authorization: Bearer t0k}},
             timeout: 2s}}
"""
    ex = await run(tmp_path, doc("""\
      - name: call
        type: step.http_call
        config: {url: /echo, client: api, headers: {X-Extra: "1"}}
""", modules))
    assert ex.status == "completed", ex.error
    headers = ex.output["body"]["headers"]
    assert headers["authorization"] == "Bearer t0k"
    assert headers["x-extra"] == "1"
    assert ex.output["body"]["path"] == "/echo"


async def test_client_module_timeout_applies(tmp_path: Path, http_server: Any) -> None:
    modules = f"""\
  - name: api
    type: http.client
    config: {{base_url: "{http_server.base_url}", timeout: 200ms}}
"""
    ex = await run(tmp_path, doc("""\
      - name: call
        type: step.http_call
        config: {url: "/slow?delay=5", client: api}
""", modules))
    assert ex.status == "failed"
    assert ex.error is not None and ex.error["type"] == "timeout"


async def test_retry_gets_through_a_flaky_endpoint(tmp_path: Path, http_server: Any) -> None:
    ex = await run(tmp_path, doc(f"""\
      - name: call
        type: step.http_call
        retry: {{max_attempts: 3, initial_delay: 10ms}}
        config: {{url: "{http_server.url("/flaky/retry-ok")}?fail=2"}}
"""))
    assert ex.status == "completed", ex.error
    assert ex.output["body"] == {"attempt": 3}
    assert http_server.hits("/flaky/retry-ok") == 3


# ---------------------------------------------------------------- request_parse


def http_payload(body: Any = None, raw: str | None = None, **extra: Any) -> dict[str, Any]:
    payload = {"method": "POST", "path": "/orders/42",
               "path_params": {"id": "42"}, "query": {"page": "2", "sort": "asc"},
               "headers": {"content-type": "application/json", "x-tenant": "acme"},
               "body": body, "raw_body": raw if raw is not None else
               (body if isinstance(body, str) else json.dumps(body))}
    payload.update(extra)
    return payload


async def test_request_parse_extracts_the_request(tmp_path: Path) -> None:
    ex = await run(tmp_path, doc("""\
      - name: req
        type: step.request_parse
        config: {path_params: [id], query_params: [page, missing], headers: [X-Tenant]}
      - name: out
        type: step.set
        config: {values: {order: "{{ .path_params.id }}", qty: "{{ .body.qty }}"}}
"""), http_payload('{"qty": 3}'), trigger_type="http")
    assert ex.status == "completed", ex.error
    assert ex.output["path_params"] == {"id": "42"}
    assert ex.output["query"] == {"page": "2", "missing": None}
    assert ex.output["headers"] == {"X-Tenant": "acme"}
    assert ex.output["body"] == {"qty": 3}
    assert ex.output["order"] == "42" and ex.output["qty"] == 3


async def test_request_parse_defaults_take_everything(tmp_path: Path) -> None:
    ex = await run(tmp_path, doc("""\
      - name: req
        type: step.request_parse
        config: {parse_body: false}
"""), http_payload('{"qty": 3}'), trigger_type="http")
    assert ex.status == "completed", ex.error
    assert ex.output["query"] == {"page": "2", "sort": "asc"}
    assert ex.output["headers"]["x-tenant"] == "acme"
    assert ex.output["body"] == '{"qty": 3}'


async def test_request_parse_rejects_invalid_json_with_400(tmp_path: Path) -> None:
    ex = await run(tmp_path, doc("""\
      - name: req
        type: step.request_parse
        config: {}
"""), http_payload("{oops"), trigger_type="http")
    assert ex.status == "failed"
    assert ex.error is not None
    assert ex.error["status"] == 400 and ex.error["type"] == "validation"
    assert "not valid JSON" in ex.error["message"]


# ---------------------------------------------------------------- responses


async def test_json_response_stops_and_answers(tmp_path: Path) -> None:
    ex = await run(tmp_path, doc("""\
      - name: respond
        type: step.json_response
        config: {status: 201, headers: {Location: "/orders/{{ .id }}"}, body: {id: "{{ .id }}"}}
      - name: never
        type: step.set
        config: {values: {ran: true}}
"""), {"id": 9})
    assert ex.status == "completed", ex.error
    assert ex.output == {"status": 201, "body": {"id": 9}}
    assert ex.response == {"status": 201, "headers": {"Location": "/orders/9"},
                           "body": {"id": 9}}


async def test_json_response_status_from_a_template(tmp_path: Path) -> None:
    ex = await run(tmp_path, doc("""\
      - name: respond
        type: step.json_response
        config: {status: "{{ .code }}", body: null}
"""), {"code": 404})
    assert ex.status == "completed", ex.error
    assert ex.response is not None and ex.response["status"] == 404


async def test_raw_response(tmp_path: Path) -> None:
    ex = await run(tmp_path, doc("""\
      - name: respond
        type: step.raw_response
        config: {content_type: text/html, body: "<p>{{ .name }}</p>"}
"""), {"name": "Ada"})
    assert ex.status == "completed", ex.error
    assert ex.response == {"status": 200, "headers": {}, "raw": "<p>Ada</p>",
                           "content_type": "text/html"}
    assert ex.output["body"] == "<p>Ada</p>"


async def test_bad_status_is_a_config_error(tmp_path: Path) -> None:
    ex = await run(tmp_path, doc("""\
      - name: respond
        type: step.json_response
        config: {status: "{{ .code }}"}
"""), {"code": "teapot"})
    assert ex.status == "failed"
    assert ex.error is not None and "not an HTTP status code" in ex.error["message"]


# ---------------------------------------------------------------- webhook_verify

SECRET = "s3cr3t"
RAW = '{"action": "opened",  "number": 1}'  # spacing matters: the raw text is signed


def sign(algorithm: str, body: str = RAW, secret: str = SECRET) -> bytes:
    return hmac.new(secret.encode(), body.encode(), algorithm).digest()


def verify_doc(config: str) -> str:
    return doc(f"""\
      - name: verify
        type: step.webhook_verify
        config: {config}
      - name: ok
        type: step.set
        config: {{values: {{after: true}}}}
""")


@pytest.mark.parametrize(("config", "header", "value"), [
    ("{secret: s3cr3t, scheme: github}", "X-Hub-Signature-256",
     "sha256=" + sign("sha256").hex()),
    ("{secret: s3cr3t}", "X-Signature", sign("sha256").hex()),
    ("{secret: s3cr3t}", "X-Signature", "sha256=" + sign("sha256").hex().upper()),
    ("{secret: s3cr3t, scheme: hmac-sha1, header: X-Sig}", "x-sig", sign("sha1").hex()),
    ("{secret: s3cr3t, encoding: base64, header: X-Shopify-Hmac-Sha256}",
     "x-shopify-hmac-sha256", base64.b64encode(sign("sha256")).decode()),
], ids=["github", "hex", "prefixed-upper", "sha1", "base64"])
async def test_webhook_verify_accepts_valid_signatures(tmp_path: Path, config: str, header: str,
                                                       value: str) -> None:
    payload = http_payload(json.loads(RAW), raw=RAW, headers={header.lower(): value})
    ex = await run(tmp_path, verify_doc(config), payload, trigger_type="http")
    assert ex.status == "completed", ex.error
    assert ex.output["verified"] is True and ex.output["after"] is True


@pytest.mark.parametrize(("headers", "message"), [
    ({}, "missing signature header X-Hub-Signature-256"),
    ({"x-hub-signature-256": "sha256=" + sign("sha256", secret="wrong").hex()},
     "does not match"),
    ({"x-hub-signature-256": sign("sha256").hex()}, "must start with 'sha256='"),
    ({"x-hub-signature-256": "sha256=" + sign("sha256", body=RAW.replace("  ", " ")).hex()},
     "does not match"),
], ids=["missing", "wrong-secret", "no-prefix", "body-reformatted"])
async def test_webhook_verify_rejects_with_401(tmp_path: Path, headers: dict[str, str],
                                               message: str) -> None:
    payload = http_payload(json.loads(RAW), raw=RAW, headers=headers)
    ex = await run(tmp_path, verify_doc("{secret: s3cr3t, scheme: github}"), payload,
                   trigger_type="http")
    assert ex.status == "failed"
    assert ex.error is not None
    assert ex.error["type"] == "unauthorized" and ex.error["status"] == 401
    assert message in ex.error["message"]


async def test_webhook_verify_without_raw_body_signs_compact_json(tmp_path: Path) -> None:
    body = {"a": 1, "b": [1, 2]}
    compact = json.dumps(body, separators=(",", ":"))
    payload = {"headers": {"x-signature": sign("sha256", body=compact).hex()}, "body": body}
    ex = await run(tmp_path, verify_doc("{secret: s3cr3t}"), payload)
    assert ex.status == "completed", ex.error


async def test_webhook_verify_empty_secret_is_a_config_error(tmp_path: Path) -> None:
    ex = await run(tmp_path, verify_doc('{secret: "{{ .nothing }}"}'),
                   http_payload({}, headers={"x-signature": "00"}))
    assert ex.status == "failed"
    assert ex.error is not None and ex.error["type"] == "config"
    assert "'secret' is empty" in ex.error["message"]



async def test_query_config_adds_to_the_urls_own_query(tmp_path: Path, http_server: Any) -> None:
    ex = await run(tmp_path, doc(f"""\
      - name: call
        type: step.http_call
        config: {{url: "{http_server.url("/echo")}?a=1", query: {{b: 2}}}}
"""))
    assert ex.status == "completed", ex.error
    assert ex.output["body"]["query"] == {"a": "1", "b": "2"}
