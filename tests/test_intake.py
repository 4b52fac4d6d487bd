"""Every job enters through the intake: checked, deduplicated, stored, and the worker woken."""

from __future__ import annotations

from typing import Any

import pytest

from notifyd.config import Settings
from notifyd.errors import ProtocolError, UnknownProfile, UnknownService
from notifyd.intake import Intake
from notifyd.protocol import rpc
from notifyd.records import Dialect, NotificationKind
from notifyd.services import Registry
from notifyd.storage.sqlite import SqliteStorage
from tests.conftest import BIMSERVER
from tests.factories import notification_parameters


def _new_revision(**overrides: Any) -> rpc.NewRevision:
    return rpc.NewRevision.model_validate(notification_parameters("newRevision", **overrides))


@pytest.fixture
def intake(storage: SqliteStorage, registry: Registry, settings: Settings) -> Intake:
    return Intake(storage=storage, registry=registry, settings=settings)


async def test_a_new_notification_is_stored_and_wakes_the_worker(intake: Intake) -> None:
    woken: list[bool] = []
    intake.wake_with(lambda: woken.append(True))
    params = _new_revision(apiUrl="HTTP://BIMserver.test:8080/")
    accepted = await intake.notification(NotificationKind.NEW_REVISION, Dialect.BIMSIE1, params)
    job = await intake.storage.get(accepted.job_id)
    assert not accepted.duplicate
    assert woken == [True]
    assert job.notification == accepted.notification
    assert job.notification.api_url == BIMSERVER
    assert job.notification.dialect is Dialect.BIMSIE1


async def test_a_repeated_notification_is_the_same_job_and_wakes_nobody(intake: Intake) -> None:
    params = _new_revision()
    first = await intake.notification(NotificationKind.NEW_REVISION, Dialect.BIMSERVER_15, params)
    woken: list[bool] = []
    intake.wake_with(lambda: woken.append(True))
    again = await intake.notification(NotificationKind.NEW_REVISION, Dialect.BIMSERVER_15, params)
    assert again.duplicate
    assert again.job_id == first.job_id
    assert woken == []


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"serviceIdentifier": "no-such-service"}, UnknownService),
        ({"profileIdentifier": "no-such-profile"}, UnknownProfile),
        ({"apiUrl": "http://elsewhere.example:8080"}, ProtocolError),
    ],
)
async def test_a_notification_the_intake_refuses_stores_nothing(
    intake: Intake, overrides: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        await intake.notification(
            NotificationKind.NEW_REVISION, Dialect.BIMSERVER_15, _new_revision(**overrides)
        )
    assert await intake.storage.list_jobs() == []
