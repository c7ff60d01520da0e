"""engine.scrub: errors name the ${VAR}, never the value it lent; URL passwords are masked;
and a load notes exactly the values its ${VAR}s substituted."""

from __future__ import annotations

from engine.config.loader import load_text
from engine.scrub import NOTHING, Scrubber
from engine.steps.base import default_registry


def test_a_substituted_value_is_shown_as_its_variable() -> None:
    scrub = Scrubber({"API_TOKEN": "tok-5f2a9", "REGION": "eu-west-1"})
    assert scrub.text("401 for tok-5f2a9 in eu-west-1") == "401 for ${API_TOKEN} in ${REGION}"
    # A value inside a longer word is someone else's word.
    assert scrub.text("eu-west-1b and xtok-5f2a9") == "eu-west-1b and xtok-5f2a9"


def test_the_parts_of_a_url_drivers_quote_are_shown_as_what_they_are() -> None:
    scrub = Scrubber({"DB_URL": "postgresql://svc:pa%40ss@db.internal:5432/billing"})
    said = scrub.text('connection to server at "db.internal", port 5432 failed: FATAL: '
                      'database "billing" does not exist; user "svc", password pa@ss')
    assert said == ('connection to server at "<host of ${DB_URL}>", port 5432 failed: FATAL: '
                    'database "<database of ${DB_URL}>" does not exist; user "svc", password '
                    '<password of ${DB_URL}>')  # "svc" is shorter than 4 characters
    assert scrub.text("postgresql://svc:pa%40ss@db.internal:5432/billing refused") \
        == "${DB_URL} refused"
    assert scrub.text("billing_archive is fine") == "billing_archive is fine"


def test_a_url_parsers_disagree_on_hides_both_readings() -> None:
    scrub = Scrubber({"DB_URL": "postgresql://u:pass/word@x@127.0.0.1/db1"})
    said = scrub.text("failed to resolve host 'x@127.0.0.1'; path word@x@127.0.0.1/db1")
    assert "x@127.0.0.1" not in said and "pass" not in said and "db1" not in said.replace(
        "${DB_URL}", "")


def test_short_values_are_left_alone_and_scrubbing_twice_changes_nothing() -> None:
    scrub = Scrubber({"PORT": "8080", "FLAG": "on", "NAME": "orders-db"})
    once = scrub.text("port 8080 is on; orders-db down")
    assert once == "port ${PORT} is on; ${NAME} down"  # 4 characters is enough; 2 is not
    assert scrub.text(once) == once


def test_passwords_in_urls_are_masked_in_any_error() -> None:
    cases = {
        "redis://:s3cret@cache:6379/0 refused": "redis://:[REDACTED]@cache:6379/0 refused",
        "at 'postgresql://app:p@ss/w0rd@db/x'": "at 'postgresql://app:[REDACTED]@db/x'",
        "dsn host=db password=hunter22 user=x": "dsn host=db password=[REDACTED] user=x",
        "https://example.com/a?b=1 is fine": "https://example.com/a?b=1 is fine",
    }
    for text, masked in cases.items():
        assert NOTHING.text(text) == masked


def test_error_dicts_are_scrubbed_everywhere_and_copied() -> None:
    scrub = Scrubber({"SECRET": "abcd-1234"})
    error = {"message": "bad abcd-1234", "type": "http", "details": {"seen": ["abcd-1234", 3]}}
    assert scrub.error(error) == {"message": "bad ${SECRET}", "type": "http",
                                  "details": {"seen": ["${SECRET}", 3]}}
    assert error["message"] == "bad abcd-1234" and scrub.error(None) is None


def test_a_load_notes_the_values_its_variables_substituted() -> None:
    text = ("environments: {dev: {variables: {FILE_VAR: from-the-file}}}\n"
            "modules:\n"
            "  - {name: db, type: database.sql, config: {url: \"sqlite:///${DATA_DIR}/${FILE_VAR}.db\"}}\n"
            "connectors:\n  - {name: c, type: sink.webhook, config: {url: \"http://h/${TOKEN:-fallback}\"}}\n"
            "pipelines:\n  p:\n    steps: [{name: a, type: step.log, config: {message: '${UNUSED}'}}]\n")
    definition = load_text(text, env={"DATA_DIR": "/srv/data", "UNUSED": "never-read"},
                           environment="dev", registry=default_registry())
    # Only what was substituted: not the unused variable, not a default.
    assert definition.substituted == {"DATA_DIR": "/srv/data", "FILE_VAR": "from-the-file"}
