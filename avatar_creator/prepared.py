"""Hot reads whose SQL is compiled once per process.

The ORM turns a queryset into SQL every time it runs it: about 0.5 ms of CPU for the status poll's preview, more than
PostgreSQL takes to answer (bench/README.md, issue 13). A `PreparedRead` builds its queryset once with stand-in
values, keeps the SQL the ORM wrote, and from then on runs that SQL with the real values and builds the instance as
the ORM does (`Model.from_db` after the columns' converters). The query is the ORM's own, so it follows the models;
only the values change.

Each value is named with the model field it is compared to, which converts it exactly as a filter would
(`to_python` refuses what the field cannot hold, with the ValidationError or ValueError a filter raises).
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connections, router
from django.db.models import Field, Model, QuerySet


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
        connection = connections[alias]
        compiled = self._compiled.get(alias) or self._compile(alias)
        params = list(compiled.params)
        for name, value in values.items():
            field = self.fields[name]
            prepared = field.get_db_prep_value(field.to_python(value), connection, prepared=False)
            for position in compiled.positions[name]:
                params[position] = prepared
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        row = list(row)
        for position, (converters, expression) in compiled.converters.items():
            for converter in converters:
                row[position] = converter(row[position], expression, connection)
        size = len(compiled.init_list)
        instance = self.model.from_db(alias, compiled.init_list, row[:size])
        return instance, dict(zip(compiled.extra, row[size:], strict=True))

    def _compile(self, alias: str) -> _Compiled:
        connection = connections[alias]
        stand_ins = {name: _stand_in(field) for name, field in self.fields.items()}
        queryset = self.build(**stand_ins)[:1]
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        positions = {}
        for name, field in self.fields.items():
            prepared = field.get_db_prep_value(stand_ins[name], connection, prepared=False)
            positions[name] = [i for i, param in enumerate(params) if param == prepared]
            if not positions[name]:
                raise ValueError(f"{name!r} is not a parameter of the prepared query")
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


def _stand_in(field: Field):
    """A value no real row has, of the field's type, to find the field's place among the parameters."""
    target = getattr(field, "target_field", field)
    if target.get_internal_type() == "UUIDField":
        return uuid.UUID("5e171e11-0000-4000-8000-00000000c0de")
    return -736_491_027
