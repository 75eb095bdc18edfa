"""A serving process keeps what it built at startup out of the garbage collector's walks
(app/heap.py), and gives the collector back its settings when it stops."""

from __future__ import annotations

import gc

from app.heap import YOUNG_THRESHOLD
from tests.support.apps import serving_app


async def test_a_serving_app_freezes_its_startup_heap_and_restores_the_collector(settings):
    before = gc.get_threshold()
    async with serving_app(settings) as app:
        assert "analytics" in app.extensions
        # The app, its clients, the country database and the imported modules: frozen.
        assert gc.get_freeze_count() > 50_000
        assert gc.get_threshold()[0] == YOUNG_THRESHOLD
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0  # collectable again
