"""TaskRegistry: decorator forms, names, duplicates, lookups, include()."""

from __future__ import annotations

import functools
import math
import subprocess
import sys
from typing import Any

import pytest

import taskmill as tm
from taskmill._registry import default_name


async def fetch(url: str) -> bytes:
    return url.encode()


def parse(text: str) -> int:
    return len(text)


def other(text: str) -> int:
    return len(text) + 1


class Resizer:
    async def __call__(self, image_id: int) -> None:
        return None

    def method(self, x: int) -> int:
        return x


class TestDecorator:
    def test_bare_form_registers_under_module_qualname(self) -> None:
        """`@registry.task` names a function `module.qualname` and returns it unchanged."""
        registry = tm.TaskRegistry()
        decorated = registry.task(fetch)
        assert fetch is decorated
        assert f"{__name__}.fetch" == registry.name_of(fetch)

    def test_options_form_records_defaults(self) -> None:
        """`@registry.task(...)` stores the per-task defaults in the TaskSpec."""
        registry = tm.TaskRegistry()
        policy = tm.Retry(max_attempts=5)
        registry.task(
            name="mail.send", retry=policy, timeout=2.5, priority=3, queue="mail", unique_key="k"
        )(fetch)
        spec = registry.get("mail.send")
        assert (spec.name, spec.fn, spec.retry, spec.timeout) == ("mail.send", fetch, policy, 2.5)
        assert (3, "mail", "k") == (spec.priority, spec.queue, spec.unique_key)

    def test_defaults_when_no_options(self) -> None:
        """Without options: no retry, timeout or priority, queue 'default'."""
        registry = tm.TaskRegistry()
        spec = registry.register(parse)
        assert (None, None, None, "default", None) == (
            spec.retry,
            spec.timeout,
            spec.priority,
            spec.queue,
            spec.unique_key,
        )

    async def test_decorated_function_stays_callable(self) -> None:
        """The decorated callable runs exactly as before (async and sync)."""
        registry = tm.TaskRegistry()
        assert b"u" == await registry.task(fetch)("u")
        assert 3 == registry.task(name="p")(parse)("abc")

    def test_is_async_detects_coroutine_functions_and_async_call(self) -> None:
        """`is_async` is true for `async def` and objects with an async `__call__`."""
        registry = tm.TaskRegistry()
        assert registry.register(fetch).is_async
        assert not registry.register(parse).is_async
        assert registry.register(Resizer(), name="resize").is_async


class TestNames:
    @pytest.mark.parametrize(
        "fn",
        [lambda: None, functools.partial(parse, "x")],
        ids=["lambda", "partial"],
    )
    def test_no_stable_name_needs_explicit_name(self, fn: Any) -> None:
        """Lambdas and partials without `name=` raise ConfigurationError saying what to do."""
        registry = tm.TaskRegistry()
        with pytest.raises(tm.ConfigurationError, match=r"explicit name.*registry\.task\(name="):
            registry.register(fn)
        assert "explicit" == registry.register(fn, name="explicit").name

    def test_nested_function_needs_explicit_name(self) -> None:
        """A function defined inside another one has no importable name."""

        def inner() -> None:
            return None

        registry = tm.TaskRegistry()
        with pytest.raises(tm.ConfigurationError, match="nested function"):
            registry.task(inner)

    def test_main_module_function_needs_explicit_name(self) -> None:
        """`__main__.f` differs between producer script and worker: an explicit name is required."""

        def f() -> None:
            return None

        f.__module__ = "__main__"
        f.__qualname__ = "f"
        assert default_name(f) is None
        with pytest.raises(tm.ConfigurationError, match="__main__"):
            tm.TaskRegistry().register(f)

    @pytest.mark.parametrize(
        "name", ["", "has space", "tab\t", "x" * 201, "semi;colon", "new\nline", "quote'"]
    )
    def test_invalid_names_are_refused(self, name: str) -> None:
        """Names are 1-200 chars of letters, digits and `_.:/-`."""
        with pytest.raises(tm.ConfigurationError, match="task name must be"):
            tm.TaskRegistry().register(parse, name=name)

    @pytest.mark.parametrize("name", ["a", "mail.send", "billing:invoice/v2", "x_y-z", "x" * 200])
    def test_valid_names_are_accepted(self, name: str) -> None:
        """Ordinary dotted, namespaced and maximum-length names work."""
        assert name == tm.TaskRegistry().register(parse, name=name).name

    def test_invalid_queue_is_refused(self) -> None:
        """Queue names follow the same rule."""
        with pytest.raises(tm.ConfigurationError, match="queue must be"):
            tm.TaskRegistry().register(parse, queue="two words")

    @pytest.mark.parametrize(
        ("option", "value"),
        [
            ("priority", "high"),
            ("priority", True),
            ("timeout", 0),
            ("timeout", -1.0),
            ("timeout", math.nan),
            ("retry", 3),
            ("unique_key", ""),
            ("unique_key", 5),
        ],
    )
    def test_invalid_defaults_are_refused(self, option: str, value: object) -> None:
        """Bad per-task defaults raise ConfigurationError at registration."""
        options: dict[str, Any] = {option: value}
        with pytest.raises(tm.ConfigurationError):
            tm.TaskRegistry().register(parse, **options)

    def test_not_callable_is_refused(self) -> None:
        """Registering a non-callable fails at once."""
        with pytest.raises(tm.ConfigurationError, match="callable"):
            tm.TaskRegistry().register(42, name="x")  # type: ignore[arg-type]


