"""A Griffe extension that turns the Sphinx roles of daskbio's docstrings into links.

The docstrings are written for Sphinx (numpydoc, as in scikit-image), with roles such as
:func:`surf_halo` or :class:`~daskbio.cache.Store`. mkdocstrings knows nothing of them and
would print them as they are, so this extension rewrites each role in each docstring of the
loaded package, before mkdocstrings parses the docstrings, without touching the sources.

A role's target is looked up as Sphinx would: relative to the object whose docstring holds
it (its class, then its module, then each enclosing package), then as an absolute path.

- A target that Griffe finds becomes an *optional* autorefs cross-reference to the object's
  canonical path (where it is defined): a link if the site renders that object, on any page
  and under any of its names, and otherwise inline code. Optional, because only autorefs
  knows, once every page is rendered, which objects the site documents: a plain
  ``[shown][path]`` to an object the site does not render (a private helper, a module
  without a page) is a warning, and the build runs with ``--strict``.
- A target that Griffe does not find (builtins such as ``KeyError``, NumPy, a typo) becomes
  inline code.

Registered in mkdocs.yml, under the python handler's ``options: extensions:``, by its path.
Run ``mkdocs build -v`` to see, among the debug messages, the roles it could not resolve.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

# The Python domain's roles, with or without their ``py:`` prefix.
ROLE = re.compile(
    r":(?:py:)?(?P<role>func|class|meth|mod|data|const|attr|exc|obj):`(?P<content>[^`]+)`"
)
# A role with an explicit title: :func:`the title <target>`.
EXPLICIT_TITLE = re.compile(r"(?P<title>.+?)\s*<(?P<target>[^<>]+)>", re.DOTALL)

logger = griffe.get_logger("griffe_roles")


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx cross-reference roles into mkdocstrings cross-references.

    Attributes
    ----------
    linked : int
        How many roles became cross-references (links, if the site renders their target).
    unresolved : list of str
        The roles that Griffe could not resolve, shown as inline code, each with the path of
        the object whose docstring holds it.
    """

    def __init__(self) -> None:
        self.linked = 0
        self.unresolved: list[str] = []

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Rewrite the roles of every docstring of a package, once it is loaded.

        This event comes once the whole package is loaded, so that a role can name any
        object in it, and before mkdocstrings parses a docstring (it does so lazily, when it
        renders the object).

        Parameters
        ----------
        pkg : griffe.Module
            The package just loaded.
        loader : griffe.GriffeLoader
            The loader, whose modules collection holds every loaded package.
        **kwargs : Any
            Other arguments of the event, unused.
        """
        for obj in _objects(pkg):
            if obj.docstring is not None and ROLE.search(obj.docstring.value):
                obj.docstring.value = ROLE.sub(
                    lambda match, obj=obj: self._rewrite(match, obj, loader),
                    obj.docstring.value,
                )
        logger.debug(
            "%s: %d Sphinx roles made cross-references, %d left as code",
            pkg.path,
            self.linked,
            len(self.unresolved),
        )

    def _rewrite(
        self, match: re.Match[str], obj: griffe.Object, loader: griffe.GriffeLoader
    ) -> str:
        title, target = _title_and_target(match["content"])
        path = _resolve(target, match["role"], obj, loader)
        if path is None:
            self.unresolved.append(f"{match[0]} in {obj.path}")
            logger.debug("%s: cannot resolve %s, shown as code", obj.path, match[0])
            return f"`{title}`"
        self.linked += 1
        # The HTML element that autorefs' own `[title][identifier]` syntax produces, plus
        # `optional`, which Markdown's syntax cannot express: left unresolved, it becomes
        # the bare title (here inline code) rather than a warning.
        return f'<autoref identifier="{path}" optional>`{title}`</autoref>'


def _title_and_target(content: str) -> tuple[str, str]:
    """What a role shows, and what it points to, by Sphinx's rules for Python roles."""
    if explicit := EXPLICIT_TITLE.fullmatch(content):
        return explicit["title"], explicit["target"].lstrip("~")
    target = content.lstrip("~")
    # `~a.b.C` shows `C`; a leading dot only tells where to look, and is not shown.
    title = target.rpartition(".")[2] if content.startswith("~") else target.lstrip(".")
    return title, target


def _resolve(target: str, role: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str | None:
    """The canonical path of a role's target, or None if Griffe cannot find it.

    The canonical path, because mkdocstrings registers it for every object it renders,
    whichever name (``daskbio.Task`` or ``daskbio.graph.task.Task``) a page renders it under.
    """
    relative = target.startswith(".")
    name = target.lstrip(".")
    # Innermost first, as Sphinx does: the object itself (a class's own members), its class,
    # its module, each enclosing package. `get_member` reads declared members only (the
    # producer API, safe while Griffe still builds the tree) and follows imports (aliases).
    scopes: list[griffe.Object | griffe.ModulesCollection] = []
    enclosing: griffe.Object | None = obj
    while enclosing is not None:
        scopes.append(enclosing)
        enclosing = enclosing.parent
    if not relative:
        scopes.append(loader.modules_collection)  # an absolute path: daskbio.cache.Store
    for scope in scopes:
        try:
            found = scope.get_member(name)
            # `from daskbio.graph.compute import compute` in daskbio/graph/__init__.py makes
            # `daskbio.compute` the function at run time, but Griffe keeps the submodule
            # under that name: a role that is not :mod: means the function.
            if found.is_module and role != "mod" and found.name in found.members:
                found = found.get_member(found.name)
            # An import of something Griffe did not load (`numpy`) fails here.
            return found.canonical_path
        except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
    return None


def _objects(obj: griffe.Object) -> list[griffe.Object]:
    """The object and every object defined in it, recursively (not the imported ones)."""
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(_objects(member))
    return found
