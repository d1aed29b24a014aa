"""Automatic storage-boundary fault points for code that declares none.

``install()`` patches TinyDB's ``JSONStorage.write`` and listens to SQLAlchemy's statement and
commit events on every ``Engine``. Each hook asks the controller of the operation running on
this thread (see :func:`harness.faults.current_controller`) whether a fault fires at the k-th
write / statement / commit of that operation. Outside an operation the hooks do nothing.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from harness.faults import current_controller

_installed = False
_lock = threading.Lock()


def install() -> None:
    """Install the hooks once per process (idempotent, cheap to call again)."""
    global _installed
    if _installed:
        return
    with _lock:
        if _installed:
            return
        _install_tinydb()
        _install_sqlalchemy()
        _installed = True


def _install_tinydb() -> None:
    try:
        from tinydb.storages import JSONStorage
    except ImportError:  # pragma: no cover - tinydb is a dependency
        return
    original = JSONStorage.write

    def write(self: Any, data: dict[str, Any]) -> None:
        ctrl = current_controller()
        if ctrl is not None:
            torn = ctrl.boundary("write")
            if torn is not None:
                rule, point = torn
                serialized = json.dumps(data, **self.kwargs)
                cut = max(1, int(len(serialized) * rule.torn_fraction))
                self._handle.seek(0)
                self._handle.write(serialized[:cut])
                self._handle.flush()
                os.fsync(self._handle.fileno())
                ctrl.die(point)
        original(self, data)

    write.__wrapped__ = original  # type: ignore[attr-defined]
    JSONStorage.write = write  # type: ignore[method-assign]


def _install_sqlalchemy() -> None:
    try:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return

    def before_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        ctrl = current_controller()
        if ctrl is not None:
            ctrl.boundary("sql")

    def before_commit(conn: Any) -> None:
        ctrl = current_controller()
        if ctrl is not None:
            ctrl.boundary("commit")

    event.listen(Engine, "before_cursor_execute", before_execute)
    event.listen(Engine, "commit", before_commit)
