"""Hot reads whose SQL is compiled once per process.

The ORM turns a queryset into SQL every time it runs it: about 0.5 ms of CPU for the status poll's preview, more than
PostgreSQL takes to answer (bench/README.md, issue 13). A `PreparedRead` builds its queryset once with stand-in
values, keeps the SQL the ORM wrote, and from then on runs that SQL with the real values and builds the instance as
the ORM does (`Model.from_db` after the columns' converters). The query is the ORM's own, so it follows the models;
only the values change.

Each value is named with the model field it is compared to, which converts it exactly as a filter would
(`to_python` refuses what the field cannot hold, with the ValidationError or ValueError a filter raises).

A `PreparedUpdate` does the same for an UPDATE of one row that hands the row back as it left it (`RETURNING`): one
statement where a read and a conditional UPDATE took two. A `PreparedCount` does it for a queryset's `count()`.

On PostgreSQL their rows' timestamps are parsed by psycopg's C loader where Django would use its Python one
(`_fast_timestamps`), and their instances are built as `from_db` builds them, without `Model.__init__`'s walk over
every field where nothing can tell the difference (`model_instance`).
"""

import functools
import inspect
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.db import connections, router
from django.db.models import Field, Model, QuerySet
from django.db.models.base import ModelState
from django.db.models.fields.files import FileDescriptor
from django.db.models.fields.related_descriptors import ForeignKeyDeferredAttribute
from django.db.models.query_utils import DeferredAttribute
from django.db.models.signals import post_init, pre_init
from django.db.models.sql import UpdateQuery

try:
    import psycopg
    from psycopg.pq import Format
    from psycopg.types.datetime import TimestamptzLoader
except ImportError:  # pragma: no cover - psycopg is a requirement; only PostgreSQL needs it
    psycopg = None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple
    positions: dict[str, list[int]]
    init_list: list[str]
    extra: list[str]
    converters: dict


class PreparedRead:
    """`build(**values)` returns the queryset (one model, at most one row wanted); `fields` names the model field
    each value is compared to. `get(**values)` returns (instance, {annotation: value}) or None."""

    def __init__(self, model: type[Model], build: Callable[..., QuerySet], **fields: Field):
        self.model, self.build, self.fields = model, build, fields
        self._compiled: dict[str, _Compiled] = {}

    def get(self, **values) -> tuple[Model, dict] | None:
        alias = router.db_for_read(self.model)
        compiled = self._compiled.get(alias) or self._compile(alias)
        row = _fetch_one(connections[alias], compiled, self.fields, values)
        if row is None:
            return None
        size = len(compiled.init_list)
        instance = model_instance(self.model, alias, compiled.init_list, row[:size])
        return instance, dict(zip(compiled.extra, row[size:], strict=True))

    def _compile(self, alias: str) -> _Compiled:
        connection = connections[alias]
        stand_ins = {name: _stand_in(field) for name, field in self.fields.items()}
        queryset = self.build(**stand_ins)[:1]
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        positions = _positions(connection, self.fields, stand_ins, params)
        select = compiler.select
        model_columns = compiler.klass_info["select_fields"]
        init_list = [select[i][0].target.attname for i in model_columns]
        extra = [alias_ for alias_, index in sorted(compiler.annotation_col_map.items(), key=lambda item: item[1])]
        if model_columns != list(range(len(init_list))) or len(select) != len(init_list) + len(extra):
            raise ValueError("a prepared read selects one model's columns, then its annotations")
        converters = compiler.get_converters([column for column, _, _ in select])
        compiled = _Compiled(sql, tuple(params), positions, init_list, extra, converters)
        self._compiled[alias] = compiled
        return compiled


