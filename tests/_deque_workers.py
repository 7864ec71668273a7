"""Bodies of the spawned processes of ``test_deque.py``.

They live in their own module, importable by name from a fresh interpreter
(``tests/`` is on ``sys.path`` while pytest runs), so that ``spawn`` can
find them without importing the test module and pytest.
"""

from __future__ import annotations

from typing import Any

import cachekit


def append_and_pop(directory: str, worker: int, count: int) -> dict[str, Any]:
    """Add ``count`` items ``(worker, n)`` at both ends and in the middle, and take items
    out from both ends and the middle; return what was taken and what was added."""
    deque = cachekit.Deque(directory=directory)  # reopens the store that created the directory
    added: list[list[int]] = []
    taken: list[Any] = []
    error: str | None = None
    try:
        for number in range(count):
            item = (worker, number)
            step = number % 6
            if step == 0:
                deque.append(item)
            elif step == 1:
                deque.appendleft(item)
            elif step == 2:
                with deque.transact():  # insert needs a middle, which another process may take away
                    deque.insert(len(deque) // 2, item)
            else:
                deque.append(item)
            added.append(list(item))
            try:
                if step == 3:
                    taken.append(deque.popleft())
                elif step == 4:
                    taken.append(deque.pop())
                elif step == 5:
                    with deque.transact():  # read and delete the middle item as one step
                        middle = len(deque) // 2
                        taken.append(deque[middle])
                        del deque[middle]
                    deque.rotate(1)
            except IndexError:
                pass  # the others emptied it meanwhile
    except Exception as exception:
        error = f"{type(exception).__name__}: {exception}"
    finally:
        deque.cache.close()
    return {"added": added, "taken": [list(item) for item in taken], "error": error}
