"""Name -> callable registries for advantage estimators, policy losses and KL estimators.

The trainer resolves algorithm pieces from config strings through these registries, so a
user can plug in a new estimator with a decorator and select it by name without touching
the trainer.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., object])

__all__ = [
    "Registry",
    "ADVANTAGE_ESTIMATORS",
    "POLICY_LOSSES",
    "KL_ESTIMATORS",
    "register_advantage_estimator",
    "get_advantage_estimator",
    "register_policy_loss",
    "get_policy_loss",
]


class Registry(Generic[F]):
    """A mapping from names to callables, filled with the ``register(name)`` decorator.

    ``get`` raises ``KeyError`` listing every known name, so a typo in a config file tells
    the user what the valid choices are.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, F] = {}

    def register(self, name: str, *, override: bool = False) -> Callable[[F], F]:
        """Decorator registering ``fn`` under ``name``; returns ``fn`` unchanged.

        Re-registering an existing name raises ``ValueError`` unless ``override=True``,
        because silently shadowing a built-in would change results without warning.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorator(fn: F) -> F:
            if name in self._entries and not override:
                raise ValueError(
                    f"{self.kind} {name!r} is already registered; pass override=True to replace it"
                )
            self._entries[name] = fn
            return fn

        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` (mostly for tests that register temporary entries)."""
        self.get(name)
        del self._entries[name]

    def get(self, name: str) -> F:
        """Return the callable registered as ``name``; ``KeyError`` lists the known names."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "<none>"
            raise KeyError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        """Sorted list of registered names."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"


ADVANTAGE_ESTIMATORS: Registry[Callable[..., object]] = Registry("advantage estimator")
POLICY_LOSSES: Registry[Callable[..., object]] = Registry("policy loss")
KL_ESTIMATORS: Registry[Callable[..., object]] = Registry("KL estimator")


def register_advantage_estimator(name: str, *, override: bool = False) -> Callable[[F], F]:
    """Decorator: register ``fn(rewards[N], group_ids[N], **options) -> advantages[N]``."""
    return ADVANTAGE_ESTIMATORS.register(name, override=override)


def get_advantage_estimator(name: str) -> Callable[..., object]:
    """Look up an outcome advantage estimator by name (``KeyError`` lists known names)."""
    return ADVANTAGE_ESTIMATORS.get(name)


def register_policy_loss(name: str, *, override: bool = False) -> Callable[[F], F]:
    """Decorator: register ``fn(logp, old_logp, advantages, mask, **options) -> (loss_mat, metrics)``."""
    return POLICY_LOSSES.register(name, override=override)


def get_policy_loss(name: str) -> Callable[..., object]:
    """Look up a policy loss by name (``KeyError`` lists known names)."""
    return POLICY_LOSSES.get(name)