class PreparedCount:
    """`build(**values)` returns a queryset; `count(**values)` is what its `count()` would answer, from SQL compiled
    once per process (the rows' keys, counted: `SELECT COUNT(*) FROM (...)`)."""

    def __init__(self, model: type[Model], build: Callable[..., QuerySet], **fields: Field):
        self.model, self.build, self.fields = model, build, fields
        self._compiled: dict[str, _Compiled] = {}

    def count(self, **values) -> int:
        alias = router.db_for_read(self.model)
        compiled = self._compiled.get(alias) or self._compile(alias)
        return _fetch_one(connections[alias], compiled, self.fields, values)[0]

    def _compile(self, alias: str) -> _Compiled:
        connection = connections[alias]
        stand_ins = {name: _stand_in(field) for name, field in self.fields.items()}
        queryset = self.build(**stand_ins).order_by().values("pk")
        sql, params = queryset.query.get_compiler(using=alias).as_sql()
        positions = _positions(connection, self.fields, stand_ins, params)
        counted = f"SELECT COUNT(*) FROM ({sql}) counted"  # noqa: S608 - the ORM's SQL; its values stay parameters
        compiled = _Compiled(counted, tuple(params), positions, [], [], {})
        self._compiled[alias] = compiled
        return compiled


class PreparedUpdate:
    """`build(**values)` returns the queryset that names at most one row and the values to set, as
    `QuerySet.update()` takes them (plain values or expressions such as `F("attempts") + 1`); `fields` names the model
    field each value is converted by. `run(**values)` updates the row and returns it as the UPDATE left it, or None
    when no row matched. On a database that cannot return rows from an UPDATE (SQLite before 3.35) it changes nothing
    and returns None: the caller's other way (a read, then a change under the lock) does the work there.

    The named values are put in their places as they are: `build` must use each as given (a value derived from one,
    such as `now - timedelta(...)`, would be compiled as a constant), and none may be None (compiled as a literal
    NULL, or `= NULL`). `RETURNING` is told by `can_return_columns_from_insert`, which is right for PostgreSQL and
    SQLite, the two databases this app runs on."""

    def __init__(self, model: type[Model], build: Callable[..., tuple[QuerySet, dict]], **fields: Field):
        self.model, self.build, self.fields = model, build, fields
        self._compiled: dict[str, _Compiled | None] = {}

    def run(self, **values) -> Model | None:
        if any(value is None for value in values.values()):
            raise ValueError("a prepared UPDATE's values cannot be None")
        alias = router.db_for_write(self.model)
        compiled = self._compiled[alias] if alias in self._compiled else self._compile(alias)
        if compiled is None:
            return None
        row = _fetch_one(connections[alias], compiled, self.fields, values)
        return None if row is None else model_instance(self.model, alias, compiled.init_list, row)

    def _compile(self, alias: str) -> _Compiled | None:
        connection = connections[alias]
        if not connection.features.can_return_columns_from_insert:  # the same RETURNING clause, from the same version
            self._compiled[alias] = None
            return None
        stand_ins = {name: _stand_in(field) for name, field in self.fields.items()}
        queryset, changes = self.build(**stand_ins)
        query = queryset.query.chain(UpdateQuery)
        query.add_update_values(changes)
        compiler = query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        columns = [field.get_col(self.model._meta.db_table) for field in self.model._meta.concrete_fields]
        sql += " RETURNING " + ", ".join(connection.ops.quote_name(column.target.column) for column in columns)
        positions = _positions(connection, self.fields, stand_ins, params)
        converters = compiler.get_converters(columns)
        compiled = _Compiled(sql, tuple(params), positions, [column.target.attname for column in columns], [],
                             converters)  # fmt: skip
        self._compiled[alias] = compiled
        return compiled


def model_instance(model: type[Model], alias: str, attnames: Sequence[str], values: Sequence) -> Model:
    """`model.from_db(alias, attnames, values)`: the instance the ORM builds from a row (the fields named, the others
    deferred). `Model.__init__` sets each field through its descriptor and announces the instance (`pre_init`,
    `post_init`): about a tenth of the status poll's CPU for its three instances. Where those steps only store the
    values -- the model keeps Django's `__init__` and `from_db`, its fields Django's plain descriptors, and nothing
    listens for its instances -- the values go straight into the new instance's `__dict__`, which is where those
    descriptors put them; anything else is built by `from_db` itself."""
    if not _stores_plainly(model) or pre_init.has_listeners(model) or post_init.has_listeners(model):
        return model.from_db(alias, attnames, values)
    instance = model.__new__(model)
    state = instance._state = ModelState()
    state.adding, state.db = False, alias
    instance.__dict__.update(zip(attnames, values, strict=True))
    return instance


