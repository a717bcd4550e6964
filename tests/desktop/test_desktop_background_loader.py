"""The window's background reads: cached by key, except polled reads of files that move (a
running extraction's iterations, a running training's steps), which must be read again on
every poll or the page stops following the job."""

from __future__ import annotations

from desktop_app.state.thumbnails import BackgroundLoader


def test_a_read_is_cached_but_a_fresh_poll_reads_again(qtbot):
    loader = BackgroundLoader()
    calls: list[int] = []
    answers: list[object] = []
    loader.ready.connect(lambda _key, result: answers.append(result))

    def read() -> int:
        calls.append(len(calls))
        return len(calls)

    try:
        assert loader.request("k", read) is None
        qtbot.waitUntil(lambda: answers == [1], timeout=5000)
        assert loader.request("k", read) == 1 and calls == [0]  # from the cache
        assert loader.request("k", read, fresh=True) is None  # never from the cache
        qtbot.waitUntil(lambda: answers == [1, 2], timeout=5000)
        assert loader.request("k", read, fresh=True) is None
        qtbot.waitUntil(lambda: answers == [1, 2, 3], timeout=5000)
    finally:
        loader.shutdown()
