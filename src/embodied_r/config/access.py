"""An access-recording view of validated params: which keys (``rewards.accuracy_mode``) code really reads.

DVC reruns a stage when a params key its ``dvc.yaml`` entry lists changes, so that list must name every key the
stage reads. :func:`recording_view` wraps a validated :class:`~embodied_r.config.Params` (or any section) in a
view that behaves as the model — the same class (a subclass), the same values, ``isinstance`` and pydantic
validation accept it — and calls ``on_read`` with the dotted path of each value read:

- reading a field whose value is a section returns the section's view and records nothing yet (passing
  ``params.grpo`` around reads no key); reading any other value records its path (a list or a reward schedule
  is one value);
- dumping a section (``model_dump``, ``model_dump_json``, iterating it) reads every value under it;
- dumping the whole params returns a mapping that records as it is used: ``params.model_dump()["grpo"]`` reads
  the ``grpo`` section; iterating it or serializing it (``json.dumps``) reads every value.

Copies (``model_copy``) keep recording under the same path. Reads pydantic makes itself (``repr``, ``==``) are not
recorded: they show or compare a value, they do not decide an output.

>>> from embodied_r.config import Params
>>> reads = []
>>> params = recording_view(Params(), reads.append)
>>> params.rewards.accuracy_mode
'answer_tag'
>>> settings = params.model_dump(mode="json")["lm"]  # a section dumped: each of its values read
>>> isinstance(params.grpo, type(Params().grpo)), sorted(set(reads))[:2]
(True, ['lm.base', 'lm.cache_dir'])
>>> "rewards.accuracy_mode" in reads, any(r.startswith("grpo.") for r in reads)
(True, False)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel, RootModel

__all__ = ["leaf_keys", "recording_view"]

OnRead = Callable[[str], None]

#: One recording subclass per (model class, path): the path and callback live on the class, so copies record too.
_VIEW_CLASSES: dict[tuple[type, str, int], type] = {}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _is_section(value: Any) -> bool:
    """A nested params section (a model of fields), not a value such as a reward schedule (a root model)."""
    return isinstance(value, BaseModel) and not isinstance(value, RootModel)


def leaf_keys(model: BaseModel, path: str = "") -> list[str]:
    """The dotted paths of every value under ``model`` (sections opened, values not).

    >>> from embodied_r.config import TrackingConfig
    >>> leaf_keys(TrackingConfig(), "tracking")[:2]
    ['tracking.tracking_uri', 'tracking.artifact_root']
    """
    keys = []
    for name in type(model).model_fields:
        value = model.__dict__.get(name)
        keys += leaf_keys(value, _join(path, name)) if _is_section(value) else [_join(path, name)]
    return keys


class _RecordingDump(dict):
    """The whole params dumped: indexing a key reads what is under it; any other use reads everything."""

    def __init__(self, data: dict, model: BaseModel, on_read: OnRead) -> None:
        super().__init__(data)
        self._model, self._on_read = model, on_read

    def _read(self, name: str) -> None:
        value = self._model.__dict__.get(name)
        for key in leaf_keys(value, name) if _is_section(value) else [name]:
            self._on_read(key)

    def _read_all(self) -> None:
        for name in self.keys():
            self._read(name)

    def __getitem__(self, name: str) -> Any:
        self._read(name)
        return super().__getitem__(name)

    def get(self, name: str, default: Any = None) -> Any:
        if name in self.keys():
            self._read(name)
        return super().get(name, default)

    def items(self):  # json.dumps serializes a dict subclass through items()
        self._read_all()
        return super().items()

    def values(self):
        self._read_all()
        return super().values()

    def __iter__(self) -> Iterator[str]:
        self._read_all()
        return super().__iter__()

    def copy(self) -> dict:
        self._read_all()
        return dict(super().items())


def _view_class(cls: type[BaseModel], path: str, on_read: OnRead) -> type[BaseModel]:
    """The recording subclass of ``cls`` at ``path`` (made once per class, path and callback)."""
    cache_key = (cls, path, id(on_read))
    if cache_key in _VIEW_CLASSES:
        return _VIEW_CLASSES[cache_key]
    fields = frozenset(cls.model_fields)

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if name in fields and not _is_section(value):
            on_read(_join(path, name))
        return value

    def _read_all(self, include: Any = None, exclude: Any = None) -> None:
        for name in fields:
            if (include is not None and name not in include) or (exclude is not None and name in exclude):
                continue
            value = self.__dict__.get(name)
            for key in leaf_keys(value, _join(path, name)) if _is_section(value) else [_join(path, name)]:
                on_read(key)

    def model_dump(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        data = cls.model_dump(self, *args, **kwargs)
        if not path:  # the whole params: record what is used of the dump (a stage picks its sections from it)
            return _RecordingDump(data, self, on_read)
        _read_all(self, kwargs.get("include"), kwargs.get("exclude"))
        return data

    def model_dump_json(self, *args: Any, **kwargs: Any) -> str:
        _read_all(self, kwargs.get("include"), kwargs.get("exclude"))
        return cls.model_dump_json(self, *args, **kwargs)

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        _read_all(self)
        return cls.__iter__(self)

    namespace = {
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__doc__": cls.__doc__,
        "__getattribute__": __getattribute__,
        "model_dump": model_dump,
        "model_dump_json": model_dump_json,
        "__iter__": __iter__,
    }
    view = type(cls.__name__, (cls,), namespace)
    _VIEW_CLASSES[cache_key] = view
    return view


def recording_view(model: BaseModel, on_read: OnRead, path: str = "") -> BaseModel:
    """``model`` (validated params or a section at ``path``) as a view that calls ``on_read(dotted key)`` on
    each value read; the model itself is not changed. See the module docstring for what counts as a read."""
    view_cls = _view_class(type(model), path, on_read)
    values = {
        name: recording_view(value, on_read, _join(path, name)) if _is_section(value) else value
        for name, value in model.__dict__.items()
    }
    # Built with pydantic's own constructor for already-validated values: nothing is validated twice or mutated.
    return view_cls.model_construct(_fields_set=set(model.model_fields_set), **values)
