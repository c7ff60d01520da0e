"""Contract: step mocks (set, list, capture from an execution, remove, clear)."""

from __future__ import annotations

import pytest

from engine.service.errors import InvalidInput, NotFound
from engine.service.models import RunOptions
from engine.service.protocol import StudioService


async def test_set_list_use_and_remove_mocks(service: StudioService) -> None:
    mock = await service.set_mock("greet", "hello", output={"greeting": "Mocked"})
    assert (mock.pipeline, mock.step, mock.mode, mock.enabled, mock.hit_count) == (
        "greet", "hello", "fixed", True, 0)
    assert (await service.run("greet", {"name": "Ada"})).output == {"greeting": "Mocked"}
    assert (await service.run("greet", {"name": "Ada"}, RunOptions(mocks=False))).output == \
        {"greeting": "Hello Ada"}
    [listed] = await service.list_mocks("greet")
    assert listed.id == mock.id and listed.hit_count == 1
    assert await service.list_mocks("order") == []

    failing = await service.set_mock("order", "price", mode="error",
                                     error={"message": "pricing is down"}, delay_ms=1)
    assert failing.error == {"message": "pricing is down"} and failing.delay_ms == 1
    failed = await service.run("order", {"qty": 1})
    assert failed.status == "failed" and "pricing is down" in failed.error["message"]
    assert {m.id for m in await service.list_mocks()} == {mock.id, failing.id}

    await service.remove_mock(failing.id)
    assert [m.id for m in await service.list_mocks()] == [mock.id]
    with pytest.raises(NotFound):
        await service.remove_mock(failing.id)


async def test_capture_a_mock_from_an_execution_and_clear(service: StudioService) -> None:
    ran = await service.run("order", {"qty": 2})
    captured = await service.mock_from_execution(ran.execution_id, "price")
    assert (captured.pipeline, captured.step, captured.mode) == ("order", "price", "recorded")
    assert captured.output == {"total": 20} and captured.source_execution_id == ran.execution_id
    # The captured output answers the step whatever the input.
    assert (await service.run("order", {"qty": 7})).output == {"gross": 30.0, "qty": 7}
    # switched off and on it is still the recorded answer; a new value is not
    off = await service.set_mock("order", "price", mode="recorded", output={"total": 20}, enabled=False)
    assert off.source_execution_id == ran.execution_id and not off.enabled
    edited = await service.set_mock("order", "price", mode="recorded", output={"total": 21})
    assert edited.source_execution_id is None

    await service.set_mock("greet", "hello", output={"greeting": "x"})
    assert await service.clear_mocks("order") == 1
    assert [m.pipeline for m in await service.list_mocks()] == ["greet"]
    assert await service.clear_mocks() == 1
    assert await service.list_mocks() == []


async def test_mock_errors(service: StudioService) -> None:
    with pytest.raises(NotFound, match="no pipeline named 'nope'"):
        await service.set_mock("nope", "hello", output=1)
    with pytest.raises(InvalidInput, match="no step 'nope'"):
        await service.set_mock("greet", "nope", output=1)
    with pytest.raises(InvalidInput, match="error mock needs"):
        await service.set_mock("greet", "hello", mode="error")
    with pytest.raises(NotFound):
        await service.mock_from_execution("0" * 32, "hello")
    ran = await service.run("greet", {"name": "Ada"})
    with pytest.raises(InvalidInput, match="no recorded output"):
        await service.mock_from_execution(ran.execution_id, "nope")
    assert await service.list_mocks() == []