class TestDuplicates:
    def test_duplicate_name_is_refused(self) -> None:
        """A second task with a taken name raises and leaves the first in place."""
        registry = tm.TaskRegistry()
        registry.register(parse, name="t")
        with pytest.raises(tm.ConfigurationError, match="'t' is already registered"):
            registry.register(other, name="t")
        assert parse is registry.get("t").fn

    def test_same_callable_twice_is_refused(self) -> None:
        """One callable has one name: registering it again under another name raises."""
        registry = tm.TaskRegistry()
        registry.register(parse, name="a")
        with pytest.raises(tm.ConfigurationError, match="already registered as 'a'"):
            registry.register(parse, name="b")
        assert ("a",) == registry.names()


class TestLookup:
    def test_unknown_name_raises_unknown_task(self) -> None:
        """`get` of an unknown name raises UnknownTask (a LookupError) carrying the name."""
        with pytest.raises(tm.UnknownTask) as info:
            tm.TaskRegistry().get("nope")
        assert "nope" == info.value.name
        assert isinstance(info.value, LookupError)
        assert "no task registered as 'nope'" == str(info.value)

    def test_unregistered_callable_error_says_how_to_register(self) -> None:
        """`name_of` an unregistered callable explains the fix."""
        with pytest.raises(tm.UnknownTask, match=r"decorate it with @registry\.task") as info:
            tm.TaskRegistry().name_of(parse)
        assert f"{__name__}.parse" == info.value.name

    def test_lookup_is_by_identity_not_by_name(self) -> None:
        """A different function with the same qualified name is still unknown."""
        registry = tm.TaskRegistry()
        registry.register(parse)

        def parse_copy(text: str) -> int:
            return 0

        parse_copy.__qualname__ = parse.__qualname__
        parse_copy.__module__ = parse.__module__
        with pytest.raises(tm.UnknownTask):
            registry.name_of(parse_copy)

    @pytest.mark.parametrize("name", ["os.system", "builtins.eval", "subprocess.run", "os:system"])
    def test_importable_paths_are_just_unknown(self, name: str) -> None:
        """A name that could be imported is never imported: it is simply unknown."""
        registry = tm.TaskRegistry()
        registry.register(parse)
        with pytest.raises(tm.UnknownTask):
            registry.get(name)

    def test_non_str_name_is_unknown(self) -> None:
        """`get` with a non-str (payload data) raises UnknownTask, not TypeError."""
        with pytest.raises(tm.UnknownTask):
            tm.TaskRegistry().get(["x"])  # type: ignore[arg-type]

    def test_bound_method_resolves_for_the_same_instance(self) -> None:
        """A bound method is found again by instance and function."""
        registry = tm.TaskRegistry()
        obj, other_obj = Resizer(), Resizer()
        registry.register(obj.method, name="m")
        assert "m" == registry.name_of(obj.method)
        assert obj.method in registry
        with pytest.raises(tm.UnknownTask):
            registry.name_of(other_obj.method)

    def test_resolve_contains_iter_len(self) -> None:
        """resolve() by name or callable; `in`, iteration order and len()."""
        registry = tm.TaskRegistry()
        a = registry.register(parse, name="a")
        b = registry.register(fetch, name="b")
        assert a is registry.resolve("a")
        assert b is registry.resolve(fetch)
        assert "a" in registry
        assert parse in registry
        assert other not in registry
        assert 3 not in registry
        assert [a, b] == list(registry)
        assert 2 == len(registry)


