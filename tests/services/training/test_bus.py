"""The bus on a real mosquitto: a model far over the broker's packet limit goes in chunks."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from services.training import wire
from services.training.bus import BrokerTarget, Bus, connect
from services.training.errors import ModelTooLargeError
from services.training.messages import Task
from services.training.settings import MiB, TrainingSettings
from services.training.topics import Group
from tests.conftest import BrokerProcess

pytestmark = pytest.mark.timeout(60)
TASK = Task(task_id="cd" * 8, op="fit", round=1, learners=["l0"])


async def _first(bus: Bus) -> bytes:
    async for _, payload in bus.receive():
        return payload
    raise AssertionError("the connection ended")


async def test_a_20_mb_model_crosses_a_1_mib_broker_in_chunks(mosquitto: BrokerProcess) -> None:
    settings = TrainingSettings(max_model_bytes=64 * MiB)
    group, target = Group("u", "p0123"), BrokerTarget(mosquitto.address)
    parameters = [np.random.default_rng(1).random(20 * MiB // 8), np.arange(10.0)]
    async with (
        connect(target, "bus-a", settings) as sender,
        connect(target, "bus-b", settings) as receiver,
    ):
        await receiver.subscribe(group.tasks)
        async with asyncio.TaskGroup() as tasks:
            got = tasks.create_task(_first(receiver))
            await sender.send_frame(group.tasks, TASK, parameters)
        task, arrays = wire.decode_frame(Task, got.result(), settings.frame_limit)
    assert task == TASK
    np.testing.assert_array_equal(arrays[0], parameters[0])


async def test_a_model_over_max_model_bytes_is_refused_before_publishing(
    mosquitto: BrokerProcess,
) -> None:
    settings = TrainingSettings(max_model_bytes=MiB)
    async with connect(BrokerTarget(mosquitto.address), "bus-c", settings) as sender:
        with pytest.raises(ModelTooLargeError, match=r"setting training\.max_model_bytes"):
            await sender.send_frame(Group("u", "p0123").tasks, TASK, [np.zeros(MiB)])