# The descriptors that, on a new instance, store a value in `__dict__[attname]` and do nothing else: plain fields
# (no __set__ at all), foreign keys' ids (which would otherwise drop a cached related object: a new instance has
# none) and files (wrapped in a FieldFile when read, either way).
_PLAIN_DESCRIPTORS = (DeferredAttribute, ForeignKeyDeferredAttribute, FileDescriptor)


@functools.cache
def _stores_plainly(model: type[Model]) -> bool:
    return (
        model.__init__ is Model.__init__
        and model.from_db.__func__ is Model.from_db.__func__
        and all(
            type(inspect.getattr_static(model, field.attname, None)) in _PLAIN_DESCRIPTORS
            for field in model._meta.concrete_fields
        )
    )


def _positions(connection, fields: dict[str, Field], stand_ins: dict, params) -> dict[str, list[int]]:
    """Where each named value sits among the compiled query's parameters, found by its stand-in."""
    positions = {}
    for name, field in fields.items():
        prepared = field.get_db_prep_value(stand_ins[name], connection, prepared=False)
        positions[name] = [i for i, param in enumerate(params) if param == prepared]
        if not positions[name]:
            raise ValueError(f"{name!r} is not a parameter of the prepared query")
    return positions


def _fetch_one(connection, compiled: _Compiled, fields: dict[str, Field], values: dict) -> list | None:
    """Run the compiled SQL with the real values in their places; the first row, through the columns' converters."""
    params = list(compiled.params)
    for name, value in values.items():
        field = fields[name]
        prepared = field.get_db_prep_value(field.to_python(value), connection, prepared=False)
        for position in compiled.positions[name]:
            params[position] = prepared
    with connection.cursor() as cursor:
        if compiled.init_list or compiled.extra:  # columns that may be timestamps; a count's one column never is
            _fast_timestamps(connection, cursor.cursor)
        cursor.execute(compiled.sql, params)
        rows = cursor.fetchall()  # to the end: SQLite finishes an UPDATE ... RETURNING (and its lock) only there
    if not rows:
        return None
    row = list(rows[0])
    for position, (converters, expression) in compiled.converters.items():
        for converter in converters:
            row[position] = converter(row[position], expression, connection)
    return row


def _stand_in(field: Field):
    """A value no real row has, of the field's type, to find the field's place among the parameters."""
    target = getattr(field, "target_field", field)
    if target.get_internal_type() == "UUIDField":
        return uuid.UUID("5e171e11-0000-4000-8000-00000000c0de")
    if target.get_internal_type() == "DateTimeField":
        return datetime(1901, 2, 3, 4, 5, 6, 736_491, tzinfo=UTC)
    return -736_491_027


# Django's PostgreSQL connections parse `timestamptz` with a subclass of psycopg's Python loader (it then sets the
# tzinfo Django expects), so psycopg_binary's C loader never runs: about 5 µs a value against well under one, and the
# status poll's row holds seven. Where the two give the same datetime -- aware ones (USE_TZ) in UTC, the time zone
# Django gives the connection's session -- a prepared query's cursor takes psycopg's own loader back. Only its cursor:
# the connection keeps Django's, which Django's cursors check.
_TIMESTAMPTZ_OID = None if psycopg is None else psycopg.adapters.types["timestamptz"].oid
# psycopg's default, which is its C loader when psycopg_binary (or psycopg_c) is installed.
_C_TIMESTAMPTZ = None if psycopg is None else psycopg.adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT)
if _C_TIMESTAMPTZ is TimestamptzLoader:  # pure-Python psycopg: nothing to gain
    _C_TIMESTAMPTZ = None


def _fast_timestamps(connection, cursor) -> None:
    """Parse this psycopg cursor's `timestamptz` columns with psycopg's C loader, where that gives what Django's
    would."""
    if (
        _C_TIMESTAMPTZ is not None
        and connection.vendor == "postgresql"
        and settings.USE_TZ
        and connection.timezone is UTC
        and isinstance(cursor, psycopg.Cursor)
    ):
        cursor.adapters.register_loader(_TIMESTAMPTZ_OID, _C_TIMESTAMPTZ)