class TestInclude:
    def test_include_copies_tasks(self) -> None:
        """A library registry's tasks become resolvable in the app registry."""
        library, app = tm.TaskRegistry(), tm.TaskRegistry()
        library.register(parse, name="lib.parse")
        app.register(fetch, name="app.fetch")
        app.include(library)
        assert ("app.fetch", "lib.parse") == app.names()
        assert "lib.parse" == app.name_of(parse)

    def test_include_conflict_adds_nothing(self) -> None:
        """A clash raises ConfigurationError and leaves the target unchanged."""
        library, app = tm.TaskRegistry(), tm.TaskRegistry()
        library.register(other, name="lib.other")
        library.register(parse, name="shared")
        app.register(fetch, name="shared")
        with pytest.raises(tm.ConfigurationError, match="'shared'"):
            app.include(library)
        assert ("shared",) == app.names()

    def test_include_same_callable_conflict(self) -> None:
        """The same callable under two names across registries is refused."""
        library, app = tm.TaskRegistry(), tm.TaskRegistry()
        library.register(parse, name="lib.parse")
        app.register(parse, name="app.parse")
        with pytest.raises(tm.ConfigurationError, match="already registered"):
            app.include(library)

    def test_include_is_a_snapshot(self) -> None:
        """Tasks registered in the library after include() are not seen."""
        library, app = tm.TaskRegistry(), tm.TaskRegistry()
        app.include(library)
        library.register(parse, name="late")
        assert "late" not in app

    def test_include_self_or_non_registry_is_refused(self) -> None:
        """include() takes another TaskRegistry."""
        registry = tm.TaskRegistry()
        with pytest.raises(tm.ConfigurationError):
            registry.include(registry)
        with pytest.raises(tm.ConfigurationError):
            registry.include({})  # type: ignore[arg-type]


class TestSpec:
    def test_unique_key_function_is_called_with_the_arguments(self) -> None:
        """A callable unique_key derives the key from the task's arguments."""
        registry = tm.TaskRegistry()
        spec = registry.register(
            parse, name="p", unique_key=lambda text: f"parse:{text}", priority=2
        )
        assert "parse:abc" == spec.unique_key_for(["abc"], {})
        options = spec.options_for(["abc"], {})
        assert tm.TaskOptions(name="p", priority=2, unique_key="parse:abc") == options

    @pytest.mark.parametrize("result", ["", 5, None])
    def test_unique_key_function_must_return_a_str(self, result: object) -> None:
        """A key function returning a non-str or empty str is a ConfigurationError."""

        def key(_: str) -> Any:
            return result

        spec = tm.TaskRegistry().register(parse, name="p", unique_key=key)
        with pytest.raises(tm.ConfigurationError, match="non-empty str"):
            spec.unique_key_for(["x"], {})

    def test_unique_key_function_that_raises(self) -> None:
        """A key function's error is reported as ConfigurationError chained to it."""
        spec = tm.TaskRegistry().register(parse, name="p", unique_key=lambda: "k")
        with pytest.raises(tm.ConfigurationError, match="raised") as info:
            spec.unique_key_for(["x"], {})
        assert isinstance(info.value.__cause__, TypeError)

    def test_statistics_and_repr(self) -> None:
        """statistics() counts tasks and async ones and lists queues; repr shows the count."""
        registry = tm.TaskRegistry()
        registry.register(fetch, queue="io")
        registry.register(parse)
        assert (
            tm.RegistryStatistics(tasks=2, async_tasks=1, queues=("default", "io"))
            == registry.statistics()
        )
        assert "<TaskRegistry tasks=2>" == repr(registry)


def test_registry_import_loads_no_msgspec() -> None:
    """Using the registry needs no optional dependency."""
    code = (
        "import sys, taskmill as tm\n"
        "r = tm.TaskRegistry()\n"
        "r.register(print, name='p')\n"
        "print('msgspec' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert "False" == out
